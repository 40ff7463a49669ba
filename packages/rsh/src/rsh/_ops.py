"""Fake kernels and autograd for the ``rsh::sh`` / ``rsh::sh_grad`` ops (torch.library).

Backward of ``sh`` calls ``sh_vjp`` (generated gradient kernel contracted per point).
Backward of ``sh_grad`` and ``sh_vjp`` (needed for double backward, e.g. forces) is a
vector-Jacobian product through the generated plain-torch code, so it is differentiable.
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


def _sh_vjp_fake(xyz, grad, l_max, normalize):
    return xyz.new_empty((xyz.shape[0], 3))


def _sh_backward(ctx, grad):
    (xyz,) = ctx.saved_tensors
    # Fused kernel: contracts dY with grad per point, never writes [N, 3, K].
    return torch.ops.rsh.sh_vjp(xyz, grad.contiguous(), ctx.l_max, ctx.normalize), None, None


def _setup_vjp(ctx, inputs, output):
    xyz, grad, l_max, normalize = inputs
    ctx.save_for_backward(xyz, grad)
    ctx.l_max = l_max
    ctx.normalize = normalize


def _sh_vjp_backward(ctx, gg):
    xyz, grad = ctx.saved_tensors

    def f(p, g):
        _, dy = _torch_backend.forward_and_gradient(p, ctx.l_max, ctx.normalize)
        return (dy * g.unsqueeze(-2)).sum(-1)

    _, vjp = torch.func.vjp(f, xyz, grad)
    gp, gg_grad = vjp(gg)
    return gp, gg_grad, None, None


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
    torch.library.register_fake("rsh::sh_vjp")(_sh_vjp_fake)
    torch.library.register_autograd("rsh::sh_vjp", _sh_vjp_backward, setup_context=_setup_vjp)
    _registered = True
