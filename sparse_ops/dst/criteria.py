"""Pruning criteria of dynamic sparse training (Nowak et al. 2023, "Fantastic Weights").

Every criterion scores the *active* units of a layer (a stored value for CSR and N:M, a whole
block for BSR) from their weights ``θ`` and gradients ``∇θ``; the ``k`` lowest scores are
pruned:

- ``"magnitude"``: ``|θ|``
- ``"set"``: half of ``k`` from the smallest non-negative weights, half from the negative
  weights closest to zero (Mocanu et al.'s SET); the other side takes up a shortfall
- ``"mest"``: ``|θ| + γ|∇θ|`` (γ = 1 by default)
- ``"snip"``: ``|θ · ∇θ|``
- ``"sensitivity"``: ``|∇θ| / |θ|``
- ``"reciprocal_sensitivity"``: ``|θ| / |∇θ|``
- ``"random"``: uniformly random

For blocks the elementwise score is pooled by its mean over the block (SET: the block's mean
weight). Ties go to the lower unit index (a stable sort), so the choice is deterministic.
Everything here is ``O(nnz)``: no dense tensor of the layer's shape.
"""

from __future__ import annotations

import torch

PRUNE_CRITERIA = (
    "magnitude", "set", "mest", "snip", "sensitivity", "reciprocal_sensitivity", "random",
)
NEEDS_GRAD = ("mest", "snip", "sensitivity", "reciprocal_sensitivity")
EPS = 1e-12


def check_criterion(prune: object) -> str:
    """``prune`` as a known criterion name, else TypeError / ValueError naming ``prune``."""
    if not isinstance(prune, str):
        raise TypeError(f"prune: expected one of {PRUNE_CRITERIA}, got {type(prune).__name__}")
    if prune not in PRUNE_CRITERIA:
        raise ValueError(f"prune: unknown criterion {prune!r}; expected one of {PRUNE_CRITERIA}")
    return prune


def _score_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 for float64 weights, else float32 (half-precision weights are widened)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _pool(t: torch.Tensor, units: int) -> torch.Tensor:
    """Mean over each unit's trailing entries: ``(units, ...)`` → ``(units,)``."""
    t = t.reshape(units, -1).to(_score_dtype(t))
    return t[:, 0] if t.shape[1] == 1 else t.mean(1)


def prune_scores(
    criterion: str,
    values: torch.Tensor,
    grad: torch.Tensor | None,
    units: int,
    gamma: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(units,)`` scores (float32, float64 for float64 weights), lowest pruned first (not
    for ``"set"``).

    ``values``, ``grad``: the layer's stored values and their gradient, any shape whose
    leading elements group into ``units`` equal units (``(nnz,)``, ``(nnzb, R, C)``,
    ``(M, S)`` for N:M slots).
    """
    criterion = check_criterion(criterion)
    if criterion == "random":
        return torch.rand(units, generator=generator, dtype=torch.float64).to(values.device,
                                                                               _score_dtype(values))
    if criterion == "set":
        raise ValueError("prune: 'set' selects by sign, not by one score (use select_prune)")
    if criterion in NEEDS_GRAD and grad is None:
        raise ValueError(
            f"prune: criterion {criterion!r} needs the values' gradient; call backward() "
            f"before dst.step()"
        )
    dt = _score_dtype(values)
    w = values.detach().reshape(units, -1).to(dt).abs()
    if criterion == "magnitude":
        return _pool(w, units)
    g = grad.detach().reshape(units, -1).to(dt).abs()  # type: ignore[union-attr]
    if criterion == "mest":
        s = w + gamma * g
    elif criterion == "snip":
        s = w * g
    elif criterion == "sensitivity":
        s = g / (w + EPS)
    else:  # reciprocal_sensitivity
        s = w / (g + EPS)
    return _pool(s, units)


def _lowest(score: torch.Tensor, k: int, eligible: torch.Tensor | None) -> torch.Tensor:
    """Indices of the ``k`` lowest scores among ``eligible``; on ties the lower index wins.

    O(n): a k-th value threshold, then the tied entries at it in index order (no sort).
    """
    if eligible is not None:
        idx = eligible.nonzero().squeeze(1)
        return idx[_lowest(score[idx], k, None)]
    n = score.numel()
    if k >= n:
        return torch.arange(n, device=score.device)
    if k <= 0:
        return torch.zeros(0, dtype=torch.long, device=score.device)
    thr = torch.kthvalue(score, k).values
    below = (score < thr).nonzero().squeeze(1)
    ties = (score == thr).nonzero().squeeze(1)[: k - below.numel()]
    return torch.cat([below, ties])


def select_prune(
    criterion: str,
    values: torch.Tensor,
    grad: torch.Tensor | None,
    units: int,
    k: int,
    *,
    eligible: torch.Tensor | None = None,
    gamma: float = 1.0,
    generator: torch.Generator | None = None,
    score: torch.Tensor | None = None,
) -> torch.Tensor:
    """int64 indices (sorted) of the ``k`` units to prune among ``eligible`` (bool ``(units,)``,
    default all); ``score``: precomputed ``prune_scores``. ``k`` must not exceed the number of
    eligible units."""
    if k <= 0:
        return torch.zeros(0, dtype=torch.long, device=values.device)
    if criterion == "set":
        mean = _pool(values.detach(), units)
        elig = eligible if eligible is not None else torch.ones(units, dtype=torch.bool,
                                                                device=values.device)
        pos, neg = elig & (mean >= 0), elig & (mean < 0)
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        k_neg = min(k // 2, n_neg)
        k_pos = min(k - k_neg, n_pos)
        k_neg = min(k - k_pos, n_neg)
        chosen = torch.cat([_lowest(mean, k_pos, pos), _lowest(-mean, k_neg, neg)])
        return _ascending(chosen, units)
    if score is None:
        score = prune_scores(criterion, values, grad, units, gamma, generator)
    return _ascending(_lowest(score, k, eligible), units)


def _ascending(idx: torch.Tensor, units: int) -> torch.Tensor:
    """Distinct indices in ascending order, in O(units) (a mask, not a sort)."""
    mask = torch.zeros(units, dtype=torch.bool, device=idx.device)
    mask[idx] = True
    return mask.nonzero().squeeze(1)
