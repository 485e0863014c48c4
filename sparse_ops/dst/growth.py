"""Growth: where a layer's pruned units come back, computed without its dense shape.

- ``"random"``: exactly ``k`` positions drawn uniformly among the inactive ones.
- ``"gradient"`` (RigL): the ``k`` inactive positions of largest ``|∂L/∂W|``.
- ``"momentum"`` (Dettmers & Zettlemoyer's sparse momentum, dense-free): the ``k`` inactive
  positions of largest ``|Σ_t β^(T-t) ∂L/∂W_t|`` over the last ``window`` steps before the
  update at ``T`` — the SGD momentum buffer truncated to that window, rebuilt from the saved
  activations instead of kept dense.

For a layer ``Y = X Wᵀ`` the dense gradient is ``dW = dYᵀ X``. ``grad_row_tiles`` forms it a
``(rows, K)`` tile at a time from the saved ``X (B, K)`` and ``dY (B, M)``; the callers keep
a running top-k, so memory is O(nnz + tile), never O(M · K).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .distributed import all_reduce_sum_

GROWTH = ("random", "gradient", "momentum")


def check_growth(grow: object) -> str:
    if not isinstance(grow, str):
        raise TypeError(f"grow: expected one of {GROWTH}, got {type(grow).__name__}")
    if grow not in GROWTH:
        raise ValueError(f"grow: unknown growth {grow!r}; expected one of {GROWTH}")
    return grow


def grad_row_tiles(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor, float]],
    num_rows: int,
    row_step: int,
    group: object | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(r0, r1, Σ_i w_i · dY_i[:, r0:r1]ᵀ X_i)``: rows ``r0:r1`` of the dense gradient.

    ``pairs``: ``(X (B_i, K), dY (B_i, M), w_i)``. Each tile is ``(r1 - r0, K)`` and is summed
    over the ranks of ``group`` (None: no reduction).
    """
    if len(pairs) == 1:  # the usual case: no copies
        xs, dys, w = pairs[0]
        dys = dys * w if w != 1.0 else dys
    else:
        xs = torch.cat([x for x, _, _ in pairs])
        dys = torch.cat([dy * w if w != 1.0 else dy for _, dy, w in pairs])
    for r0 in range(0, num_rows, row_step):
        r1 = min(num_rows, r0 + row_step)
        tile = dys[:, r0:r1].t() @ xs
        yield r0, r1, all_reduce_sum_(tile, group)


