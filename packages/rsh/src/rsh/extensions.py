"""The one loader for the JIT-built C++/CUDA extensions of the xtalnet packages.

:func:`load_extension` compiles a library of ``TORCH_LIBRARY`` ops on first use with
``torch.utils.cpp_extension.load`` (about a minute), caches it and loads it with
``torch.ops.load_library``; later processes load the cached build in milliseconds.

Cache
    ``$XTAL_EXTENSIONS_DIR/torch-<torch version>/<name>-<cpu|cuda>-<sha>/`` where the
    directory defaults to ``${XDG_CACHE_HOME:-~/.cache}/xtalnet/extensions`` and ``<sha>``
    hashes the sources, the headers named in ``depends``, the flags and the Python version.
    Concurrent builds of the same library (several processes, e.g. DDP ranks) wait on a
    file lock and the later ones load the finished build.
Environment variables
    ``XTAL_EXTENSIONS_DIR``: cache root (see above).
    ``XTAL_DISABLE_EXTENSIONS=1``: build and load nothing (plain-torch backends only).
    ``XTAL_DISABLE_CUDA_EXTENSIONS=1``: never compile the CUDA sources.
CUDA
    The CUDA sources are compiled only when torch is a CUDA build, a CUDA device is visible
    and the CUDA toolkit is found (``CUDA_HOME`` with ``bin/nvcc``, or ``nvcc`` on PATH).
Failures
    A failed CUDA build falls back to a CPU-only build with ONE warning naming the reason; a
    failed CPU build returns ``None`` with ONE warning (callers then use plain torch). The
    compiler output is kept in ``BUILD_FAILED.txt`` in the build directory and the failure is
    remembered there (later processes warn again without recompiling); delete that
    directory to retry.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "DIR_ENV",
    "DISABLE_CUDA_ENV",
    "DISABLE_ENV",
    "Extension",
    "cuda_toolkit",
    "disabled",
    "extensions_dir",
    "load_extension",
]

DIR_ENV = "XTAL_EXTENSIONS_DIR"
DISABLE_ENV = "XTAL_DISABLE_EXTENSIONS"
DISABLE_CUDA_ENV = "XTAL_DISABLE_CUDA_EXTENSIONS"
_FAILED = "BUILD_FAILED.txt"

_lock = threading.RLock()


class ExtensionBuildError(RuntimeError):
    """The CPU build of an extension failed (raised with ``on_failure="raise"``)."""


class _BuildError(RuntimeError):
    """A build failed; the message is already short and names the log file."""


class _NotBuilt(Exception):
    """``build=False`` and no cached build exists."""


def _reason(err: BaseException) -> str:
    return str(err) if isinstance(err, _BuildError) else _short(err)


_loaded: dict[tuple[str, str], Extension | None] = {}


@dataclass(frozen=True)
class Extension:
    """A loaded extension library.

    Attributes
    ----------
    name : str
        The name given to :func:`load_extension`.
    path : pathlib.Path
        The shared library that was loaded.
    cuda : bool
        True when the CUDA sources are compiled in.
    cuda_reason : str or None
        Why the CUDA sources are not compiled in (None when ``cuda`` is True, or when the
        extension has no CUDA sources).
    """

    name: str
    path: Path
    cuda: bool
    cuda_reason: str | None


def _env_flag(var: str) -> bool:
    return os.environ.get(var, "").strip() not in ("", "0")


def disabled() -> bool:
    """True when ``XTAL_DISABLE_EXTENSIONS`` asks for the plain-torch backends only."""
    return _env_flag(DISABLE_ENV)


def extensions_dir() -> Path:
    """The cache directory of this torch version (see the module docstring)."""
    root = os.environ.get(DIR_ENV)
    if not root:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(cache) / "xtalnet" / "extensions")
    return Path(root) / f"torch-{torch.__version__}"


def cuda_toolkit() -> tuple[bool, str]:
    """(True, "") when CUDA sources can be built and run here, else (False, the reason)."""
    if _env_flag(DISABLE_CUDA_ENV):
        return False, f"{DISABLE_CUDA_ENV} is set"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is not a CUDA build"
    if not torch.cuda.is_available():
        return False, "no CUDA device is visible"
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None:
        return False, "the CUDA toolkit was not found (set CUDA_HOME or put nvcc on PATH)"
    nvcc = Path(CUDA_HOME) / "bin" / ("nvcc.exe" if sys.platform == "win32" else "nvcc")
    if not nvcc.is_file() and shutil.which("nvcc") is None:
        return False, f"nvcc was found neither in CUDA_HOME={CUDA_HOME} nor on PATH"
    return True, ""


def _signature(
    name: str,
    files: Sequence[Path],
    flags: tuple[object, ...],
) -> str:
    h = hashlib.sha256()
    h.update(name.encode())
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(repr((flags, sys.version_info[:2])).encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on ``path`` across processes (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: no inter-process lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _short(err: BaseException) -> str:
    """One line: the first compiler ``error`` line if there is one, else the message."""
    lines = str(err).splitlines()
    errors = [ln for ln in lines if "error:" in ln or "Error:" in ln]
    text = " ".join((errors[0] if errors else " ".join(lines)).split())
    return f"{type(err).__name__}: {text[:400]}{'...' if len(text) > 400 else ''}"


def _build_one(
    name: str,
    flavour: str,
    sources: list[Path],
    depends: list[Path],
    cflags: list[str],
    cuda_cflags: list[str],
    ldflags: list[str],
    includes: list[str],
    verbose: bool,
    build: bool,
) -> Path:
    """Build (or load the cached build of) one flavour; raises on failure."""
    sha = _signature(name, sources + depends, (flavour, cflags, cuda_cflags, ldflags, includes))
    directory = extensions_dir() / f"{name}-{flavour}-{sha}"
    libname = f"{name}_{flavour}_{sha}"
    lib = directory / f"{libname}.so"
    if not build:  # load an existing build, never compile (no lock needed to read)
        if (directory / _FAILED).is_file():
            raise _BuildError(f"an earlier build failed (see {directory / _FAILED})")
        if not lib.is_file():
            raise _NotBuilt(str(lib))
        torch.ops.load_library(str(lib))
        return lib
    with _file_lock(directory.with_name(directory.name + ".lock")):
        failed = directory / _FAILED
        if failed.is_file():
            raise _BuildError(
                f"an earlier build failed (compiler output in {failed}; delete {directory} "
                "to retry)"
            )
        if lib.is_file():
            torch.ops.load_library(str(lib))
            return lib
        from torch.utils import cpp_extension

        directory.mkdir(parents=True, exist_ok=True)
        # torch's own marker of a build in progress (``lock`` in the build directory) outlives
        # a build that was killed (a job's time limit during the minute-long first build), and
        # every later build then waits for it forever; the file lock held here keeps builds
        # apart already, so a marker found now is stale
        (directory / "lock").unlink(missing_ok=True)
        try:
            cpp_extension.load(
                name=libname,
                sources=[str(s) for s in sources],
                # fresh lists: torch appends its CUDA libraries to extra_ldflags in place,
                # which would make the CPU-only fallback link against them
                extra_cflags=list(cflags),
                extra_cuda_cflags=list(cuda_cflags),
                extra_ldflags=list(ldflags),
                extra_include_paths=list(includes),
                build_directory=str(directory),
                is_python_module=False,
                verbose=verbose,
            )
        except Exception as err:
            failed.write_text(f"{type(err).__name__}: {err}\n")
            raise _BuildError(f"{_short(err)} (full output in {failed})") from err
        return lib


def load_extension(
    name: str,
    sources: Sequence[str | os.PathLike[str]],
    *,
    cuda_sources: Sequence[str | os.PathLike[str]] = (),
    depends: Sequence[str | os.PathLike[str]] = (),
    extra_cflags: Sequence[str] = (),
    extra_cuda_cflags: Sequence[str] = (),
    extra_ldflags: Sequence[str] = (),
    extra_include_paths: Sequence[str | os.PathLike[str]] = (),
    with_cuda: bool | None = None,
    build: bool = True,
    on_failure: str = "warn",
    verbose: bool = False,
) -> Extension | None:
    """Build (once, cached on disk) and load a library of ``TORCH_LIBRARY`` ops.

    Parameters
    ----------
    name : str
        Identifier of the library (e.g. ``"rsh"``); part of the cache directory name.
    sources : sequence of paths
        C++ sources of the CPU build.
    cuda_sources : sequence of paths
        ``.cu`` sources added when CUDA is usable (see ``with_cuda``).
    depends : sequence of paths
        Further files whose content must trigger a rebuild (headers).
    extra_cflags, extra_cuda_cflags, extra_ldflags, extra_include_paths : sequences
        Passed to ``torch.utils.cpp_extension.load``.
    with_cuda : bool, optional
        None (default): compile ``cuda_sources`` when :func:`cuda_toolkit` says CUDA is
        usable. True: try to compile them regardless (a failure still falls back to the CPU
        build). False: never.
    build : bool
        False: only load an existing build, never compile (returns None, silently, when
        there is none; for callers with a fallback that must not block on the first build).
    on_failure : {"warn", "raise"}
        What a failed CPU build does: one ``RuntimeWarning`` and None, or raise
        :class:`ExtensionBuildError` (for callers that retry another variant and warn
        themselves). A failed CUDA build always falls back to the CPU build with a warning.
    verbose : bool
        Show the compiler commands.

    Returns
    -------
    Extension or None
        None when ``XTAL_DISABLE_EXTENSIONS`` is set (silently) or the CPU build failed (with
        one ``RuntimeWarning``). Calls with the same arguments in one process return the
        same result without rebuilding or warning again.
    """
    if on_failure not in ("warn", "raise"):
        raise ValueError(f"on_failure must be one of ('warn', 'raise'), got {on_failure!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier such as 'rsh', got {name!r}")
    cpu_src = [Path(s).resolve() for s in sources]
    cuda_src = [Path(s).resolve() for s in cuda_sources]
    deps = [Path(s).resolve() for s in depends]
    for p in [*cpu_src, *cuda_src, *deps]:
        if not p.is_file():
            raise FileNotFoundError(f"extension {name!r}: source file {p} does not exist")
    if not cpu_src:
        raise ValueError(f"extension {name!r}: sources must name at least one C++ file")
    includes = [str(Path(p).resolve()) for p in extra_include_paths]
    if disabled():
        return None
    key = (name, repr((cpu_src, cuda_src, deps, extra_cflags, extra_cuda_cflags, with_cuda)))
    if key in _loaded:
        return _loaded[key]
    with _lock:
        if key in _loaded:
            return _loaded[key]
        try:
            result = _load(
                name, cpu_src, cuda_src, deps, list(extra_cflags), list(extra_cuda_cflags),
                list(extra_ldflags), includes, with_cuda, verbose, build, on_failure,
            )  # fmt: skip
        except _NotBuilt:
            return None  # not remembered: a later call with build=True compiles
        _loaded[key] = result
        return result


def _load(
    name: str,
    cpu_src: list[Path],
    cuda_src: list[Path],
    deps: list[Path],
    cflags: list[str],
    cuda_cflags: list[str],
    ldflags: list[str],
    includes: list[str],
    with_cuda: bool | None,
    verbose: bool,
    build: bool,
    on_failure: str,
) -> Extension | None:
    cuda_reason: str | None = None
    if not cuda_src:
        try_cuda = False
    elif with_cuda is None:
        try_cuda, why = cuda_toolkit()
        cuda_reason = None if try_cuda else why
    else:
        try_cuda = bool(with_cuda)
        cuda_reason = None if try_cuda else "with_cuda=False"
    if try_cuda:
        try:
            lib = _build_one(
                name, "cuda", cpu_src + cuda_src, deps, cflags, cuda_cflags, ldflags,
                includes, verbose, build,
            )  # fmt: skip
            return Extension(name, lib, True, None)
        except _NotBuilt:
            raise
        except Exception as err:
            cuda_reason = f"the CUDA build failed: {_reason(err)}"
            if build:  # a load-only probe stays quiet; cuda_reason keeps the reason
                warnings.warn(
                    f"{name}: {cuda_reason}. Building the CPU-only extension instead; CUDA tensors "
                    "will use the plain-torch backend.",
                    RuntimeWarning,
                    stacklevel=4,
                )
    try:
        lib = _build_one(name, "cpu", cpu_src, deps, cflags, [], ldflags, includes, verbose, build)
    except _NotBuilt:
        raise
    except Exception as err:
        if on_failure == "raise":
            raise ExtensionBuildError(
                f"{name}: could not build the C++ extension ({_reason(err)})"
            ) from err
        warnings.warn(
            f"{name}: could not build the C++ extension ({_reason(err)}); using the plain-torch "
            "backend. Install a C++ compiler (g++/clang++) to get the fast backend, or set "
            f"{DISABLE_ENV}=1 to skip the build.",
            RuntimeWarning,
            stacklevel=4,
        )
        return None
    return Extension(name, lib, False, cuda_reason)
