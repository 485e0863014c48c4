"""Resumable results: point ids, the Parquet store, and sweeps that skip stored points."""

from __future__ import annotations

import pytest

import sparse_accel_sim as sim
from sparse_accel_sim import design_point
from sparse_accel_sim.evaluate import WorkloadSpec
from sparse_accel_sim.results_store import ResultsStore
from sparse_accel_sim.sweep import workload_spec

LAYERS = [sim.Layer("a", 32, 48, 40), sim.Layer("b", 4, 64, 8)]
GRID = {"rows": [4, 8], "dataflow": ["os", "ws"], "sparsity": ["nm", "unstructured"],
        "dram_words_per_cycle": [None, 2.5], "density": [None, 0.5]}


def test_point_id_depends_on_what_changes_a_row(monkeypatch):
    spec = workload_spec(LAYERS, seed=1)
    p = sim.DesignPoint(sim.Arch(rows=8), 0.5)
    pid = spec.point_id(p)
    assert pid == workload_spec(list(LAYERS), seed=1).point_id(sim.DesignPoint(sim.Arch(rows=8),
                                                                                0.5))
    others = {
        workload_spec(LAYERS, seed=2).point_id(p),
        workload_spec(LAYERS[:1], seed=1).point_id(p),
        spec.point_id(sim.DesignPoint(sim.Arch(rows=8), 0.25)),
        spec.point_id(sim.DesignPoint(sim.Arch(rows=8, sparsity="unstructured"), 0.5)),
        spec.point_id(sim.DesignPoint(sim.Arch(rows=8), None)),
    }
    table = sim.default_table()
    cheaper = WorkloadSpec(spec.layers, 1, type(table)(**{**table.__dict__, "index_pj": 0.5}),
                           spec.area_table)
    others.add(cheaper.point_id(p))
    monkeypatch.setattr(design_point, "SIMULATOR_VERSION", "0.0.0")
    others.add(design_point.point_id(p, spec.key))
    assert pid not in others and len(others) == 7


def test_store_round_trip_keeps_types(tmp_path):
    rows = sim.sweep(GRID, LAYERS, processes=1, progress=False)
    store = ResultsStore(tmp_path / "r")
    store.write_chunk(rows[:5])
    store.write_chunk(rows[5:])
    assert store.write_chunk([]) is None
    back = store.rows()
    assert back == rows  # ints stay ints, None stays None, bools stay bools
    assert {type(r["dram_words_per_cycle"]) for r in back} == {type(None), float}
    (tmp_path / "r" / ".part-x.parquet.tmp").write_bytes(b"half a file")  # a killed write
    assert store.rows() == rows
    (tmp_path / "r" / "part-bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="part-bad.parquet"):
        store.load()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        ResultsStore(tmp_path / "f")


def test_sweep_resumes_and_skips_stored_points(tmp_path, monkeypatch):
    full = sim.sweep(GRID, LAYERS, processes=1, progress=False)
    points = sim.design_points(GRID)
    first = sim.sweep(points[:7], LAYERS, processes=1, progress=False, out=tmp_path, chunk=3)
    assert first == full[:7]
    assert len(ResultsStore(tmp_path).files()) == 3
    evaluated = []
    from sparse_accel_sim import evaluate

    real = evaluate.evaluate_point
    monkeypatch.setattr(evaluate, "evaluate_point",
                        lambda spec, p: evaluated.append(p) or real(spec, p))
    again = sim.sweep(GRID, LAYERS, processes=1, progress=False, out=tmp_path)
    assert again == full
    assert len(evaluated) == len(full) - 7  # the stored points were not simulated again
    evaluated.clear()
    assert sim.sweep(GRID, LAYERS, processes=2, progress=False, out=tmp_path) == full
    assert evaluated == []
    assert len(ResultsStore(tmp_path).load()) == len(full)


def test_duplicate_points_are_simulated_once():
    a = sim.Arch(rows=4)
    rows = sim.sweep([a, a, (a, 0.5)], LAYERS, processes=1, progress=False)
    assert [r["point"] for r in rows] == [0, 1, 2]
    assert rows[0]["point_id"] == rows[1]["point_id"] != rows[2]["point_id"]
    assert {**rows[0], "point": 1} == rows[1]


def test_sweep_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="executor"):
        sim.sweep([sim.Arch()], LAYERS, executor="spark", progress=False)
    with pytest.raises(ValueError, match="chunk"):
        sim.sweep([sim.Arch()], LAYERS, chunk=0, progress=False)
    with pytest.raises(ValueError, match="address"):
        sim.sweep([sim.Arch()], LAYERS, address="tcp://x:1", progress=False)
    with pytest.raises(ValueError, match="density"):
        sim.sweep({"rows": [4], "density": [1.5]}, LAYERS, progress=False)
    with pytest.raises(TypeError, match="point 1"):
        sim.sweep([sim.Arch(), "x"], LAYERS, progress=False)
    with pytest.raises(ValueError, match="workload axis"):
        sim.grid_points({"density": [0.5]})
