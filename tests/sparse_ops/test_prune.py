"""Pruning: exact counts, the largest entries kept, errors."""

from __future__ import annotations

import importlib
import os

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


# --- selection without a full sort: exact counts, deterministic ties ---------------------

SEED = int.from_bytes(os.urandom(4), "little")


def _stable_keep(score: torch.Tensor, keep: int) -> torch.Tensor:
    """Reference: the first ``keep`` of a stable descending sort (ties: earlier index)."""
    mask = torch.zeros(score.numel(), dtype=torch.bool)
    mask[torch.sort(score.flatten().double(), descending=True, stable=True).indices[:keep]] = True
    return mask.view_as(score)


@pytest.mark.parametrize("shape", [(37, 53), (389, 401)])  # the second takes the sampled path
@pytest.mark.parametrize("density", [0.013, 0.3, 0.5, 0.77, 0.999])
def test_csr_exact_count_matches_stable_sort(shape, density):
    print("seed", SEED)
    g = torch.Generator().manual_seed(SEED)
    w = torch.randn(shape, generator=g)
    p = so.prune(w, "csr", density=density)
    keep = round(density * w.numel())
    assert int(torch.count_nonzero(p)) == keep
    assert torch.equal(p != 0, _stable_keep(w.abs(), keep))


@pytest.mark.parametrize("shape", [(23, 29), (389, 401)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_csr_ties_go_to_the_earlier_index(shape, dtype):
    """Few distinct magnitudes: every threshold is a tie; the earlier row-major ones stay."""
    print("seed", SEED)
    g = torch.Generator().manual_seed(SEED)
    w = (torch.randint(-4, 5, shape, generator=g).float() + 0.5).to(dtype)  # |w| in 4 values
    for density in (0.1, 0.25, 0.5, 0.6, 0.9):
        p = so.prune(w, "csr", density=density)
        keep = round(density * w.numel())
        assert int(torch.count_nonzero(p)) == keep
        want = _stable_keep(w.abs().float(), keep)
        assert torch.equal(p != 0, want), density
        assert torch.equal(p[want], w[want])


def test_sampled_and_full_selection_agree(monkeypatch):
    print("seed", SEED)
    g = torch.Generator().manual_seed(SEED)
    w = torch.randn(409, 353, generator=g, dtype=torch.float64)
    w[w.abs() < 0.3] = 0.25  # a block of ties below the median
    prune_mod = importlib.import_module("sparse_ops.prune")
    sampled = [so.prune(w, "csr", density=d) for d in (0.2, 0.5, 0.8, 0.95)]
    monkeypatch.setattr(prune_mod, "_SAMPLE_ABOVE", 1 << 40)
    full = [so.prune(w, "csr", density=d) for d in (0.2, 0.5, 0.8, 0.95)]
    for a, b in zip(sampled, full, strict=True):
        assert torch.equal(a, b)


def test_prune_keeps_inf_and_rejects_nan():
    w = torch.randn(9, 11)
    w[3, 4] = float("inf")
    p = so.prune(w, "csr", density=0.2)
    assert p[3, 4] == float("inf") and not bool(torch.isnan(p).any())
    w[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        so.prune(w, "csr", density=0.2)


def test_bitmap_prunes_like_csr():
    g = torch.Generator().manual_seed(SEED)
    w = torch.randn(31, 47, generator=g)
    v = torch.rand(47, generator=g)
    assert torch.equal(so.prune(w, "bitmap", 0.3), so.prune(w, "csr", 0.3))
    assert torch.equal(so.prune(w, "bitmap", 0.3, method="wanda", input_norms=v),
                       so.prune(w, "csr", 0.3, method="wanda", input_norms=v))


# --- Wanda: |W_ij| * ||x_j|| -----------------------------------------------------------------


def _wanda_ref_rows(w64: torch.Tensor, v64: torch.Tensor, density: float) -> torch.Tensor:
    score = w64.abs() * v64
    keep = round(density * w64.shape[1])
    return torch.stack([_stable_keep(row, keep) for row in score])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("density", [0.1, 0.5, 0.71])
def test_wanda_csr_per_row_matches_float64_reference(dtype, density):
    print("seed", SEED)
    g = torch.Generator().manual_seed(SEED)
    w = torch.randn(37, 53, generator=g, dtype=torch.float64)
    v = torch.rand(53, generator=g, dtype=torch.float64) * 10
    v[5] = 0.0  # a dead input feature: its column goes first
    p = so.prune(w.to(dtype), "csr", density=density, method="wanda", input_norms=v.to(dtype))
    want = _wanda_ref_rows(w.to(dtype).double(), v.to(dtype).double(), density)
    assert torch.equal(p != 0, want)
    assert bool(((p != 0).sum(1) == round(density * 53)).all())
    assert not bool((p[:, 5] != 0).any()) or density > 0.98
    # Differs from magnitude: the norms matter.
    assert not torch.equal(p != 0, so.prune(w.to(dtype), "csr", density=density) != 0)


def test_wanda_row_ties_keep_the_earlier_column():
    w = torch.tensor([[1.0, -1.0, 1.0, 2.0, 1.0, -1.0], [0.5, 6.0, 0.1, 4.0, 0.2, 5.0],
                      [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]])
    v = torch.ones(6)
    p = so.prune(w, "csr", density=0.5, method="wanda", input_norms=v)
    want = torch.tensor([[1, 1, 0, 1, 0, 0], [0, 1, 0, 1, 0, 1], [1, 1, 1, 0, 0, 0]]).bool()
    assert torch.equal(p != 0, want)


@pytest.mark.parametrize("n,m,k", [(2, 4, 53), (1, 4, 40), (3, 8, 41)])
def test_wanda_nm_matches_float64_reference(n, m, k):
    print("seed", SEED)
    g = torch.Generator().manual_seed(SEED)
    w = torch.randn(19, k, generator=g, dtype=torch.float64)
    v = torch.rand(k, generator=g, dtype=torch.float64)
    p = so.prune(w.float(), "nm", n=n, m=m, method="wanda", input_norms=v.float())
    score = w.float().double().abs() * v.float().double()
    for g0 in range(0, k, m):
        grp = score[:, g0:g0 + m]
        want = torch.stack([_stable_keep(row, min(n, grp.shape[1])) for row in grp])
        assert torch.equal(p[:, g0:g0 + m] != 0, want)


def test_wanda_bsr_uses_block_norms_of_the_scaled_weight():
    print("seed", SEED)
    g = torch.Generator().manual_seed(SEED)
    w = torch.randn(21, 35, generator=g, dtype=torch.float64)
    v = torch.rand(35, generator=g, dtype=torch.float64) * 3
    p = so.prune(w, "bsr", density=0.3, blocksize=(3, 5), method="wanda", input_norms=v)
    norms = (w * v).reshape(7, 3, 7, 5).square().sum((1, 3))
    want = _stable_keep(norms, round(0.3 * 49))
    kept = p.reshape(7, 3, 7, 5).ne(0).any(3).any(1)
    assert torch.equal(kept, want)


def test_wanda_errors():
    w = torch.randn(8, 12)
    v = torch.rand(12)
    with pytest.raises(ValueError, match="method"):
        so.prune(w, "csr", density=0.5, method="sparsegpt")
    with pytest.raises(ValueError, match="input_norms"):
        so.prune(w, "csr", density=0.5, method="wanda")
    with pytest.raises(ValueError, match="input_norms"):
        so.prune(w, "csr", density=0.5, input_norms=v)
    with pytest.raises(ValueError, match="input_norms"):
        so.prune(w, "csr", density=0.5, method="wanda", input_norms=torch.rand(8))
    with pytest.raises(ValueError, match="input_norms"):
        so.prune(w, "csr", density=0.5, method="wanda", input_norms=torch.rand(1, 12))
    with pytest.raises(TypeError, match="input_norms"):
        so.prune(w, "csr", density=0.5, method="wanda", input_norms=[1.0] * 12)
    with pytest.raises(TypeError, match="input_norms"):
        so.prune(w, "csr", density=0.5, method="wanda", input_norms=torch.ones(12, dtype=int))
    for bad in (-1.0, float("inf"), float("nan")):
        u = v.clone()
        u[3] = bad
        with pytest.raises(ValueError, match="input_norms"):
            so.prune(w, "csr", density=0.5, method="wanda", input_norms=u)
