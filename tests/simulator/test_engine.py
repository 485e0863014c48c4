"""simulate_gemm / conv / layers: inputs, invariants, weights from arrays and tensors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import sparse_accel_sim as sim


def test_public_surface():
    arch = sim.Arch(rows=32, cols=32, dataflow="os", ifmap_sram_kb=64, filter_sram_kb=64,
                    ofmap_sram_kb=64, dram_words_per_cycle=None, sparsity="dense")
    r = sim.simulate_gemm(arch, M=256, K=512, N=256, weight=None)
    assert r.total_cycles == r.compute_cycles + r.stall_cycles
    assert r.stall_cycles == 0
    assert 0 < r.utilization <= 1 and r.mapping_efficiency == 1.0
    for d in (r.sram_reads, r.sram_writes, r.dram_reads, r.dram_writes):
        assert set(d) == {"ifmap", "filter", "metadata", "ofmap"}
    assert {"mac", "sram", "dram", "total"} <= set(r.energy_pj)
    assert r.energy_pj["total"] == pytest.approx(
        sum(v for k, v in r.energy_pj.items() if k != "total"))
    assert r.dram_writes["ofmap"] == 256 * 256
    assert r.dram_reads["filter"] >= 512 * 256


@pytest.mark.parametrize("shape", [(512, 255), (256, 512), (512,), (1, 512, 256)])
def test_weight_shape_must_match(shape):
    with pytest.raises(ValueError, match=r"K x N = \(512, 256\)"):
        sim.simulate_gemm(sim.Arch(), 16, 512, 256, weight=np.ones(shape))


@pytest.mark.parametrize("dims,exc", [((0, 4, 4), ValueError), ((4, -1, 4), ValueError),
                                      ((4, 4, 2.0), TypeError), ((4, "4", 4), TypeError)])
def test_bad_dims(dims, exc):
    with pytest.raises(exc):
        sim.simulate_gemm(sim.Arch(), *dims)


def test_bad_arguments():
    with pytest.raises(TypeError, match="Arch"):
        sim.simulate_gemm({"rows": 4}, 4, 4, 4)
    with pytest.raises(TypeError, match="numbers"):
        sim.simulate_gemm(sim.Arch(), 2, 2, 2, weight=np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="engine"):
        sim.simulate_gemm(sim.Arch(), 2, 2, 2, engine="slow")
    with pytest.raises(ValueError, match="density"):
        sim.simulate_gemm(sim.Arch(sparsity="unstructured"), 2, 2, 2, density=1.5)
    with pytest.raises(ValueError, match="not both"):
        sim.simulate_gemm(sim.Arch(), 2, 2, 2, weight=np.ones((2, 2)), density=0.5)
    with pytest.raises(ValueError, match="2:4"):
        sim.simulate_gemm(sim.Arch(sparsity="nm"), 2, 4, 1, weight=np.ones((4, 1)))


def test_accepts_torch_tensor():
    torch = pytest.importorskip("torch")
    w = torch.zeros(64, 32)
    w[::2] = 1.0
    arch = sim.Arch(rows=8, cols=8, sparsity="unstructured")
    from_tensor = sim.simulate_gemm(arch, 16, 64, 32, weight=w)
    from_numpy = sim.simulate_gemm(arch, 16, 64, 32, weight=w.numpy())
    assert from_tensor.totals() == from_numpy.totals()
    assert from_tensor.useful_macs == 16 * 32 * 32


def test_simulator_does_not_import_torch():
    code = ("import sys, simulator as sim; sim.simulate_gemm(sim.Arch(), 8, 8, 8); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert out.stdout.strip() == "False"


def test_dense_weight_zeros_are_gated_not_skipped():
    w = sim.synthetic_weight(64, 64, 0.25, seed=1)
    dense = sim.simulate_gemm(sim.Arch(rows=8, cols=8), 32, 64, 64)
    gated = sim.simulate_gemm(sim.Arch(rows=8, cols=8), 32, 64, 64, weight=w)
    assert gated.compute_cycles == dense.compute_cycles
    assert gated.useful_macs == 32 * int((w != 0).sum())
    assert gated.performed_macs == 32 * 64 * 64
    assert gated.energy_pj["gated_mac"] > 0
    assert gated.utilization < dense.utilization


def test_conv_lowering_matches_gemm():
    arch = sim.Arch(rows=16, cols=16)
    c = sim.simulate_conv(arch, 58, 58, 3, 3, 64, 64, stride=1)
    g = sim.simulate_gemm(arch, 56 * 56, 3 * 3 * 64, 64)
    assert c.totals() == g.totals()
    w = np.ones((64, 64, 3, 3))
    w[:, ::2] = 0
    cw = sim.simulate_conv(arch.with_(sparsity="unstructured"), 58, 58, 3, 3, 64, 64, weight=w)
    assert cw.useful_macs == 56 * 56 * 64 * 32 * 9
    with pytest.raises(ValueError, match="filter_h"):
        sim.simulate_conv(arch, 2, 2, 3, 3, 1, 1)


def test_layers_and_summary():
    layers = [sim.Layer("a", 64, 32, 16), sim.Layer("b", 8, 128, 64)]
    arch = sim.Arch(rows=8, cols=8, dram_words_per_cycle=4)
    rs = sim.simulate_layers(arch, layers)
    tot = sim.summarize(rs)
    assert tot.total_cycles == sum(r.total_cycles for r in rs)
    assert tot.dram_reads["filter"] == sum(r.dram_reads["filter"] for r in rs)
    assert tot.utilization <= 1
    assert sim.simulate_topology(arch, layers).total_cycles == tot.total_cycles
    with pytest.raises(TypeError, match="layers"):
        sim.simulate_layers(arch, [(1, 2, 3)])


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_training_products(df):
    """S @ X (forward), S.T @ dY (input gradient), dW at S's nonzeros (SDDMM)."""
    arch = sim.Arch(rows=8, cols=8, dataflow=df, sparsity="unstructured")
    S = sim.synthetic_weight(96, 64, 0.1, seed=3)  # sparse 96 x 64, dense X is 64 x 40
    fwd = sim.simulate_gemm(arch, M=40, K=64, N=96, weight=S.T)
    bwd = sim.simulate_gemm(arch, M=40, K=96, N=64, weight=S)
    dw = sim.simulate_sddmm(arch, M=96, K=40, N=64, mask=S)
    nnz = int((S != 0).sum())
    assert fwd.useful_macs == bwd.useful_macs == dw.useful_macs == 40 * nnz
    dense_dw = sim.simulate_sddmm(arch.with_(sparsity="dense"), 96, 40, 64, mask=S)
    assert dense_dw.performed_macs == 96 * 40 * 64
    assert dw.compute_cycles <= dense_dw.compute_cycles
    with pytest.raises(ValueError, match="shape"):
        sim.simulate_sddmm(arch, 96, 40, 64, mask=S.T)
