"""Pruning: exact counts, the largest entries kept, errors."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so


def test_csr_keeps_largest_magnitudes():
    w = torch.randn(37, 53, dtype=torch.float64)
    p = so.prune(w, "csr", density=0.1)
    k = round(0.1 * w.numel())
    assert int((p != 0).sum()) == k
    kept = w.abs()[p != 0]
    dropped = w.abs()[p == 0]
    assert kept.min() >= dropped.max()
    assert torch.equal(p[p != 0], w[p != 0])


def test_bsr_keeps_largest_blocks():
    w = torch.randn(21, 35, dtype=torch.float64)
    p = so.prune(w, "bsr", density=0.3, blocksize=(3, 5))
    norms = w.reshape(7, 3, 7, 5).square().sum((1, 3))
    kept = p.reshape(7, 3, 7, 5).ne(0).any(3).any(1)
    assert int(kept.sum()) == round(0.3 * 49)
    assert norms[kept].min() >= norms[~kept].max()


@pytest.mark.parametrize("n,m,k", [(2, 4, 53), (1, 4, 40), (3, 8, 41), (5, 16, 50)])
def test_nm_keeps_n_largest_per_group(n, m, k):
    w = torch.randn(9, k, dtype=torch.float64)
    p = so.prune(w, "nm", n=n, m=m)
    for g in range(0, k, m):
        grp_w, grp_p = w[:, g:g + m], p[:, g:g + m]
        kept = (grp_p != 0).sum(1)
        assert bool((kept == min(n, grp_w.shape[1])).all())
        top = grp_w.abs().topk(min(n, grp_w.shape[1]), dim=1).values
        assert torch.equal(grp_p.abs().sort(1, descending=True).values[:, : top.shape[1]], top)


def test_prune_errors():
    w = torch.randn(8, 8)
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="density"):
            so.prune(w, "csr", density=bad)
    with pytest.raises(TypeError, match="density"):
        so.prune(w, "csr", density="0.5")
    with pytest.raises(ValueError, match="pattern"):
        so.prune(w, "diag", density=0.5)
    with pytest.raises(ValueError, match="blocksize"):
        so.prune(w, "bsr", density=0.5)
    with pytest.raises(ValueError, match="n, m"):
        so.prune(w, "nm", n=2)
    with pytest.raises(ValueError, match="n, m"):
        so.prune(w, "nm", n=4, m=2)
    assert torch.equal(so.prune(w, "csr", density=1.0), w)
