"""Magnitude pruning to each sparsity pattern: dense in, dense with zeros out."""

from __future__ import annotations

import torch

from ._checks import check_blocksize, check_density, check_float, check_nm, check_tensor
from .nm import num_groups

PATTERNS = ("csr", "bsr", "nm")


def takes_density(pattern: str) -> bool:
    """Whether ``pattern`` is pruned to a ``density=`` (csr, bsr) rather than its own n:m."""
    check_pattern(pattern)
    return pattern != "nm"


def check_args(
    pattern: str,
    density: float | None,
    blocksize: tuple[int, int] | None,
    n: int | None,
    m: int | None,
) -> None:
    """The argument checks of ``prune`` that do not need the weight (for ``sparsify``)."""
    check_pattern(pattern)
    if pattern == "nm":
        if n is None or m is None:
            raise ValueError("n, m: pattern 'nm' needs both n= and m=")
        if density is not None:
            raise ValueError("density: pattern 'nm' takes n= and m=, not density=")
        check_nm(n, m)
        return
    if density is None:
        raise ValueError(f"density: pattern {pattern!r} needs density= in (0, 1]")
    check_density(density)
    if pattern == "bsr" and blocksize is None:
        raise ValueError("blocksize: pattern 'bsr' needs blocksize=(R, C)")


def check_pattern(pattern: object) -> str:
    if not isinstance(pattern, str) or pattern not in PATTERNS:
        raise ValueError(f"pattern: expected one of {PATTERNS}, got {pattern!r}")
    return pattern


def prune(
    weight: torch.Tensor,
    pattern: str,
    density: float | None = None,
    *,
    blocksize: tuple[int, int] | None = None,
    n: int | None = None,
    m: int | None = None,
) -> torch.Tensor:
    """Zero the smallest entries of a 2-D ``weight`` (M x K) to fit ``pattern``.

    - ``"csr"``: keeps the ``round(density * M * K)`` entries of largest magnitude.
    - ``"bsr"``: keeps the ``round(density * blocks)`` ``R x C`` blocks of largest L2 norm.
    - ``"nm"``: keeps the ``n`` largest of every ``m`` consecutive entries along the last dim.

    Returns a new dense tensor of the same shape, dtype and device. Ties go to the earlier
    index. Gradients do not flow through the choice of pattern.
    """
    check_tensor("weight", weight, 2)
    check_float("weight", weight)
    check_pattern(pattern)
    w = weight.detach()
    if pattern == "nm":
        if n is None or m is None:
            raise ValueError("n, m: pattern 'nm' needs both n= and m=")
        if density is not None:
            raise ValueError("density: pattern 'nm' takes n= and m=, not density=")
        return w * nm_mask(w, *check_nm(n, m))
    if density is None:
        raise ValueError(f"density: pattern {pattern!r} needs density= in (0, 1]")
    density = check_density(density)
    if pattern == "csr":
        return w * _topk_mask(w.abs().flatten(), density).view_as(w)
    if blocksize is None:
        raise ValueError("blocksize: pattern 'bsr' needs blocksize=(R, C)")
    r, c = check_blocksize(blocksize, tuple(w.shape))
    rows, k = w.shape
    norms = w.float().reshape(rows // r, r, k // c, c).square().sum((1, 3))  # (Mb, Kb)
    keep = _topk_mask(norms.flatten(), density).view_as(norms)
    mask = keep.repeat_interleave(r, 0).repeat_interleave(c, 1)
    return w * mask


def _topk_mask(score: torch.Tensor, density: float) -> torch.Tensor:
    """Boolean mask of the ``round(density * numel)`` largest scores (stable on ties)."""
    keep = min(score.numel(), round(density * score.numel()))
    mask = torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    if keep:
        order = torch.sort(score.float(), descending=True, stable=True).indices
        mask[order[:keep]] = True
    return mask


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask keeping the ``n`` largest magnitudes of every ``m`` along the last dim."""
    rows, k = weight.shape
    g = num_groups(k, m)
    mag = torch.full((rows, g * m), -1.0, dtype=torch.float32, device=weight.device)
    mag[:, :k] = weight.abs().float()
    order = torch.sort(mag.view(rows, g, m), dim=-1, descending=True, stable=True).indices
    mask = torch.zeros(rows, g, m, dtype=torch.bool, device=weight.device)
    mask.scatter_(-1, order[..., :n], True)
    return mask.view(rows, g * m)[:, :k]
