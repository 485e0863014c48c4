"""The fast engine's pattern-based fold tables equal the reference engine's, field by field.

The reference engine (``simulator.reference.plan_folds``) re-derives every fold from the full
mask with plain loops; ``fold_oracle`` puts its folds in the form of a ``FoldTable``. Small
and skewed shapes are compared with it live; network layers, too large to step through in
every run, against its tables pinned in ``data/fold_tables.json``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.folding import build_fold_table
from sparse_accel_sim.pattern import WeightPattern
from tests.simulator import fold_oracle as oracle

PINNED = json.loads(oracle.DATA.read_text())


def test_pinned_data_covers_every_case():
    assert PINNED["fields"] == list(oracle.FIELDS)
    keys = [key for layer in oracle.network_layers() for key, _ in oracle.network_cases(layer)]
    assert sorted(keys) == sorted(PINNED["cases"]) and len(keys) == 216


@pytest.mark.parametrize("layer", oracle.network_layers(), ids=lambda x: x.name)
def test_network_layers_match_the_reference_engine(layer):
    M = min(layer.M, oracle.NETWORK_M)
    pat = WeightPattern(oracle.network_mask(layer))  # one pattern for every array, as in a sweep
    for key, arch in oracle.network_cases(layer):
        want = PINNED["cases"][key]
        assert (want["M"], want["K"], want["N"]) == (M, layer.K, layer.N), key
        got = oracle.digest(oracle.fast_table(arch, M, layer.K, layer.N, pat))
        assert got["folds"] == want["folds"], key
        sums = dict(zip(oracle.FIELDS, got["sums"], strict=True))
        assert sums == dict(zip(oracle.FIELDS, want["sums"], strict=True)), key
        assert got["sha256"] == want["sha256"], key


@pytest.mark.parametrize("kind", ["uniform", "powerlaw"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skewed_and_tiny_arrays_match_the_reference_engine(kind, seed):
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
                oracle.assert_same_table(oracle.fast_table(arch, 5, K, N, pat),
                                         oracle.reference_table(arch, 5, K, N, mask),
                                         f"seed {seed} {K}x{N} {df} {rows}x{cols} {balance}")


@pytest.mark.parametrize("seed", range(2))
def test_every_mode_and_layout_matches_the_reference_engine(seed):
    """Random small GEMMs, every sparsity mode, dataflow and layout (seeded, see ids)."""
    rng = np.random.default_rng(seed)
    for _ in range(25):
        K, N, M = (int(x) for x in rng.integers(1, 40, size=3))
        kind = str(rng.choice(["uniform", "powerlaw", "block"]))
        mask = sim.synthetic_weight(K, N, float(rng.uniform(0.02, 1)), kind, seed=seed,
                                    alpha=2.0, block=(2, 3)) != 0
        pat = WeightPattern(mask)
        for mode in ("dense", "block", "unstructured"):
            for df in ("os", "ws", "is"):
                arch = sim.Arch(rows=int(rng.integers(1, 9)), cols=int(rng.integers(1, 9)),
                                dataflow=df, sparsity=mode, balance=bool(rng.integers(2)),
                                block=(int(rng.integers(1, 5)), int(rng.integers(1, 5))),
                                layout=str(rng.choice(["csr", "bitmap"])))
                oracle.assert_same_table(oracle.fast_table(arch, M, K, N, pat),
                                         oracle.reference_table(arch, M, K, N, mask),
                                         f"seed {seed}: {arch} M={M} K={K} N={N}")


@pytest.mark.parametrize("cols", [4, 2])
def test_wide_runs_are_exact(cols):
    """Full lanes next to near-empty ones: on a 1-row array the row folds of one row differ by
    more than 64. With 4 columns a run (row, tile) spreads that wide too (the exact
    fallback); with 2 only the rows do (the per-run base)."""
    mask = np.zeros((400, 4), dtype=bool)
    mask[:, 0] = mask[:, 1] = True
    mask[::50, 2] = mask[::40, 3] = True
    arch = sim.Arch(rows=1, cols=cols, dataflow="ws", sparsity="unstructured")
    oracle.assert_same_table(oracle.fast_table(arch, 3, 400, 4, WeightPattern(mask)),
                             oracle.reference_table(arch, 3, 400, 4, mask))


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
