"""Design-space sweeps."""

from __future__ import annotations

import pytest

import sparse_accel_sim as sim


def test_grid_points():
    pts = sim.grid_points({"rows": [8, 16], "dataflow": ["os", "ws"], "sram_kb": [32]})
    assert len(pts) == 4
    assert {(p.rows, p.dataflow) for p in pts} == {(8, "os"), (8, "ws"), (16, "os"),
                                                     (16, "ws")}
    assert all(p.ifmap_sram_kb == p.ofmap_sram_kb == 32 for p in pts)
    with pytest.raises(ValueError, match="unknown Arch field"):
        sim.grid_points({"height": [8]})
    with pytest.raises(ValueError, match="rows"):
        sim.grid_points({"rows": [8, 0]})


def test_parallel_equals_serial():
    grid = {"rows": [4, 8, 16], "cols": [4, 8], "dataflow": ["os", "ws", "is"],
            "dram_words_per_cycle": [None, 2]}
    layers = [sim.Layer("a", 64, 32, 48), sim.Layer("b", 8, 128, 16)]
    serial = sim.sweep(grid, layers, processes=1, progress=False)
    parallel = sim.sweep(grid, layers, processes=2, progress=False)
    assert len(serial) == 36
    assert serial == parallel
    assert [r["point"] for r in serial] == list(range(36))
    one = sim.simulate_topology(sim.Arch(rows=4, cols=4, dataflow="os"), layers)
    assert serial[0]["total_cycles"] == one.total_cycles


def test_sweep_arch_list_and_errors():
    archs = [sim.Arch(rows=8, cols=8), sim.Arch(rows=16, cols=16, sparsity="unstructured")]
    rows = sim.sweep(archs, sim.Layer("x", 32, 32, 32), processes=1, progress=False,
                     density=0.5)
    assert rows[1]["useful_macs"] == 32 * 512
    with pytest.raises(TypeError, match="point 0"):
        sim.sweep([{"rows": 8}], sim.Layer("x", 4, 4, 4), progress=False)
    with pytest.raises(ValueError, match="processes"):
        sim.sweep(archs, sim.Layer("x", 4, 4, 4), processes=0, progress=False)
