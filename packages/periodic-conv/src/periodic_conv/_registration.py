"""torch.library registrations of the compiled operators: fake (meta) kernels, autograd.

The schemas are declared once, in ``csrc/conv_ops.h`` (registered by ``conv_cpu.cpp``).
"""

from __future__ import annotations

import torch

__all__ = ["register"]

_REGISTERED = False


def register() -> None:
    """Fake kernels and autograd formulas of conv_fwd / conv_bwd (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True

    @torch.library.register_fake("periodic_conv::conv_fwd")
    def _fwd_fake(F, Y, R, src, dst, scale, row_ptr, src_perm, src_ptr, paths, kptr, cflat,
                  in_off, out_off, dim_out, max_deg, max_mul, max_lo, max_li,
                  deterministic):  # fmt: skip
        return F.new_empty(F.shape[0], dim_out)

    @torch.library.register_fake("periodic_conv::conv_bwd")
    def _bwd_fake(G, F, Y, R, src, dst, scale, row_ptr, src_perm, src_ptr, paths, kptr, cflat,
                  in_off, out_off, max_deg, max_mul, max_lo, max_li, need_F, need_Y,
                  need_R):  # fmt: skip
        return (
            F.new_empty(F.shape if need_F else (0,)),
            Y.new_empty(Y.shape if need_Y else (0,)),
            R.new_empty(R.shape if need_R else (0,)),
        )

    def _setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:14])  # the tensors, in schema order
        ctx.maxima = inputs[15:19]  # max_deg, max_mul, max_lo, max_li

    def _backward(ctx, G):
        tensors = ctx.saved_tensors
        need_F, need_Y, need_R = ctx.needs_input_grad[:3]
        dF, dY, dR = torch.ops.periodic_conv.conv_bwd(
            G.contiguous(), *tensors, *ctx.maxima, need_F, need_Y, need_R
        )
        return (
            dF if need_F else None,
            dY if need_Y else None,
            dR if need_R else None,
            *([None] * 17),
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
