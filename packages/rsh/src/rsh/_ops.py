"""Fake kernels and autograd for the ``rsh::sh`` / ``rsh::sh_grad`` ops (torch.library).

Backward of ``sh`` calls ``sh_grad`` (generated gradient kernel). Backward of ``sh_grad``
(needed for double backward, e.g. forces) is a vector-Jacobian product through the
generated plain-torch code, so it is itself differentiable.
"""

from __future__ import annotations

import torch

from . import _torch_backend

_registered = False


def _k(l_max: int) -> int:
    return (l_max + 1) ** 2


def _sh_fake(xyz, l_max, normalize):
    return xyz.new_empty((xyz.shape[0], _k(l_max)))


def _sh_grad_fake(xyz, l_max, normalize):
    return xyz.new_empty((xyz.shape[0], _k(l_max))), xyz.new_empty((xyz.shape[0], 3, _k(l_max)))


def _setup(ctx, inputs, output):
    xyz, l_max, normalize = inputs
    ctx.save_for_backward(xyz)
    ctx.l_max = l_max
    ctx.normalize = normalize


def _sh_backward(ctx, grad):
    (xyz,) = ctx.saved_tensors
    _, dy = torch.ops.rsh.sh_grad(xyz, ctx.l_max, ctx.normalize)
    return (dy * grad.unsqueeze(-2)).sum(-1), None, None


def _sh_grad_backward(ctx, grad_y, grad_dy):
    (xyz,) = ctx.saved_tensors

    def f(p):
        return _torch_backend.forward_and_gradient(p, ctx.l_max, ctx.normalize)

    outs, vjp = torch.func.vjp(f, xyz)
    grad_y = torch.zeros_like(outs[0]) if grad_y is None else grad_y
    grad_dy = torch.zeros_like(outs[1]) if grad_dy is None else grad_dy
    (gx,) = vjp((grad_y, grad_dy))
    return gx, None, None


def register() -> None:
    global _registered
    if _registered:
        return
    torch.library.register_fake("rsh::sh")(_sh_fake)
    torch.library.register_fake("rsh::sh_grad")(_sh_grad_fake)
    torch.library.register_autograd("rsh::sh", _sh_backward, setup_context=_setup)
    torch.library.register_autograd("rsh::sh_grad", _sh_grad_backward, setup_context=_setup)
    _registered = True
