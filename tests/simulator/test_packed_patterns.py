"""Real weight patterns shipped with a sweep: packed and unpacked exactly, fingerprinted into
point_id (unchanged for sweeps without weights), checked against their layers."""

from __future__ import annotations

import numpy as np
import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.evaluate import WorkloadSpec
from sparse_accel_sim.packed_patterns import PackedPatterns
from sparse_accel_sim.sweep import workload_spec
from tests.helpers import draw_seed

LAYERS = [sim.Layer("a", 8, 37, 11), sim.Layer.from_conv("c", sim.ConvShape(6, 6, 3, 3, 2, 5))]


def weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.standard_normal((37, 11)) * (rng.random((37, 11)) < 0.3),
            "c": rng.standard_normal((5, 2, 3, 3)) * (rng.random((5, 2, 3, 3)) < 0.5)}


def test_pack_unpack_exact_and_digest():
    w = weights(draw_seed())
    p = PackedPatterns(w, LAYERS)
    masks = p.unpack()
    assert np.array_equal(masks["a"], w["a"] != 0)
    assert np.array_equal(masks["c"], (w["c"].reshape(5, -1) != 0).T)  # im2col K x N
    flipped = dict(w)
    flipped["a"] = w["a"].copy()
    flipped["a"][0, 0] = 0 if w["a"][0, 0] else 1
    assert PackedPatterns(flipped, LAYERS).digest != p.digest
    assert PackedPatterns(dict(w), LAYERS) == p and hash(PackedPatterns(w, LAYERS)) == hash(p)


def test_point_ids_unchanged_without_weights_and_changed_with_them():
    point = sim.DesignPoint(sim.Arch(rows=4, cols=4, sparsity="unstructured"), None)
    plain = workload_spec(LAYERS, seed=1)
    assert plain.weights is None
    same = WorkloadSpec(plain.layers, plain.seed, plain.energy_table, plain.area_table)
    assert plain.point_id(point) == same.point_id(point)
    real = workload_spec(LAYERS, seed=1, weights=weights(draw_seed()))
    assert real.point_id(point) != plain.point_id(point)


def test_sweep_with_weights_runs_them():
    w = weights(draw_seed())
    arch = sim.Arch(rows=4, cols=4, sparsity="unstructured")
    rows = sim.sweep([arch], LAYERS, weights=w, processes=1, progress=False)
    want = sim.summarize(sim.simulate_layers(arch, LAYERS, weights=w))
    assert rows[0]["elapsed_cycles"] == want.elapsed_cycles
    assert rows[0]["useful_macs"] == want.useful_macs


def test_weights_checked_against_their_layers():
    with pytest.raises(ValueError, match="no layer named 'b'"):
        PackedPatterns({"b": np.ones((2, 2))}, LAYERS)
    with pytest.raises(ValueError, match=r"weights\['a'\]: shape \(11, 37\)"):
        PackedPatterns({"a": np.ones((11, 37))}, LAYERS)
    with pytest.raises(ValueError, match=r"weights\['c'\]: shape \(5, 2, 3, 4\)"):
        PackedPatterns({"c": np.ones((5, 2, 3, 4))}, LAYERS)
