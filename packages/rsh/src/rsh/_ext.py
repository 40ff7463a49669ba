"""rsh's C++ (and CUDA) extension, built and loaded by :mod:`rsh.extensions`.

Environment variables, cache directory and fallbacks are those of :mod:`rsh.extensions`
(``XTAL_DISABLE_EXTENSIONS=1`` forces the torch backend).
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from . import extensions

CSRC = Path(__file__).resolve().parent / "csrc"

# -fopenmp: at::parallel_for is an inline `#pragma omp parallel` in the OpenMP torch builds;
# without the flag it silently runs on one thread. libgomp.so.1 resolves to the copy torch
# has already loaded (same soname), so there is one OpenMP runtime.
# No -march/-mfma: FMA contraction differs between the sh and sh_grad code paths, and Y from
# both must agree bit for bit (tested); the gain measured here was within noise.
# -fno-math-errno -fno-trapping-math: let GCC vectorise the sqrt and the (speculated) 1/r of
# the normalisation loop; neither changes any computed value (no reassociation, no FMA).
CFLAGS = ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
LDFLAGS = ["-fopenmp"]
CUDA_FLAGS = ["-O3", "--expt-relaxed-constexpr"]

_lock = threading.Lock()
_state: dict[str, object] = {}


def _load() -> extensions.Extension | None:
    return extensions.load_extension(
        "rsh",
        [CSRC / "rsh_cpu.cpp"],
        cuda_sources=[CSRC / "rsh_cuda.cu"],
        depends=sorted(CSRC.glob("*.h")),
        extra_cflags=CFLAGS,
        extra_cuda_cflags=CUDA_FLAGS,
        extra_ldflags=LDFLAGS,
        extra_include_paths=[CSRC],
    )


def available() -> bool:
    """True once the extension is loaded and its ops registered (builds on first call)."""
    if "ok" in _state:  # fast path, lock-free so that torch.compile can trace through it
        return bool(_state["ok"])
    with _lock:
        if "ok" not in _state:
            ext = _load()
            if ext is not None:
                from . import _ops

                _ops.register()
            _state["ext"] = ext
            _state["ok"] = ext is not None
        return bool(_state["ok"])


def cuda_available() -> bool:
    """True when the loaded extension has the CUDA kernels."""
    return available() and torch._C._dispatch_has_kernel_for_dispatch_key("rsh::sh", "CUDA")


def cuda_missing_reason() -> str:
    """Why the CUDA kernels are not available (for the fallback warning)."""
    if not available():
        return "the rsh C++ extension is not loaded (disabled, or its build failed)"
    ext = _state.get("ext")
    reason = getattr(ext, "cuda_reason", None)
    return reason or "the rsh extension was built without its CUDA sources"
