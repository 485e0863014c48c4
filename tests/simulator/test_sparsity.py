"""Sparsity modes: N:M, block, unstructured (with balancing), and synthetic patterns."""

from __future__ import annotations

import numpy as np
import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.sparsity import block_mask, check_nm, nm_slots


@pytest.mark.parametrize("kind", ["uniform", "powerlaw", "block"])
def test_synthetic_density_and_seed(kind):
    a = sim.synthetic_weight(128, 96, 0.25, kind, seed=7)
    b = sim.synthetic_weight(128, 96, 0.25, kind, seed=7)
    c = sim.synthetic_weight(128, 96, 0.25, kind, seed=8)
    assert a.shape == (128, 96)
    assert np.array_equal(a, b) and not np.array_equal(a != 0, c != 0)
    if kind == "block":
        bm = block_mask(a != 0, 16, 16)
        assert bm.mean() == pytest.approx(0.25, abs=0.02)
        assert ((a != 0) == np.repeat(np.repeat(bm, 16, 0), 16, 1)).all()
    else:
        assert (a != 0).sum() == round(0.25 * 128 * 96)


def test_powerlaw_is_skewed_across_lanes():
    uni = (sim.synthetic_weight(512, 256, 0.1, "uniform", seed=0) != 0).sum(axis=0)
    pl = (sim.synthetic_weight(512, 256, 0.1, "powerlaw", seed=0, alpha=1.0) != 0).sum(axis=0)
    assert pl.sum() == uni.sum()
    assert pl.max() / pl.mean() > 3 * (uni.max() / uni.mean())
    rows = (sim.synthetic_weight(64, 32, 0.2, "powerlaw", lanes="rows") != 0).sum(axis=1)
    assert rows.max() > 2 * rows.mean()


@pytest.mark.parametrize("n,m,K", [(2, 4, 64), (1, 4, 10), (2, 8, 13), (3, 3, 9)])
def test_nm_pattern(n, m, K):
    w = sim.synthetic_weight(K, 12, kind="nm", nm=(n, m), seed=1)
    check_nm(w != 0, n, m)
    assert (w != 0).sum() == nm_slots(K, n, m) * 12


def test_bad_synthetic_arguments():
    with pytest.raises(ValueError, match="density"):
        sim.synthetic_weight(8, 8, 0.0)
    with pytest.raises(ValueError, match="needs a density"):
        sim.synthetic_weight(8, 8)
    with pytest.raises(ValueError, match="kind"):
        sim.synthetic_weight(8, 8, 0.5, kind="diagonal")
    with pytest.raises(ValueError, match="K"):
        sim.synthetic_weight(0, 8, 0.5)


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_nm_shrinks_compute_by_m_over_n(df):
    dense = sim.Arch(rows=16, cols=16, dataflow=df)
    nm = dense.with_(sparsity="nm", nm=(2, 4))
    M, K, N = 512, 1024, 256
    d = sim.simulate_gemm(dense, M, K, N)
    s = sim.simulate_gemm(nm, M, K, N)
    assert s.useful_macs == d.useful_macs // 2
    if df == "os":  # the stream shrinks
        assert s.compute_cycles == pytest.approx(d.compute_cycles / 2, rel=0.05)
    else:  # the row folds halve
        assert s.compute_cycles == pytest.approx(d.compute_cycles / 2, rel=0.01)
    assert s.dram_reads["metadata"] > 0
    assert s.dram_reads["filter"] == d.dram_reads["filter"] // 2
    # metadata: 2 bits per kept weight
    assert s.sram_reads["metadata"] * 8 >= s.sram_reads["filter"] * 2


def test_nm_from_pattern_equals_synthetic():
    arch = sim.Arch(rows=8, cols=8, sparsity="nm", nm=(2, 4))
    w = sim.synthetic_weight(64, 32, kind="nm", nm=(2, 4), seed=3)
    a = sim.simulate_gemm(arch, 32, 64, 32, weight=w)
    b = sim.simulate_gemm(arch, 32, 64, 32)
    assert a.totals() == b.totals()


