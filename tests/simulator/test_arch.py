"""Arch validation and presets."""

from __future__ import annotations

import pytest

import sparse_accel_sim as sim


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"rows": 0}, ValueError, "rows"),
    ({"cols": -3}, ValueError, "cols"),
    ({"rows": 2.5}, TypeError, "rows"),
    ({"rows": "32"}, TypeError, "rows"),
    ({"rows": True}, TypeError, "rows"),
    ({"dataflow": "rs"}, ValueError, "dataflow"),
    ({"dataflow": 3}, TypeError, "dataflow"),
    ({"ifmap_sram_kb": -1}, ValueError, "ifmap_sram_kb"),
    ({"filter_sram_kb": 0}, ValueError, "filter_sram_kb"),
    ({"ofmap_sram_kb": float("nan")}, ValueError, "ofmap_sram_kb"),
    ({"dram_words_per_cycle": 0}, ValueError, "dram_words_per_cycle"),
    ({"dram_words_per_cycle": -2}, ValueError, "dram_words_per_cycle"),
    ({"sparsity": "random"}, ValueError, "sparsity"),
    ({"nm": (4, 2)}, ValueError, "nm"),
    ({"nm": (0, 4)}, ValueError, "nm"),
    ({"block": (0, 4)}, ValueError, "block"),
    ({"word_bytes": 0}, ValueError, "word_bytes"),
    ({"dram_latency": -1}, ValueError, "dram_latency"),
])
def test_impossible_architectures(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sim.Arch(**kwargs)


def test_normalises_and_copies():
    a = sim.Arch(dataflow="WS", sparsity="NM", nm="2:8")
    assert (a.dataflow, a.sparsity, a.nm) == ("ws", "nm", (2, 8))
    b = a.with_(rows=8)
    assert b.rows == 8 and a.rows == 32
    with pytest.raises(ValueError):
        a.with_(rows=0)
    assert a.sram_words("ifmap") == 64 * 1024
    assert sim.Arch(word_bytes=2).sram_words("ofmap") == 32 * 1024


def test_from_roofline_matches_peak_and_bandwidth():
    a = sim.Arch.from_roofline(peak_macs_per_cycle=2048, dram_words_per_cycle=12.5)
    assert a.pes == 2048 and (a.rows, a.cols) == (32, 64)
    assert a.dram_words_per_cycle == 12.5
    # compute roof: with operands on chip a big GEMM runs at the peak MAC rate
    big = sim.simulate_gemm(a.with_(dram_words_per_cycle=None), 2048, 2048, 2048)
    assert big.useful_macs / big.elapsed_cycles == pytest.approx(2048, rel=0.05)
    # batch-1 GEMV is memory bound: about one weight word per MAC at the DRAM rate
    gemv = sim.simulate_gemm(a, 1, 4096, 4096)
    assert gemv.elapsed_cycles >= 4096 * 4096 / 12.5
    assert gemv.elapsed_cycles == pytest.approx(4096 * 4096 / 12.5, rel=0.1)


def test_from_machine():
    # 10 TFLOP/s, 500 GB/s at 1 GHz, fp32 words
    a = sim.Arch.from_machine(10e12, 500e9, 1e9, word_bytes=4)
    assert a.pes == 5000
    assert a.dram_words_per_cycle == pytest.approx(125)
    assert a.clock_ghz == pytest.approx(1.0)
