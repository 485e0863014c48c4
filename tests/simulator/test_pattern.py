"""The pattern-based fold tables equal the ones computed from the full mask before issue 12."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import simulator as sim
from simulator.folding import build_fold_table
from simulator.pattern import WeightPattern
from tests.simulator import _folding_before as before

MODES = ("dense", "block", "unstructured")


def assert_same_table(new, old) -> None:
    for f in dataclasses.fields(old):
        a, b = getattr(new, f.name), getattr(old, f.name)
        assert np.array_equal(np.asarray(a), np.asarray(b)), f.name


def _layers(name: str, picks: list[int]) -> list[sim.Layer]:
    layers = sim.load_topology(sim.bundled_topology(name))
    return [layers[i] for i in picks]


@pytest.mark.parametrize("layer", _layers("resnet50", [0, 2, 9, 30, 50]) +
                         _layers("bert_base", [0, 3, 20]), ids=lambda x: x.name)
def test_network_layers_match_previous_code(layer):
    M = min(layer.M, 64)  # M only scales the counts; keep the old code's runs short
    mask = sim.synthetic_weight(layer.K, layer.N, 0.3, seed=7) != 0
    pat = WeightPattern(mask)  # one pattern shared by every architecture, as in a sweep
    for mode in MODES:
        for df in ("os", "ws", "is"):
            for rows, cols, balance in ((16, 16, False), (32, 8, True), (7, 48, True)):
                arch = sim.Arch(rows=rows, cols=cols, dataflow=df, sparsity=mode,
                                balance=balance, block=(8, 4))
                assert_same_table(build_fold_table(arch, M, layer.K, layer.N, pat),
                                  before.build_fold_table(arch, M, layer.K, layer.N, mask))


@pytest.mark.parametrize("kind", ["uniform", "powerlaw"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skewed_and_tiny_arrays_match_previous_code(kind, seed):
    """Power-law lanes and 1-row arrays spread a run over many row folds (the exact fallback
    of ``ws_fold_inputs``); small, odd shapes hit every edge tile."""
    rng = np.random.default_rng(seed)
    K, N = int(rng.integers(1, 300)), int(rng.integers(1, 200))
    mask = sim.synthetic_weight(K, N, float(rng.uniform(0.02, 1.0)), kind, seed=seed,
                                alpha=2.0) != 0
    pat = WeightPattern(mask)
    for df in ("os", "ws", "is"):
        for rows, cols in ((1, 1), (1, 64), (3, 5), (64, 1), (128, 128)):
            for balance in (False, True):
                arch = sim.Arch(rows=rows, cols=cols, dataflow=df, sparsity="unstructured",
                                balance=balance)
                assert_same_table(build_fold_table(arch, 5, K, N, pat),
                                  before.build_fold_table(arch, 5, K, N, mask))


@pytest.mark.parametrize("cols", [4, 2])
def test_wide_runs_are_exact(cols):
    """Full lanes next to near-empty ones: on a 1-row array the row folds of one row differ by
    more than 64. With 4 columns a run (row, tile) spreads that wide too (the exact
    fallback); with 2 only the rows do (the per-run base)."""
    mask = np.zeros((400, 4), dtype=bool)
    mask[:, 0] = mask[:, 1] = True
    mask[::50, 2] = mask[::40, 3] = True
    arch = sim.Arch(rows=1, cols=cols, dataflow="ws", sparsity="unstructured")
    assert_same_table(build_fold_table(arch, 3, 400, 4, WeightPattern(mask)),
                      before.build_fold_table(arch, 3, 400, 4, mask))


def test_pattern_checks_and_caches():
    mask = np.eye(5, 3, dtype=bool)
    pat = WeightPattern(mask)
    assert pat.nnz == 3 and pat.col_nnz.tolist() == [1, 1, 1]
    assert pat.row_major(True) is pat.row_major(True)
    assert pat.nbytes > mask.nbytes
    with pytest.raises(ValueError, match="2-D"):
        WeightPattern(np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="K x N"):
        build_fold_table(sim.Arch(sparsity="unstructured"), 4, 3, 5, pat)


def test_repeated_shapes_reuse_results_exactly():
    layers = sim.load_topology(sim.bundled_topology("bert_base"))[:30]  # heads repeat shapes
    for mode in ("dense", "nm"):
        arch = sim.Arch(rows=16, cols=8, dataflow="ws", sparsity=mode, dram_words_per_cycle=4)
        together = sim.simulate_layers(arch, layers)
        for layer, r in zip(layers, together, strict=True):
            one = sim.simulate_gemm(arch, layer.M, layer.K, layer.N, name=layer.name)
            assert r.to_row() == one.to_row()
