"""Carry an optimizer's per-parameter state across a rewrite of a layer's structure.

A rewrite is described by ``src``: for each new stored unit, the old unit it keeps (``>= 0``)
or ``-1`` for a grown one. Every state tensor shaped like the parameter (SGD's
``momentum_buffer``, Adam/AdamW's ``exp_avg``/``exp_avg_sq``/``max_exp_avg_sq``, …) is
permuted in place: kept units keep their state, grown ones start at zero. Scalars such as
Adam's ``step`` are left alone.
"""

from __future__ import annotations

import torch


def remap(t: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """A new tensor shaped like ``t``: unit ``j`` is ``t``'s unit ``src[j]``, or 0 if ``-1``.

    ``t``: ``(units, ...)`` or any shape whose elements group into ``src.numel()`` units
    (N:M ``(M, S)`` slots are flattened).
    """
    flat = t.reshape(src.numel(), -1)
    out = flat[src.clamp(min=0)]
    out[src < 0] = 0
    return out.reshape(t.shape)


@torch.no_grad()
def remap_inplace(t: torch.Tensor, src: torch.Tensor) -> None:
    """``t.copy_(remap(t, src))``: the tensor object (a Parameter, a state buffer) stays."""
    t.copy_(remap(t, src))


@torch.no_grad()
def remap_optimizer_state(
    optimizer: torch.optim.Optimizer | None, param: torch.Tensor, src: torch.Tensor
) -> list[str]:
    """Remap, in place, every state tensor of ``param`` shaped like it; the names remapped."""
    if optimizer is None:
        return []
    state = optimizer.state.get(param)
    if not state:
        return []
    done = []
    for key, v in state.items():
        if isinstance(v, torch.Tensor) and v.shape == param.shape and v.dim() > 0:
            remap_inplace(v, src)
            done.append(key)
    return done
