"""pytest-benchmark timings of design-space exploration (``pytest bench/test_dse_bench.py``).

A ResNet-50 point with unstructured sparsity once its patterns are prepared (the issue's
target: <= 0.1 s; the bound asserted here is looser, for loaded CI machines), a 2:4 point, and
a Pareto front of 20,000 random 3-objective points.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.pareto import pareto_mask
from sparse_accel_sim.prepared import PreparedWorkload


@pytest.fixture(scope="module")
def resnet():
    work = PreparedWorkload(sim.load_topology(sim.bundled_topology("resnet50")), density=0.3)
    return work


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_resnet_unstructured_point(benchmark, resnet, dataflow):
    arch = sim.Arch(rows=32, cols=32, dataflow=dataflow, sparsity="unstructured",
                    dram_words_per_cycle=16)
    resnet.simulate(arch)  # prepares the lists this dataflow needs (once per sweep)
    results = benchmark.pedantic(resnet.simulate, args=(arch,), rounds=3)
    assert sim.summarize(results).utilization <= 1
    assert benchmark.stats.stats.min < 1.0


def test_resnet_nm_point(benchmark, resnet):
    arch = sim.Arch(rows=32, cols=32, dataflow="ws", sparsity="nm", dram_words_per_cycle=16)
    results = benchmark.pedantic(resnet.simulate, args=(arch,), rounds=3)
    assert len(results) == 54


def test_pareto_20k_points(benchmark):
    rng = np.random.default_rng(0)
    v = rng.random((20_000, 3))
    mask = benchmark.pedantic(pareto_mask, args=(v,), rounds=1)
    assert 0 < mask.sum() < 20_000
