"""Pruning to each sparsity pattern: dense in, dense with zeros out.

Two scores: ``"magnitude"`` (``|W_ij|``) and ``"wanda"`` (``|W_ij| * ||x_j||_2``, Sun et al.
2023, "A Simple and Effective Pruning Approach for Large Language Models", with ``||x_j||_2``
the L2 norm of input feature ``j`` over calibration tokens). Each layout belongs to a family that
says which entries compete for the kept slots (its registry entry's ``family``, then
``_SELECT``):

============  ===============================  ===============================================
family        magnitude                        wanda
============  ===============================  ===============================================
unstructured  the whole matrix: the            each output row: ``round(density * K)`` per
(csr, bitmap) ``round(density * M * K)`` top   row (Wanda's comparison group)
block (bsr)   ``round(density * blocks)`` blocks of largest L2 norm of the (scaled) weight
nm            the ``n`` largest scores of every ``m`` consecutive entries along the last dim
============  ===============================  ===============================================

Selection is by a k-th value (no full sort). Ties are broken deterministically: among equal
scores at the threshold, the entries (or blocks) with the smaller row-major index are kept,
the same result a stable descending sort would give.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._checks import check_blocksize, check_density, check_float, check_nm, check_tensor
from .nm import num_groups
from .registry import get_layout

METHODS = ("magnitude", "wanda")

# Above this many scores, the k-th value is bracketed from a sample first (see _kth_largest).
_SAMPLE_ABOVE = 1 << 17
_SAMPLE_SIZE = 1 << 16


def check_pattern(pattern: object) -> str:
    return get_layout(pattern, "pattern").name


def _family(pattern: str) -> str:
    return get_layout(pattern, "pattern").family


def check_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    return method


def takes_density(pattern: str) -> bool:
    """Whether ``pattern`` is pruned to a ``density=`` (csr, bsr, bitmap) rather than n:m."""
    return get_layout(pattern, "pattern").takes_density


def check_args(
    pattern: str,
    density: float | None,
    blocksize: tuple[int, int] | None,
    n: int | None,
    m: int | None,
) -> None:
    """The argument checks of ``prune`` that do not need the weight (for ``sparsify``)."""
    check_pattern(pattern)
    if not takes_density(pattern):
        if n is None or m is None:
            raise ValueError(f"n, m: pattern {pattern!r} needs both n= and m=")
        if density is not None:
            raise ValueError(f"density: pattern {pattern!r} takes n= and m=, not density=")
        check_nm(n, m)
        return
    if density is None:
        raise ValueError(f"density: pattern {pattern!r} needs density= in (0, 1]")
    check_density(density)
    if _family(pattern) == "block" and blocksize is None:
        raise ValueError(f"blocksize: pattern {pattern!r} needs blocksize=(R, C)")


def check_input_norms(input_norms: object, in_features: int) -> torch.Tensor:
    """``input_norms``: a finite, non-negative float tensor of shape ``(in_features,)``."""
    check_tensor("input_norms", input_norms, 1)
    assert isinstance(input_norms, torch.Tensor)
    check_float("input_norms", input_norms)
    if input_norms.shape[0] != in_features:
        raise ValueError(
            f"input_norms: expected shape ({in_features},) (the weight's in_features), "
            f"got {tuple(input_norms.shape)}"
        )
    if not bool(torch.isfinite(input_norms).all()):
        raise ValueError("input_norms: must be finite (found inf or NaN)")
    if bool((input_norms < 0).any()):
        raise ValueError("input_norms: must be non-negative (they are L2 norms)")
    return input_norms


def prune(
    weight: torch.Tensor,
    pattern: str,
    density: float | None = None,
    *,
    blocksize: tuple[int, int] | None = None,
    n: int | None = None,
    m: int | None = None,
    method: str = "magnitude",
    input_norms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Zero the lowest-scoring entries of a 2-D ``weight`` ``(M, K)`` to fit ``pattern``.

    ``method="magnitude"`` (default) scores ``|W_ij|``; ``method="wanda"`` scores
    ``|W_ij| * input_norms[j]`` with ``input_norms`` ``(K,)`` the L2 norms of the layer's input
    features over calibration data (``sparsify(..., method="wanda", calibration=...)``
    collects them).

    - ``"csr"`` / ``"bitmap"``: magnitude keeps the ``round(density * M * K)`` top entries of
      the whole matrix; wanda keeps the ``round(density * K)`` top entries of each row.
    - ``"bsr"``: keeps the ``round(density * blocks)`` ``R x C`` blocks of largest L2 norm of
      the scores (of ``W`` for magnitude, of ``W * input_norms`` for wanda).
    - ``"nm"``: keeps the ``n`` top scores of every ``m`` consecutive entries along the last dim.

    The counts are exact. Ties at the threshold keep the earlier row-major index (entry or
    block), as a stable sort would. Returns a new dense tensor of the same shape, dtype and
    device (pruned entries are exact zeros). Gradients do not flow through the choice of
    pattern. Raises ValueError on NaN scores.
    """
    check_tensor("weight", weight, 2)
    check_float("weight", weight)
    check_args(pattern, density, blocksize, n, m)
    check_method(method)
    w = weight.detach()
    if method == "wanda":
        if input_norms is None:
            raise ValueError("input_norms: method 'wanda' needs input_norms= of shape (K,)")
        v = check_input_norms(input_norms, w.shape[1]).detach().to(w.device)
    else:
        if input_norms is not None:
            raise ValueError("input_norms: only used by method='wanda'")
        v = None
    score = _score(w, v)
    if bool(torch.isnan(score.sum())):  # NaN in, NaN out (inf + -inf cannot occur: >= 0)
        raise ValueError("weight: NaN in the pruning scores (NaN weights, or inf times 0 norm)")
    family = _family(pattern)
    params: dict[str, object] = {"density": density, "blocksize": blocksize, "n": n, "m": m}
    mask = _SELECT[family, method](score, **params)
    return torch.where(mask, w, torch.zeros((), dtype=w.dtype, device=w.device))


