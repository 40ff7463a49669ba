"""The accepted values of ``backend=``, in plain Python: importing them loads no torch.

``from periodic_conv import BACKENDS`` lets a configuration (xtalnet's) check a backend
name without importing torch; :func:`periodic_conv._backends.resolve_backend` and
:class:`periodic_conv.PeriodicConvolution` check with :func:`check_backend`, one message.
"""

from __future__ import annotations

__all__ = ["BACKENDS", "check_backend"]

#: Accepted values of ``backend=``: "auto" picks "cuda" for CUDA tensors, "cpp" for CPU
#: tensors when the extension builds, else "torch"; "reference" materialises the kernel.
BACKENDS: tuple[str, ...] = ("auto", "reference", "torch", "cpp", "cuda")


def check_backend(backend: object) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise ValueError naming it."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend
