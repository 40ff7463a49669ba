"""Compiled backends: build/load the C++ (and CUDA) extension, torch.library registrations.

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

from periodic_conv._paths import PathTable

__all__ = [
    "conv_compiled",
    "cpp_available",
    "cuda_available",
    "extension_ready",
    "load_extension",
]

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
    _register()
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


# ----------------------------------------------------------------------------- tables
@functools.lru_cache(maxsize=64)
def _table_tensors(table: PathTable, dtype: torch.dtype, device: torch.device):
    """Network-lifetime tensors (thesis §3.3.4): path rows, block pointers, flat C, offsets."""
    rows, cs, c_off = [], [], 0
    for p, C in zip(table.paths, table.couplings):
        rows.append([p.k, p.i, p.l, p.l_out, p.l_in, p.u, p.v, p.offset, c_off])
        cs.append(C.flatten())
        c_off += C.numel()
    paths = torch.tensor(rows, dtype=torch.long, device=device)
    n_out = len(table.irreps_out)
    kptr = torch.zeros(n_out + 1, dtype=torch.long)
    for p in table.paths:
        kptr[p.k + 1] += 1
    kptr = kptr.cumsum(0).to(device)
    cflat = torch.cat(cs).to(dtype=dtype, device=device)
    in_off = torch.tensor(table.in_offsets, dtype=torch.long, device=device)
    out_off = torch.tensor(table.out_offsets, dtype=torch.long, device=device)
    return paths, kptr, cflat, in_off, out_off


# ----------------------------------------------------------------------------- registration
_REGISTERED = False


def _register() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True

    @torch.library.register_fake("periodic_conv::conv_fwd")
    def _fwd_fake(F, Y, R, src, dst, scale, row_ptr, src_perm, src_ptr, paths, kptr, cflat,
                  in_off, out_off, dim_out, deterministic):  # fmt: skip
        return F.new_empty(F.shape[0], dim_out)

    @torch.library.register_fake("periodic_conv::conv_bwd")
    def _bwd_fake(G, F, Y, R, src, dst, scale, row_ptr, src_perm, src_ptr, paths, cflat,
                  in_off, out_off, need_F, need_Y, need_R):  # fmt: skip
        return (
            F.new_empty(F.shape if need_F else (0,)),
            Y.new_empty(Y.shape if need_Y else (0,)),
            R.new_empty(R.shape if need_R else (0,)),
        )

    def _setup(ctx, inputs, output):
        (F, Y, R, src, dst, scale, row_ptr, src_perm, src_ptr, paths, _, cflat, in_off, out_off,
         _, _) = inputs  # fmt: skip
        ctx.save_for_backward(
            F, Y, R, src, dst, scale, row_ptr, src_perm, src_ptr, paths, cflat, in_off, out_off
        )

    def _backward(ctx, G):
        (F, Y, R, src, dst, scale, row_ptr, src_perm, src_ptr, paths, cflat, in_off,
         out_off) = ctx.saved_tensors  # fmt: skip
        need_F, need_Y, need_R = ctx.needs_input_grad[:3]
        dF, dY, dR = torch.ops.periodic_conv.conv_bwd(
            G.contiguous(), F, Y, R, src, dst, scale, row_ptr, src_perm, src_ptr, paths, cflat,
            in_off, out_off, need_F, need_Y, need_R,
        )  # fmt: skip
        return (
            dF if need_F else None,
            dY if need_Y else None,
            dR if need_R else None,
            *([None] * 13),
        )

    torch.library.register_autograd("periodic_conv::conv_fwd", _backward, setup_context=_setup)

    def _no_double_backward(ctx, *grads):
        # Without this, a second derivative through the compiled backward would be silently
        # missing (treated as constant); fail loudly instead.
        raise RuntimeError(
            "double backward is not implemented by the cpp/cuda backends; use backend='torch' "
            "(e.g. for training on forces)"
        )

    def _no_setup(ctx, inputs, output):
        return None

    torch.library.register_autograd(
        "periodic_conv::conv_bwd", _no_double_backward, setup_context=_no_setup
    )


def conv_compiled(F, Y, R, hub, scale, table: PathTable, backend: str,
                  deterministic: bool = True) -> torch.Tensor:  # fmt: skip
    """Run the compiled fused op (cpp on CPU tensors); CSR index arrays come from the hub."""
    if not load_extension():
        raise RuntimeError(f"backend={backend!r} is unavailable: the extension did not build")
    want = "cuda" if backend == "cuda" else "cpu"
    if F.device.type != want:
        raise ValueError(f"backend={backend!r} needs {want} tensors, got features on {F.device}")
    if want == "cuda" and not cuda_available():
        raise RuntimeError("backend='cuda' needs a CUDA build of torch and a visible GPU")
    row_ptr, src_perm, src_ptr = hub.csr()
    paths, kptr, cflat, in_off, out_off = _table_tensors(table, F.dtype, F.device)
    return torch.ops.periodic_conv.conv_fwd(
        F.contiguous(), Y.contiguous(), R.contiguous(), hub.src, hub.dst, scale.contiguous(),
        row_ptr, src_perm, src_ptr, paths, kptr, cflat, in_off, out_off, table.irreps_out.dim,
        deterministic,
    )  # fmt: skip
