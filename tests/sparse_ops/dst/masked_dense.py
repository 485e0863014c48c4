"""A masked-dense float64 reference of one DST update: dense weight, dense mask, dense gradient.

This is how the mask-based DST libraries do it; the tests check that ``so.dst`` (which never
builds these dense tensors) picks the same masks.
"""

from __future__ import annotations

import os

import torch

import sparse_ops as so

EPS = 1e-12
# The default backend unless SPARSE_OPS_DST_BACKEND names another (while C++ is rebuilt).
BACKEND = os.environ.get("SPARSE_OPS_DST_BACKEND") or None


def on_backend(model: torch.nn.Module) -> torch.nn.Module:
    """Set every SparseLinear of ``model`` to ``BACKEND`` (None: the default)."""
    for mod in model.modules():
        if isinstance(mod, so.SparseLinear):
            mod.backend = BACKEND
    return model


def structure_mask(mod: so.SparseLinear) -> torch.Tensor:
    """bool ``(M, K)``: the positions a layer stores (from its index tensors, not its values)."""
    m, k = mod.out_features, mod.in_features
    w = mod.sparse_weight()
    mask = torch.zeros(m, k, dtype=torch.bool)
    if mod.layout == "csr":
        mask[w.row_indices(), w.col_indices.long()] = True
    elif mod.layout == "bsr":
        r, c = w.blocksize
        blocks = torch.zeros(m // r, k // c, dtype=torch.bool)
        blocks[w.block_row_indices(), w.col_indices.long()] = True
        mask = blocks.repeat_interleave(r, 0).repeat_interleave(c, 1)
    else:
        rows = torch.arange(m).unsqueeze(1).expand_as(w.columns())
        mask[rows, w.columns()] = True
    return mask


def dense_score(criterion: str, w: torch.Tensor, g: torch.Tensor, gamma: float = 1.0):
    a, b = w.abs(), g.abs()
    return {
        "magnitude": a,
        "mest": a + gamma * b,
        "snip": a * b,
        "sensitivity": b / (a + EPS),
        "reciprocal_sensitivity": a / (b + EPS),
        "set": w,
    }[criterion]


def _blocks(t: torch.Tensor, r: int, c: int) -> torch.Tensor:
    m, k = t.shape
    return t.reshape(m // r, r, k // c, c).permute(0, 2, 1, 3).reshape(m // r, k // c, r * c)


def _lowest_k(score: torch.Tensor, cand: torch.Tensor, k: int) -> torch.Tensor:
    """bool like ``score``: the ``k`` lowest among ``cand`` (stable, row-major order)."""
    flat = torch.where(cand, score, torch.full_like(score, float("inf"))).reshape(-1)
    out = torch.zeros(flat.numel(), dtype=torch.bool)
    out[torch.sort(flat, stable=True).indices[:k]] = True
    return out.view_as(score) & cand


def _prune_set(w: torch.Tensor, cand: torch.Tensor, k: int) -> torch.Tensor:
    pos, neg = cand & (w >= 0), cand & (w < 0)
    k_neg = min(k // 2, int(neg.sum()))
    k_pos = min(k - k_neg, int(pos.sum()))
    k_neg = min(k - k_pos, int(neg.sum()))
    return _lowest_k(w, pos, k_pos) | _lowest_k(-w, neg, k_neg)


def grid_update(criterion: str, w, mask, g, k: int, blocksize=(1, 1)) -> torch.Tensor:
    """The new dense mask of a CSR (``blocksize`` 1x1) or BSR layer after one update."""
    r, c = blocksize
    wb, gb, mb = _blocks(w, r, c), _blocks(g, r, c), _blocks(mask, r, c).any(-1)
    if criterion == "set":
        pruned = _prune_set(wb.mean(-1), mb, k)
    else:
        pruned = _lowest_k(dense_score(criterion, wb, gb).mean(-1), mb, k)
    grow = gb.abs().mean(-1).masked_fill(mb, -float("inf")).reshape(-1)
    grown = torch.zeros(grow.numel(), dtype=torch.bool)
    grown[torch.topk(grow, k).indices] = True
    new = (mb & ~pruned) | grown.view_as(mb)
    return new.repeat_interleave(r, 0).repeat_interleave(c, 1)


def nm_update(criterion: str, w, mask, g, k: int, n: int, m: int) -> torch.Tensor:
    """The new dense mask of an N:M layer: each group prunes some slots and regrows as many."""
    rows, cols = w.shape
    groups = -(-cols // m)
    pad = groups * m - cols

    def grp(t, fill):
        return torch.nn.functional.pad(t, (0, pad), value=fill).view(rows, groups, m)

    wg, gg, mg = grp(w, 0.0), grp(g, 0.0), grp(mask, False)
    valid = grp(torch.ones(rows, cols, dtype=torch.bool), False)
    cap = (valid.sum(-1) - n).clamp(min=0)
    key = wg.abs() if criterion == "set" else dense_score(criterion, wg, gg)
    key_act = key.masked_fill(~mg, float("inf"))
    rank = torch.sort(torch.sort(key_act, dim=-1, stable=True).indices, dim=-1).indices
    eligible = mg & (rank < cap.unsqueeze(-1))
    if criterion == "set":
        pruned = _prune_set(wg, eligible, k)
    else:
        pruned = _lowest_k(key, eligible, k)
    count = pruned.sum(-1, keepdim=True)
    free = valid & ~mg
    gscore = gg.abs().masked_fill(~free, -float("inf"))
    gorder = torch.sort(gscore, dim=-1, descending=True, stable=True).indices
    grank = torch.sort(gorder, dim=-1).indices
    grown = free & (grank < count)
    new = (mg & ~pruned) | grown
    return new.reshape(rows, groups * m)[:, :cols]