def _score(w: torch.Tensor, v: torch.Tensor | None) -> torch.Tensor:
    """``|w|`` (times ``v`` per column): float64 if either is float64, else float32."""
    wide = w.dtype == torch.float64 or (v is not None and v.dtype == torch.float64)
    dt = torch.float64 if wide else torch.float32
    s = w.abs().to(dt)
    return s if v is None else s * v.to(dt)


# --- selection: score (M, K) -> bool mask (M, K) -------------------------------------------


def _keep_global(score: torch.Tensor, *, density: float, **_: object) -> torch.Tensor:
    return _topk_mask(score.flatten(), density).view_as(score)


def _keep_per_row(score: torch.Tensor, *, density: float, **_: object) -> torch.Tensor:
    rows, k = score.shape
    keep = min(k, round(density * k))
    if keep == 0:
        return torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    if keep == k:
        return torch.ones(score.shape, dtype=torch.bool, device=score.device)
    # The keep-th largest of each row, from the smaller of the two selections.
    if keep <= k - keep + 1:
        t = torch.topk(score, keep, dim=1, sorted=False).values.amin(1, keepdim=True)
    else:
        t = torch.topk(score, k - keep + 1, dim=1, largest=False, sorted=False).values
        t = t.amax(1, keepdim=True)
    tie = score == t
    mask = score >= t
    if int(torch.count_nonzero(tie)) == rows:  # one entry at each row's threshold: exact
        return mask
    # Rows with several entries at their threshold keep the earliest of them.
    per_row = torch.bincount(tie.nonzero()[:, 0], minlength=rows)
    bad = (per_row > 1).nonzero().flatten()
    sub, t_sub = score[bad], t[bad]
    above, at = sub > t_sub, sub == t_sub
    need = keep - above.sum(1, keepdim=True)  # >= 1: t itself is in each row
    mask[bad] = above | (at & (at.cumsum(1) <= need))
    return mask


