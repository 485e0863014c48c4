"""``torch.distributed`` support: every rank must end an update with the same structure.

Values and their gradients are already equal on every rank under DDP (gradients averaged),
so pruning scores agree. Growth scores built from each rank's own activations are summed over
ranks tile by tile (``all_reduce`` of a ``(tile, K)`` block: memory O(tile)), and random
choices use generators seeded from ``(seed, step, layer)`` only, identical on every rank.
``structure_digest`` lets a caller (or a test) check agreement cheaply.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def active_group(group: object | None = None) -> object | None:
    """The process group to reduce over, or None when not running distributed (1 rank)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    if dist.get_world_size(group) <= 1:
        return None
    return group if group is not None else dist.group.WORLD


def all_reduce_sum_(t: torch.Tensor, group: object | None) -> torch.Tensor:
    """Sum ``t`` over the ranks of ``group`` in place (no-op for None)."""
    if group is not None:
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t


def structure_digest(tensors: list[torch.Tensor]) -> torch.Tensor:
    """int64 ``(2,)`` checksum of index tensors: equal structures give equal digests."""
    total = torch.zeros(2, dtype=torch.int64)
    for i, t in enumerate(tensors):
        v = t.detach().reshape(-1).to(torch.int64).cpu()
        w = torch.arange(1, v.numel() + 1, dtype=torch.int64) * (2 * i + 3)
        total[0] += v.sum()
        total[1] += ((v + 1) * w % 1_000_003).sum()
    return total


def check_same_structure(tensors: list[torch.Tensor], group: object | None) -> bool:
    """True when every rank of ``group`` holds the same ``tensors`` (by digest)."""
    if group is None:
        return True
    d = structure_digest(tensors)
    lo, hi = d.clone(), d.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=group)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=group)
    return bool(torch.equal(lo, hi))
