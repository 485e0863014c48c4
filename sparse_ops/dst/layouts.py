"""Each layout's view of a ``SparseLinear`` for an update: its units, what is free, a rewrite.

- CSR and BSR (``GridLayer``): units on a grid of ``(M/R, K/C)`` (``R = C = 1`` for CSR), a
  unit's id is ``row_u · (K/C) + col_u``. A rewrite keeps ``nnz`` and re-sorts the ids, so
  rows stay in order and columns ascend within a row (no duplicates).
- N:M (``NMLayer``): units are the ``(M, G·n)`` slots; a group of ``m`` can swap at most its
  number of free valid positions (``m - n`` for a full group), and its slots stay sorted.

A rewrite writes the structure buffers in place (``copy_``: same shapes, the nnz is kept) and
returns ``src``: for each new unit the old unit it keeps, or ``-1`` for a grown one; the caller
moves values, gradients and optimizer state with it (``optimizer_state.remap``).
"""

from __future__ import annotations

import torch

from ..layer import SparseLinear
from ..nm import num_groups, pack_positions, unpack_positions


class GridLayer:
    """CSR or BSR: units on the block grid."""

    def __init__(self, module: SparseLinear) -> None:
        self.module = module
        m, k = module.out_features, module.in_features
        self.blocksize = (1, 1) if module.layout == "csr" else tuple(module.params_)
        r, c = self.blocksize
        self.rows_u, self.cols_u = m // r, k // c

    @property
    def units(self) -> int:
        return int(self.module.values.shape[0])

    @property
    def total(self) -> int:
        return self.rows_u * self.cols_u

    def active_ids(self) -> torch.Tensor:
        """int64 ``(units,)``: the id of each stored unit, in storage order."""
        crow = self.module.crow_indices
        rows = torch.repeat_interleave(
            torch.arange(self.rows_u, device=crow.device), crow.diff().long(),
            output_size=self.units,
        )
        return rows * self.cols_u + self.module.col_indices.long()

    def capacity(self) -> int:
        """The most units one update can swap: the free positions."""
        return min(self.units, self.total - self.units)

    @torch.no_grad()
    def rewrite(self, ids: torch.Tensor, pruned: torch.Tensor, grown: torch.Tensor) -> torch.Tensor:
        """Drop units ``pruned`` (indices into storage), add ids ``grown``; return ``src``."""
        keep = torch.ones(self.units, dtype=torch.bool, device=ids.device)
        keep[pruned] = False
        kept = keep.nonzero().squeeze(1)
        kept_ids, grown = ids[kept], grown.to(ids.device)
        if kept_ids.numel() > 1 and not bool((kept_ids.diff() > 0).all()):
            kept_ids, order = torch.sort(kept_ids)  # storage not in row-major order
            kept = kept[order]
        # Merge two ascending id lists (grown ones are inactive, so never equal to a kept one).
        total = kept_ids.numel() + grown.numel()
        at_grown = torch.searchsorted(kept_ids, grown) + torch.arange(grown.numel(),
                                                                      device=ids.device)
        is_grown = torch.zeros(total, dtype=torch.bool, device=ids.device)
        is_grown[at_grown] = True
        new_ids = torch.empty(total, dtype=torch.long, device=ids.device)
        src = torch.full((total,), -1, dtype=torch.long, device=ids.device)
        new_ids[at_grown] = grown
        new_ids[~is_grown] = kept_ids
        src[~is_grown] = kept
        mod = self.module
        counts = torch.bincount(new_ids // self.cols_u, minlength=self.rows_u)
        crow = torch.zeros_like(mod.crow_indices)
        crow[1:] = torch.cumsum(counts, 0)
        mod.crow_indices.copy_(crow)
        mod.col_indices.copy_(new_ids % self.cols_u)
        if mod._buffers[mod.aux_names[0]] is not None:  # the backward reads it: keep it true
            mod.refresh_transposed()
        return src


class NMLayer:
    """N:M: units are slots, grouped by ``n`` per group of ``m`` columns."""

    def __init__(self, module: SparseLinear) -> None:
        self.module = module
        self.n, self.m = (int(v) for v in module.params_)
        self.rows, self.num_cols = module.out_features, module.in_features
        self.groups = num_groups(self.num_cols, self.m)
        valid = [min(self.m, self.num_cols - g * self.m) for g in range(self.groups)]
        # A group swaps at most its free valid positions; groups with <= n valid columns
        # (padded slots) are left alone.
        self.cap = torch.tensor([v - self.n if v > self.n else 0 for v in valid],
                                dtype=torch.long)

    @property
    def units(self) -> int:
        return self.rows * self.groups * self.n

    def positions(self) -> torch.Tensor:
        """int64 ``(M, G, n)`` in-group positions of the slots."""
        pos = unpack_positions(self.module.metadata, self.groups * self.n, self.m)
        return pos.view(self.rows, self.groups, self.n)

    def capacity(self) -> int:
        return int(self.cap.sum()) * self.rows if self.n else 0

    def eligible(self, score: torch.Tensor) -> torch.Tensor:
        """bool ``(units,)``: slots whose rank (by ``score`` ascending) in their group is below
        the group's cap, so that no group loses more than it can regrow."""
        s = score.view(self.rows, self.groups, self.n)
        order = torch.sort(s, dim=-1, stable=True).indices
        rank = torch.empty_like(order)
        rank.scatter_(-1, order, torch.arange(self.n).expand_as(order).contiguous())
        return (rank < self.cap.view(1, -1, 1)).reshape(-1)

    def pruned_counts(self, pruned: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(self.units, dtype=torch.bool)
        mask[pruned] = True
        return mask.view(self.rows, self.groups, self.n)

    @torch.no_grad()
    def rewrite(self, pos: torch.Tensor, pruned_mask: torch.Tensor,
                ranked: torch.Tensor) -> torch.Tensor:
        """Give each group's pruned slots (``(M, G, n)`` mask) its best ``ranked`` free
        positions (``(M, G, c)``, best first) in slot order; return ``src``."""
        c = ranked.shape[-1]
        slot_rank = (torch.cumsum(pruned_mask.long(), -1) - 1).clamp(min=0, max=max(c - 1, 0))
        if c:
            new_pos = torch.where(pruned_mask, ranked.gather(-1, slot_rank), pos)
        else:
            new_pos = pos
        src = torch.arange(self.units).view_as(pos).clone()
        src[pruned_mask] = -1
        new_pos, perm = torch.sort(new_pos, dim=-1, stable=True)
        src = src.gather(-1, perm)
        packed = pack_positions(new_pos.reshape(self.rows, -1), self.m)
        self.module.metadata.copy_(packed)
        return src.reshape(-1)


def view_of(module: SparseLinear) -> GridLayer | NMLayer:
    if module.layout in ("csr", "bsr"):
        return GridLayer(module)
    if module.layout == "nm":
        return NMLayer(module)
    raise ValueError(f"model: layer layout {module.layout!r} is not supported by dst")