def _keep_blocks(
    score: torch.Tensor, *, density: float, blocksize: tuple[int, int], **_: object
) -> torch.Tensor:
    rows, k = score.shape
    r, c = check_blocksize(blocksize, (rows, k))
    norms = score.reshape(rows // r, r, k // c, c).square().sum((1, 3))  # (Mb, Kb)
    keep = _topk_mask(norms.flatten(), density).view_as(norms)
    return keep.repeat_interleave(r, 0).repeat_interleave(c, 1)


def _keep_nm(score: torch.Tensor, *, n: int, m: int, **_: object) -> torch.Tensor:
    return _nm_keep(score, *check_nm(n, m))


_SELECT: dict[tuple[str, str], Callable[..., torch.Tensor]] = {
    ("unstructured", "magnitude"): _keep_global,
    ("unstructured", "wanda"): _keep_per_row,
    ("block", "magnitude"): _keep_blocks,
    ("block", "wanda"): _keep_blocks,
    ("nm", "magnitude"): _keep_nm,
    ("nm", "wanda"): _keep_nm,
}


def _kth_largest(score: torch.Tensor, keep: int) -> tuple[torch.Tensor, int, int]:
    """The ``keep``-th largest ``t`` of a 1-D ``score`` (``1 <= keep <= numel``), with the
    counts of scores ``> t`` and ``== t``.

    Large inputs: a fixed-seed sample brackets ``t``, then only the scores inside the bracket
    go through ``kthvalue`` (a few passes over ``score`` instead of a selection over all of
    it). The result is exact; a bracket that misses falls back to the full selection.
    """
    total = score.numel()
    if total > _SAMPLE_ABOVE:
        g = torch.Generator(device=score.device).manual_seed(0)
        idx = torch.randint(total, (_SAMPLE_SIZE,), generator=g, device=score.device)
        sample = score[idx].sort().values
        q = (total - keep) / total  # fraction of scores below the target
        pos = q * (_SAMPLE_SIZE - 1)
        margin = 6.0 * (_SAMPLE_SIZE * max(q * (1 - q), 1.0 / _SAMPLE_SIZE)) ** 0.5 + 8
        lo_i, hi_i = int(pos - margin), int(pos + margin) + 1
        has_lo, has_hi = lo_i >= 0, hi_i < _SAMPLE_SIZE
        above = int(torch.count_nonzero(score > sample[hi_i])) if has_hi else 0
        if has_lo and has_hi:
            band = score[(score >= sample[lo_i]) & (score <= sample[hi_i])]
        elif has_lo:
            band = score[score >= sample[lo_i]]
        elif has_hi:
            band = score[score <= sample[hi_i]]
        else:
            band = score
        # need >= 1: t <= hi; need <= band size: t >= lo. Then t is the need-th largest of
        # the band, and every score equal to t lies in the band.
        need = keep - above
        if 1 <= need <= band.numel():
            t = torch.kthvalue(band, band.numel() - need + 1).values
            gt = above + int(torch.count_nonzero(band > t))
            return t, gt, int(torch.count_nonzero(band == t))
    t = torch.kthvalue(score, total - keep + 1).values
    return t, int(torch.count_nonzero(score > t)), int(torch.count_nonzero(score == t))


def _topk_mask(score: torch.Tensor, density: float) -> torch.Tensor:
    """Boolean mask of the ``round(density * numel)`` largest of a 1-D ``score``.

    Ties at the threshold go to the earlier index (what a stable descending sort keeps).
    """
    total = score.numel()
    keep = min(total, round(density * total))
    if keep == 0:
        return torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    if keep == total:
        return torch.ones(score.shape, dtype=torch.bool, device=score.device)
    t, n_gt, n_eq = _kth_largest(score, keep)
    need = keep - n_gt  # 1 <= need <= n_eq
    if n_eq == need:
        return score >= t
    mask = score > t
    mask[(score == t).nonzero().flatten()[:need]] = True
    return mask


def _nm_keep(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask keeping the ``n`` top scores of every ``m`` along the last dim (stable)."""
    rows, k = score.shape
    g = num_groups(k, m)
    padded = torch.full((rows, g * m), -1.0, dtype=score.dtype, device=score.device)
    padded[:, :k] = score
    order = torch.sort(padded.view(rows, g, m), dim=-1, descending=True, stable=True).indices
    mask = torch.zeros(rows, g, m, dtype=torch.bool, device=score.device)
    mask.scatter_(-1, order[..., :n], True)
    return mask.view(rows, g * m)[:, :k]


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask keeping the ``n`` largest magnitudes of every ``m`` along the last dim."""
    return _nm_keep(_score(weight.detach(), None), n, m)
