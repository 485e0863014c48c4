"""pytest-benchmark timings of the simulator (``pytest bench/test_simulator_bench.py``).

The figures behind the issue's targets: a 1024^3 GEMM on 32 x 32 (< 1 s), the bundled
ResNet-50 and BERT-base layer lists (< 10 s) and a parallel sweep.
"""

from __future__ import annotations

import pytest

import sparse_accel_sim as sim

ARCH = sim.Arch(rows=32, cols=32, dram_words_per_cycle=16)


def test_gemm_1024_dense(benchmark):
    r = benchmark(sim.simulate_gemm, ARCH, 1024, 1024, 1024)
    assert r.compute_cycles == 32 * 32 * (32 + 32 + 1024 - 2) - 1
    assert benchmark.stats.stats.max < 1.0


def test_gemm_1024_unstructured(benchmark):
    w = sim.synthetic_weight(1024, 1024, 0.1, "powerlaw", seed=0)
    arch = ARCH.with_(sparsity="unstructured", balance=True)
    r = benchmark(sim.simulate_gemm, arch, 1024, 1024, 1024, w)
    assert r.useful_macs == 1024 * int((w != 0).sum())
    assert benchmark.stats.stats.max < 1.0


@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_network(benchmark, name):
    layers = sim.load_topology(sim.bundled_topology(name))
    r = benchmark.pedantic(sim.simulate_topology, args=(ARCH, layers), rounds=3)
    assert r.utilization <= 1
    assert benchmark.stats.stats.max < 10.0


def test_sweep_100_points(benchmark):
    archs = sim.grid_points({"rows": [8, 16, 32, 64, 128], "cols": [16, 32],
                             "dataflow": ["os", "ws"], "sparsity": ["dense", "nm"],
                             "dram_words_per_cycle": [None, 8, 32, 64, 128]})
    layer = sim.Layer("ffn1", 512, 768, 3072)
    rows = benchmark.pedantic(sim.sweep, args=(archs, layer),
                              kwargs={"processes": 2, "progress": False}, rounds=1)
    assert len(rows) == 200
