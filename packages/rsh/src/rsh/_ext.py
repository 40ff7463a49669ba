"""Build / load the C++ (and, with a CUDA torch, CUDA) extension and register the ops.

The library is compiled on first use with ``torch.utils.cpp_extension.load`` into
``$RSH_EXT_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/xtalnet/torch-<version>/rsh-<sha>/``, where
``<sha>`` hashes the sources and flags; an existing build there is loaded with
``torch.ops.load_library`` without recompiling. Set ``RSH_DISABLE_EXT=1`` to skip it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from pathlib import Path

import torch

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


def _want_cuda() -> bool:
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and torch.cuda.is_available() and CUDA_HOME is not None


def _sources(cuda: bool) -> list[Path]:
    srcs = [CSRC / "rsh_cpu.cpp"]
    if cuda:
        srcs.append(CSRC / "rsh_cuda.cu")
    return srcs


def build_dir(cuda: bool) -> tuple[Path, str]:
    """Cache directory and library name for the current sources, flags and torch."""
    h = hashlib.sha256()
    for path in sorted(CSRC.iterdir()):
        if path.suffix in (".h", ".cpp", ".cu"):
            h.update(path.name.encode() + path.read_bytes())
    h.update(repr((CFLAGS, LDFLAGS, CUDA_FLAGS, cuda)).encode())
    sha = h.hexdigest()[:16]
    root = os.environ.get("RSH_EXT_DIR")
    if root is None:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(cache) / "xtalnet" / f"torch-{torch.__version__}")
    name = f"rsh_ext_{'cuda' if cuda else 'cpu'}_{sha}"
    return Path(root) / f"rsh-{sha}", name


def _load() -> bool:
    if os.environ.get("RSH_DISABLE_EXT", "") not in ("", "0"):
        return False
    cuda = _want_cuda()
    directory, name = build_dir(cuda)
    lib = directory / f"{name}.so"
    if lib.is_file():
        torch.ops.load_library(str(lib))
        return True
    from torch.utils import cpp_extension

    directory.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(
        name=name,
        sources=[str(s) for s in _sources(cuda)],
        extra_cflags=CFLAGS,
        extra_cuda_cflags=CUDA_FLAGS,
        extra_ldflags=LDFLAGS,
        extra_include_paths=[str(CSRC)],
        build_directory=str(directory),
        is_python_module=False,
        verbose=False,
    )
    return True


def available() -> bool:
    """True once the extension is loaded and its ops registered (builds on first call)."""
    if "ok" in _state:  # fast path, lock-free so that torch.compile can trace through it
        return bool(_state["ok"])
    with _lock:
        if "ok" not in _state:
            try:
                ok = _load()
            except Exception as err:
                warnings.warn(
                    f"rsh: could not build the C++ extension ({type(err).__name__}: "
                    f"{str(err)[:300]}); falling back to the plain-torch backend. Install a "
                    "C++ compiler (g++) to get the fast backend.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                ok = False
            if ok:
                from . import _ops

                _ops.register()
            _state["ok"] = ok
        return bool(_state["ok"])


def cuda_available() -> bool:
    return available() and torch._C._dispatch_has_kernel_for_dispatch_key("rsh::sh", "CUDA")
