"""Pareto fronts against brute force, and the area model."""

from __future__ import annotations

import numpy as np
import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.area import AreaTable, estimate_area
from sparse_accel_sim.pareto import pareto_mask


def brute_force(v: np.ndarray) -> np.ndarray:
    n = len(v)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if (v[j] <= v[i]).all() and (v[j] < v[i]).any():
                keep[i] = False
                break
    return keep


@pytest.mark.parametrize("seed", range(6))
def test_front_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 1300)), int(rng.integers(1, 5))
    # small integer ranges force ties and duplicates; floats give general position
    v = rng.integers(0, 12, (n, k)).astype(float) if seed % 2 else rng.random((n, k))
    assert np.array_equal(pareto_mask(v), brute_force(v))


def test_pareto_rows_and_maximize():
    rows = [{"c": 3, "e": 1.0, "u": 0.5}, {"c": 1, "e": 3.0, "u": 0.1},
            {"c": 2, "e": 2.0, "u": 0.9}, {"c": 3, "e": 3.0, "u": 0.2},
            {"c": 1, "e": 3.0, "u": 0.1}]
    front = sim.pareto(rows, ("c", "e"))
    assert front == [rows[0], rows[1], rows[2], rows[4]]  # equal points both stay
    assert sim.pareto(rows, ("c", "u"), maximize=("u",)) == [rows[1], rows[2], rows[4]]
    with pytest.raises(ValueError, match="'x' is not a column"):
        sim.pareto(rows, ("c", "x"))
    with pytest.raises(ValueError, match="finite"):
        sim.pareto([{"c": float("nan")}], ("c",))
    with pytest.raises(ValueError, match="not objectives"):
        sim.pareto(rows, ("c",), maximize=("u",))
    assert sim.pareto([], ("c",)) == []


def test_area_model():
    a = sim.Arch(rows=16, cols=16, ifmap_sram_kb=64, filter_sram_kb=64, ofmap_sram_kb=64)
    area = estimate_area(a)
    t = sim.default_area_table()
    pe = (318.0 + 3 * 8 * t.register_um2_per_bit) * 256 / 1e6
    assert area["pe"] == pytest.approx(pe)
    assert area["sram"] == pytest.approx(192 * 8192 * 0.346 / 0.6 / 1e6)
    assert area["total"] == pytest.approx(area["pe"] + area["sram"])
    assert estimate_area(a.with_(word_bytes=2))["pe"] > area["pe"]
    assert estimate_area(a.with_(sparsity="unstructured"))["pe"] == pytest.approx(1.3 * pe)
    assert estimate_area(a.with_(rows=32))["pe"] == pytest.approx(2 * pe)


def test_area_table_is_swappable_and_checked(tmp_path):
    text = sim.area.DEFAULT_AREA_PATH.read_text().replace("sram_bitcell_um2: 0.346",
                                                          "sram_bitcell_um2: 0.692")
    path = tmp_path / "a.yaml"
    path.write_text(text)
    a = sim.Arch()
    assert estimate_area(a, path)["sram"] == pytest.approx(2 * estimate_area(a)["sram"])
    rows = sim.sweep([a], sim.Layer("x", 8, 8, 8), processes=1, progress=False,
                     area_table=path)
    assert rows[0]["area_sram_mm2"] == pytest.approx(2 * estimate_area(a)["sram"])
    with pytest.raises(ValueError, match="missing field"):
        AreaTable.from_dict({"mac_um2": {8: 1}})
    bad = tmp_path / "b.yaml"
    bad.write_text(text.replace("sram_array_efficiency: 0.6", "sram_array_efficiency: 2"))
    with pytest.raises(ValueError, match="b.yaml.*sram_array_efficiency"):
        AreaTable.from_yaml(bad)
