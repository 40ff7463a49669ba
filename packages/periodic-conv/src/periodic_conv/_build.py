"""Build and load the C++ (and CUDA) extension.

The sources in ``csrc/`` are compiled on first use with ``torch.utils.cpp_extension.load``
into ``$PERIODIC_CONV_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/xtalnet/torch-<ver>/
periodic_conv-<sha>/`` (sha of the sources), and an existing build there is loaded with
``torch.ops.load_library`` without rebuilding. Without a compiler the ``torch`` backend is
used and ONE warning says why.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

import torch

__all__ = ["cpp_available", "cuda_available", "extension_ready", "load_extension"]

_CSRC = Path(__file__).parent / "csrc"
_CPU_SOURCES = ["conv_cpu.cpp", "neighbors_cpu.cpp"]
_HEADERS = ["conv_kernel.h", "conv_ops.h"]
_NAME = "periodic_conv_ops"


def _with_cuda() -> bool:
    # Build the CUDA launcher only where it can run: a CUDA torch with a visible device.
    return bool(torch.cuda.is_available() and torch.version.cuda)


@functools.lru_cache(maxsize=1)
def _vesin_include() -> Path | None:
    """vesin's C header directory (its public C API), if the installed vesin ships one and is
    a version whose options struct has the fields we set (0.6 onwards)."""
    try:
        import vesin

        major, minor = (int(x) for x in vesin.__version__.split(".")[:2])
    except (ImportError, AttributeError, ValueError):
        return None
    inc = Path(vesin.__file__).parent / "include"
    return inc if (major, minor) >= (0, 6) and (inc / "vesin.h").is_file() else None


def _build(build: Path, with_vesin: bool) -> None:
    from torch.utils import cpp_extension

    sources = [str(_CSRC / s) for s in _CPU_SOURCES]
    if _with_cuda():
        sources.append(str(_CSRC / "conv_cuda.cu"))
    includes, flags = [str(_CSRC)], ["-O3", "-fopenmp"]
    if with_vesin:
        includes.append(str(_vesin_include()))
        flags.append("-DPERIODIC_CONV_WITH_VESIN")
    cpp_extension.load(
        name=_NAME,
        sources=sources,
        extra_cflags=flags,
        extra_ldflags=["-fopenmp"],
        extra_include_paths=includes,
        build_directory=str(build),
        is_python_module=False,
        verbose=False,
    )


def _cache_dir() -> Path:
    files = sorted(_CPU_SOURCES + _HEADERS + ["conv_cuda.cu"])
    sha = hashlib.sha256()
    for f in files:
        p = _CSRC / f
        if p.exists():
            sha.update(f.encode() + p.read_bytes())
    inc = _vesin_include()
    if inc is not None:  # the struct layouts compiled in must be those of the installed vesin
        sha.update(b"vesin.h" + (inc / "vesin.h").read_bytes())
    root = os.environ.get("PERIODIC_CONV_CACHE")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        root = os.path.join(base, "xtalnet", f"torch-{torch.__version__.split('+')[0]}")
    flavour = "cuda" if _with_cuda() else "cpu"
    return Path(root) / f"periodic_conv-{flavour}-{sha.hexdigest()[:16]}"


#: True once the operators are loaded in this process (by any of the functions below).
_LOADED = False


@functools.lru_cache(maxsize=1)
def load_extension() -> bool:
    """Build (once) and load the C++ operators; False (with one warning) if that fails."""
    global _LOADED
    if hasattr(torch.ops.periodic_conv, "conv_fwd"):
        _LOADED = True
        return True
    build = _cache_dir()
    so = build / f"{_NAME}.so"
    try:
        if not so.exists():
            build.mkdir(parents=True, exist_ok=True)
            try:
                _build(build, with_vesin=_vesin_include() is not None)
            except Exception:
                if _vesin_include() is None:
                    raise
                # A vesin header we cannot compile against must not cost the convolution
                # backends: build again without the fused neighbour-list op.
                _build(build, with_vesin=False)
        else:
            torch.ops.load_library(str(so))
    except Exception as exc:
        warnings.warn(
            f"periodic_conv: could not build/load the C++ extension ({type(exc).__name__}: "
            f"{exc}); using the plain-torch backend. Install a C++ compiler for the cpp backend.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    from periodic_conv import _registration

    _registration.register()
    _LOADED = True
    return True


@functools.lru_cache(maxsize=1)
def _built() -> bool:
    return (_cache_dir() / f"{_NAME}.so").exists()


def extension_ready() -> bool:
    """True when the operators are loaded, loading an existing build but never compiling one
    (for callers such as ``neighbor_list`` that have a fallback and must not block for the
    first build)."""
    return _LOADED or (_built() and load_extension())


def cpp_available() -> bool:
    return load_extension()


def cuda_available() -> bool:
    """True when the extension was built with the CUDA launcher (CUDA torch + device)."""
    return _with_cuda() and load_extension()
