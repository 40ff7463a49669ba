"""The accepted values of ``backend=``, in plain Python: importing them loads no torch.

``from periodic_conv import BACKENDS`` lets a configuration (xtalnet's) check a backend
name without importing torch; :func:`periodic_conv._backends.resolve_backend` and
:class:`periodic_conv.PeriodicConvolution` check with :func:`check_backend`, one message.
"""

from __future__ import annotations

__all__ = ["BACKENDS", "ORDERS", "check_backend", "check_order"]

#: Accepted values of ``backend=``: "auto" picks "cuda" for CUDA tensors, "cpp" for CPU
#: tensors when the extension builds, else "torch"; "reference" materialises the kernel.
BACKENDS: tuple[str, ...] = ("auto", "reference", "torch", "cpp", "cuda")


def check_backend(backend: object) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise ValueError naming it."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


#: Accepted values of ``order=`` (radial factors only): "edges" forms R per edge chunk for the
#: backend's kernels, "nodes" applies the radial weight matrix per atom first
#: (:mod:`periodic_conv._nodes_first`), "auto" picks "nodes" for CPU tensors when the input
#: features are scalars only (where it measured faster) and the backend is "auto" or
#: "torch", and "edges" elsewhere.
ORDERS: tuple[str, ...] = ("auto", "edges", "nodes")


def check_order(order: object) -> str:
    """Return ``order`` if it is one of :data:`ORDERS`, else raise ValueError naming it."""
    if not isinstance(order, str) or order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order