def _pool_blocks(s: torch.Tensor, r: int, c: int) -> torch.Tensor:
    """``(t·R, Kb·C)`` → ``(t, Kb)``: the mean over each ``R x C`` block."""
    if r == 1 and c == 1:
        return s
    rows, cols = s.shape
    return s.reshape(rows // r, r, cols // c, c).mean((1, 3))


def _top(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` of the ``k`` largest of 1-D ``s`` (ties: lower index first), by a
    k-th value threshold: O(n), about twice as fast as ``torch.topk`` for large ``k``."""
    n = s.numel()
    if k >= n:
        return s, torch.arange(n, device=s.device)
    th = torch.kthvalue(s, n - k + 1).values
    above = (s > th).nonzero().squeeze(1)
    ties = (s == th).nonzero().squeeze(1)[: k - above.numel()]
    idx = torch.cat([above, ties])
    return s[idx], idx


def topk_inactive_grid(
    tiles: Iterator[tuple[int, int, torch.Tensor]],
    active_sorted: torch.Tensor,
    cols_u: int,
    blocksize: tuple[int, int],
    k: int,
) -> torch.Tensor:
    """int64 ids (``row_u · cols_u + col_u``, sorted) of the ``k`` inactive units of largest
    pooled ``|tile|``; ``active_sorted``: the active ids, ascending. Memory O(k + tile)."""
    r, c = blocksize
    vals: list[torch.Tensor] = []
    idxs: list[torch.Tensor] = []
    held = 0
    thr = -float("inf")  # the k-th best score so far: a unit below it can never enter

    def shrink() -> None:
        nonlocal vals, idxs, held, thr
        v, i = torch.cat(vals), torch.cat(idxs)
        if v.numel() > k:
            v, j = _top(v, k)
            i = i[j]
            thr = float(v.min())
        vals, idxs, held = [v], [i], v.numel()

    for r0, r1, tile in tiles:
        s = _pool_blocks(tile.abs(), r, c).reshape(-1)
        base = (r0 // r) * cols_u
        end = (r1 // r) * cols_u
        lo = int(torch.searchsorted(active_sorted, base))
        hi = int(torch.searchsorted(active_sorted, end))
        s[active_sorted[lo:hi] - base] = -float("inf")
        if held == 0:  # nothing held yet: the tile's own top k
            v, keep = _top(s, k)
        else:
            keep = (s > thr).nonzero().squeeze(1)
            v = s[keep]
            if keep.numel() > k:
                v, j = _top(v, k)
                keep = keep[j]
        if held == 0 and v.numel() == k:
            thr = float(v.min())
        vals.append(v)
        idxs.append(keep + base)
        held += keep.numel()
        if held > 2 * k:
            shrink()
    if not vals:
        return torch.zeros(0, dtype=torch.long)
    shrink()
    v, i = vals[0], idxs[0]
    return torch.sort(i[torch.isfinite(v)]).values


def random_inactive_grid(
    active_sorted: torch.Tensor, total: int, k: int, generator: torch.Generator
) -> torch.Tensor:
    """int64 ids (sorted) of exactly ``k`` distinct inactive units of ``[0, total)``, uniformly.

    Rejection sampling of candidate ids (never a ``total``-sized tensor): the first ``k``
    distinct inactive draws of an i.i.d. uniform stream are a uniform ``k``-subset.
    """
    inactive = total - active_sorted.numel()
    if k > inactive:
        raise ValueError(f"k: {k} exceeds the {inactive} inactive positions")
    chosen = torch.zeros(0, dtype=torch.long)
    n_act = active_sorted.numel()
    while chosen.numel() < k:
        need = k - chosen.numel()
        draws = min(int(need * total / max(inactive, 1) * 1.25) + 32, 1 << 24)
        cand = torch.randint(0, total, (draws,), generator=generator)
        if n_act:
            at = torch.searchsorted(active_sorted, cand).clamp(max=n_act - 1)
            cand = cand[active_sorted[at] != cand]
        merged = torch.cat([chosen, cand])
        uniq, inv = torch.unique(merged, return_inverse=True)
        first = torch.full((uniq.numel(),), merged.numel(), dtype=torch.long)
        first.scatter_reduce_(0, inv, torch.arange(merged.numel()), reduce="amin")
        chosen = merged[torch.sort(first).values][:k]
    return torch.sort(chosen).values


def nm_ranked_inactive(
    tiles: Iterator[tuple[int, int, torch.Tensor]] | None,
    positions: torch.Tensor,
    num_cols: int,
    m: int,
    keep: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """int64 ``(M, G, keep)``: per group of ``m``, the ``keep`` best inactive in-group positions.

    ``positions``: ``(M, G, n)`` active positions. Best by ``|tile|`` (``tiles`` of the dense
    gradient) or, with ``tiles=None``, at random from ``generator``. Columns ``>= num_cols``
    (a last partial group) and active positions rank last.
    """
    rows, g, _ = positions.shape
    out = torch.zeros(rows, g, keep, dtype=torch.long)
    valid = (torch.arange(g * m) < num_cols).view(1, g, m)

    def rank(r0: int, r1: int, s: torch.Tensor) -> None:
        s = s.masked_fill(~valid, -float("inf"))
        s.scatter_(-1, positions[r0:r1], -float("inf"))
        order = torch.sort(s, dim=-1, descending=True, stable=True).indices
        out[r0:r1] = order[..., :keep]

    if tiles is None:
        step = max(1, (1 << 20) // max(g * m, 1))
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            rank(r0, r1, torch.rand(r1 - r0, g, m, generator=generator, dtype=torch.float64))
        return out
    for r0, r1, tile in tiles:
        s = torch.zeros(r1 - r0, g * m, dtype=tile.dtype)
        s[:, :num_cols] = tile.abs()
        rank(r0, r1, s.view(r1 - r0, g, m))
    return out
