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


def prepare_ddp(model: torch.nn.Module, group: object | None = None) -> list[str]:
    """Ready a model of ``SparseLinear`` layers for ``DistributedDataParallel``; call it before
    wrapping. Broadcasts each layer's structure buffers from rank 0 (as int64: gloo has no
    int16) and tells DDP to leave them alone (``broadcast_buffers`` cannot send int16 either;
    the structures stay equal because every update agrees). Returns the ignored names."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ..layer import SparseLinear

    names = []
    grp = active_group(group)
    for prefix, mod in model.named_modules():
        if not isinstance(mod, SparseLinear):
            continue
        for b in mod.structure_names:
            buf = getattr(mod, b)
            if grp is not None:
                wide = buf.to(torch.int64)
                dist.broadcast(wide, src=0, group=grp)
                buf.copy_(wide)
            names.append(f"{prefix}.{b}" if prefix else b)
        # the transposed structure is derived on each rank from the (equal) structure
        names += [f"{prefix}.{b}" if prefix else b for b in mod.aux_names]
        if mod.aux_names and mod._buffers[mod.aux_names[0]] is not None:
            mod.refresh_transposed()
    DDP._set_params_and_buffers_to_ignore_for_model(model, names)
    return names
