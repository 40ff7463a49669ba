"""periodic_conv's C++ (and CUDA) extension, built and loaded by :mod:`rsh.extensions`.

The one loader of the xtalnet packages compiles ``csrc/`` on first use (about a minute),
caches the build under ``$XTAL_EXTENSIONS_DIR`` (default ``~/.cache/xtalnet/extensions``) and
falls back with one warning: a failed CUDA build to a CPU-only build, a failed CPU build to
the plain-torch backend. ``XTAL_DISABLE_EXTENSIONS=1`` skips it (plain torch only),
``XTAL_DISABLE_CUDA_EXTENSIONS=1`` skips the CUDA sources.

:func:`neighbor_list` must never block on a first build, so it asks
:func:`extension_ready`, which loads a cached build (``build=False``) but never compiles.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from rsh import extensions

__all__ = [
    "cpp_available",
    "cuda_available",
    "extension_ready",
    "load_extension",
    "vesin_include",
]

_CSRC = Path(__file__).resolve().parent / "csrc"
_CPU_SOURCES = ["conv_cpu.cpp", "neighbors_cpu.cpp"]
_CUDA_SOURCES = ["conv_cuda.cu"]
_HEADERS = ["conv_kernel.h", "conv_ops.h"]
_NAME = "periodic_conv"
#: vesin versions whose C header (options struct) the fused neighbour-list op is written for.
VESIN_TESTED = ((0, 6), (0, 7))  # >= 0.6, < 0.7: the range pinned in pyproject.toml


@functools.lru_cache(maxsize=1)
def vesin_include() -> tuple[Path | None, str]:
    """(vesin's C header directory, "") when the fused neighbour-list op can be built against
    the installed vesin, else (None, the reason)."""
    try:
        import vesin
    except ImportError as exc:
        return None, f"vesin cannot be imported ({exc})"
    version = getattr(vesin, "__version__", "?")
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return None, f"vesin's version {version!r} is not of the form X.Y.Z"
    lo, hi = VESIN_TESTED
    if not lo <= (major, minor) < hi:
        return None, (
            f"vesin {version} is outside the tested range >={lo[0]}.{lo[1]},<{hi[0]}.{hi[1]}"
        )
    inc = Path(vesin.__file__).parent / "include"
    if not (inc / "vesin.h").is_file():
        return None, f"vesin {version} ships no C header ({inc / 'vesin.h'} is missing)"
    return inc, ""


def _spec() -> dict[str, Any]:
    """The arguments of :func:`rsh.extensions.load_extension` for this package."""
    inc, _ = vesin_include()
    includes = [_CSRC] if inc is None else [_CSRC, inc]
    depends = [_CSRC / h for h in _HEADERS] + ([] if inc is None else [inc / "vesin.h"])
    cflags = ["-O3", "-fopenmp"] + ([] if inc is None else ["-DPERIODIC_CONV_WITH_VESIN"])
    return dict(
        sources=[_CSRC / s for s in _CPU_SOURCES],
        cuda_sources=[_CSRC / s for s in _CUDA_SOURCES],
        depends=depends,
        extra_cflags=cflags,
        extra_cuda_cflags=["-O3", "--expt-relaxed-constexpr"],
        extra_ldflags=["-fopenmp"],
        extra_include_paths=includes,
    )


_lock = threading.Lock()
_state: dict[str, Any] = {}


def _loaded(ext: extensions.Extension | None) -> bool:
    """Register the Python side of the ops once the library is loaded; remember the result."""
    if ext is not None:
        from periodic_conv import _registration

        _registration.register()
    _state["ext"] = ext
    _state["ok"] = ext is not None
    return ext is not None


def load_extension() -> bool:
    """Build (once, cached) and load the C++ operators; False (with one warning from
    :mod:`rsh.extensions`) when they cannot be built.

    Call it once up front (``periodic_conv.build_extension()``) to take the ~1 minute first
    build out of the first convolution or neighbour list.
    """
    if "ok" in _state:  # lock-free fast path (torch.compile traces through it)
        return bool(_state["ok"])
    with _lock:
        if "ok" not in _state:
            _loaded(extensions.load_extension(_NAME, **_spec()))
    return bool(_state["ok"])


def extension_ready() -> bool:
    """True when the operators are loaded, loading a cached build but never compiling one
    (for callers such as ``neighbor_list`` that have a fallback and must not block)."""
    if "ok" in _state:
        return bool(_state["ok"])
    if _state.get("not_built"):  # probed once per process (neighbor_list asks every call)
        return False
    with _lock:
        if "ok" not in _state:
            ext = extensions.load_extension(_NAME, **_spec(), build=False)
            if ext is None:
                _state["not_built"] = True
                return False
            _loaded(ext)
    return bool(_state["ok"])


def cpp_available() -> bool:
    """True when the CPU operators are available (builds on first call)."""
    return load_extension()


def cuda_available() -> bool:
    """True when the extension was built with its CUDA launcher (builds on first call)."""
    return load_extension() and bool(getattr(_state.get("ext"), "cuda", False))


def cuda_reason() -> str | None:
    """Why the CUDA launcher is not built in (None when it is, or before the first build)."""
    ext = _state.get("ext")
    return None if ext is None else ext.cuda_reason
