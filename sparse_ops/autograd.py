"""Autograd for the three products, shared by every backend that registers custom ops.

With ``S`` given by structure + values, the products are linear in each operand, so each one's
backward is made of the other two (never a densified ``S``):

- ``Y = spmm(S, X)``:    ``dvalues = sddmm(dY, X)``, ``dX = spmm_t(S, dY)``
- ``Z = spmm_t(S, D)``:  ``dvalues = sddmm(D, dZ)``, ``dD = spmm(S, dZ)``
- ``V = sddmm(A, B)``:   ``dA = spmm(S_dV, B)``,    ``dB = spmm_t(S_dV, A)``
- ``Y = linear(S, X) = X @ S^T`` (``X (B, K)``, ``Y (B, M)``):
  ``dvalues = sddmm(dY^T, X^T)``, ``dX = spmm_t(S, dY^T)^T``

so double backward works too. The formulas only: the backends' products are registered in
``registry.py`` (``register_backend``), which calls ``register_product_autograd``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .registry import ProductOps


def register_product_autograd(ops: ProductOps) -> None:
    """Register the backward of each of ``ops``' three custom ops."""
    ns = ops.n_struct

    def save(ctx, inputs, n_tensors):
        ctx.save_for_backward(*inputs[:n_tensors])
        ctx.rest = tuple(inputs[n_tensors:])

    def spmm_setup(ctx, inputs, output):
        save(ctx, inputs, ns + 2)

    def spmm_backward(ctx, gy):
        *struct, values, x = ctx.saved_tensors
        params = ctx.rest
        gv = ops.sddmm(*struct, gy, x, *params) if ctx.needs_input_grad[ns] else None
        gx = (
            ops.spmm_t(*struct, values, gy, x.shape[0], *params)
            if ctx.needs_input_grad[ns + 1]
            else None
        )
        return (None,) * ns + (gv, gx) + (None,) * len(params)

    def spmm_t_setup(ctx, inputs, output):
        save(ctx, inputs, ns + 2)

    def spmm_t_backward(ctx, gz):
        *struct, values, d = ctx.saved_tensors
        params = ctx.rest[1:]  # drop num_cols
        gv = ops.sddmm(*struct, d, gz, *params) if ctx.needs_input_grad[ns] else None
        gd = ops.spmm(*struct, values, gz, *params) if ctx.needs_input_grad[ns + 1] else None
        return (None,) * ns + (gv, gd, None) + (None,) * len(params)

    def sddmm_setup(ctx, inputs, output):
        save(ctx, inputs, ns + 2)

    def sddmm_backward(ctx, gv):
        *struct, a, b = ctx.saved_tensors
        params = ctx.rest
        gv = gv.contiguous()
        ga = ops.spmm(*struct, gv, b, *params) if ctx.needs_input_grad[ns] else None
        gb = (
            ops.spmm_t(*struct, gv, a, b.shape[0], *params)
            if ctx.needs_input_grad[ns + 1]
            else None
        )
        return (None,) * ns + (ga, gb) + (None,) * len(params)

    def linear_setup(ctx, inputs, output):
        save(ctx, inputs, ns + 2)  # rest: (bias, *params)

    def linear_backward(ctx, gy):
        *struct, values, x = ctx.saved_tensors
        params = ctx.rest[1:]
        gyt = gy.t()
        gv = ops.sddmm(*struct, gyt, x.t(), *params) if ctx.needs_input_grad[ns] else None
        gx = (
            ops.spmm_t(*struct, values, gyt, x.shape[1], *params).t()
            if ctx.needs_input_grad[ns + 1]
            else None
        )
        gb = gy.sum(0) if ctx.needs_input_grad[ns + 2] else None
        return (None,) * ns + (gv, gx, gb) + (None,) * len(params)

    if ops.linear is not None:
        torch.library.register_autograd(ops.linear, linear_backward, setup_context=linear_setup)
    torch.library.register_autograd(ops.spmm, spmm_backward, setup_context=spmm_setup)
    torch.library.register_autograd(ops.spmm_t, spmm_t_backward, setup_context=spmm_t_setup)
    torch.library.register_autograd(ops.sddmm, sddmm_backward, setup_context=sddmm_setup)