def test_nm_array_compute_vs_memory_bound():
    """An N:M array halves compute-bound time but not memory-bound time (dense inputs)."""
    dense = sim.Arch(rows=32, cols=32, dram_words_per_cycle=None)
    nm = dense.with_(sparsity="nm")
    cb_d = sim.simulate_gemm(dense, 1024, 1024, 1024).total_cycles
    cb_s = sim.simulate_gemm(nm, 1024, 1024, 1024).total_cycles
    assert cb_s < 0.55 * cb_d
    mb_d = sim.simulate_gemm(dense.with_(dram_words_per_cycle=1), 1, 4096, 4096)
    mb_s = sim.simulate_gemm(nm.with_(dram_words_per_cycle=1), 1, 4096, 4096)
    # weights halve but their metadata is extra: between 1/2 and 1 of the dense time
    assert 0.5 < mb_s.total_cycles / mb_d.total_cycles < 0.7


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_block_skips_zero_tiles(df):
    arch = sim.Arch(rows=16, cols=16, dataflow=df, sparsity="block", block=(16, 16))
    w = sim.synthetic_weight(512, 512, 0.25, "block", seed=0, block=(16, 16))
    s = sim.simulate_gemm(arch, 256, 512, 512, weight=w)
    d = sim.simulate_gemm(arch.with_(sparsity="dense"), 256, 512, 512, weight=w)
    assert s.useful_macs == d.useful_macs
    assert s.compute_cycles < d.compute_cycles
    assert s.dram_reads["filter"] < d.dram_reads["filter"]
    assert s.dram_reads["metadata"] > 0
    full = sim.simulate_gemm(arch, 256, 512, 512)  # no zero block: dense work plus index
    assert full.compute_cycles == sim.simulate_gemm(arch.with_(sparsity="dense"),
                                                    256, 512, 512).compute_cycles


def test_all_zero_weight():
    for df in ("os", "ws", "is"):
        for mode in ("block", "unstructured"):
            r = sim.simulate_gemm(sim.Arch(rows=4, cols=4, dataflow=df, sparsity=mode,
                                           dram_words_per_cycle=2), 8, 8, 8,
                                  weight=np.zeros((8, 8)))
            assert r.compute_cycles == 0 and r.useful_macs == 0 and r.utilization == 0


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_unstructured_busiest_lane_and_balance(df):
    lanes = "rows" if df == "is" else "cols"
    K = N = 256
    w = sim.synthetic_weight(K, N, 0.1, "powerlaw", seed=2, lanes=lanes, alpha=1.2)
    u = sim.synthetic_weight(K, N, 0.1, "uniform", seed=2)
    arch = sim.Arch(rows=16, cols=16, dataflow=df, sparsity="unstructured")
    skewed = sim.simulate_gemm(arch, 128, K, N, weight=w)
    uniform = sim.simulate_gemm(arch, 128, K, N, weight=u)
    balanced = sim.simulate_gemm(arch.with_(balance=True), 128, K, N, weight=w)
    dense = sim.simulate_gemm(arch.with_(sparsity="dense"), 128, K, N)
    assert skewed.useful_macs == uniform.useful_macs == balanced.useful_macs
    assert uniform.compute_cycles < dense.compute_cycles
    assert skewed.compute_cycles > uniform.compute_cycles  # load imbalance costs cycles
    assert balanced.compute_cycles < skewed.compute_cycles  # and balancing recovers some
    for r in (skewed, uniform, balanced):
        assert 0 < r.utilization <= 1
        assert r.useful_macs == r.performed_macs  # zero skipping: no gated MACs


def test_fold_lasts_as_long_as_busiest_lane():
    w = np.zeros((32, 4))
    w[:, 2] = 1  # lane 2 has 32 nonzeros, the others 1
    w[0] = 1
    r = sim.simulate_gemm(sim.Arch(rows=4, cols=4, sparsity="unstructured"), 4, 32, 4,
                          weight=w)
    assert r.compute_cycles == 4 + 4 - 2 + 32 - 1
