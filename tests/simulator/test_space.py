"""Space files (grid values, search ranges, sparsity axes) and the NSGA-II search."""

from __future__ import annotations

import textwrap

import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.space import Range, SpaceError, load_space

GOOD = """\
base:
  dram_words_per_cycle: 16
arch:
  rows: [8, 16]
  cols: [8]
  dataflow: [os, ws]
  sram_kb: [32, 64]
sparsity:
  - mode: dense
  - mode: nm
    nm: ["2:4", "1:4"]
  - mode: unstructured
    density: [0.1, 0.3]
    balance: [true]
seed: 5
"""


def write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_grid_expansion(tmp_path):
    space = load_space(write(tmp_path, GOOD))
    assert space.seed == 5 and space.base.dram_words_per_cycle == 16
    assert [o.label for o in space.sparsity] == [
        "dense", "nm nm=2:4", "nm nm=1:4", "unstructured balance=True density=0.1",
        "unstructured balance=True density=0.3"]
    points = space.grid()
    assert len(points) == 2 * 1 * 2 * 2 * 5
    p = points[4]  # rows 8, os, 32 KB, the last sparsity option (options vary fastest)
    assert (p.arch.rows, p.arch.dataflow, p.arch.ifmap_sram_kb, p.arch.sparsity,
            p.arch.balance, p.density) == (8, "os", 32, "unstructured", True, 0.3)
    assert points[1].arch.nm == (2, 4) and points[1].density is None
    rows = sim.sweep(points[:5], sim.Layer("x", 16, 32, 16), seed=space.seed, processes=1,
                     progress=False)
    assert [r["sparsity"] for r in rows] == ["dense", "nm", "nm", "unstructured",
                                             "unstructured"]


@pytest.mark.parametrize("text, where", [
    ("arch:\n  rows: [8, 0]\n", ":2: field 'arch.rows': Arch.rows must be >= 1"),
    ("arch:\n  rows: [8]\n  colz: [4]\n", ":3: field 'arch.colz': not a sweepable"),
    ("arch:\n  rows: [8]\nsparsity:\n  - mode: sparse\n", ":4: field 'sparsity[0].mode'"),
    ("arch:\n  rows: [8]\nsparsity:\n  - mode: nm\n    density: [0.5]\n",
     ":5: field 'sparsity[0].density': an nm mode"),
    ("arch:\n  rows: [8]\nsparsity:\n  - mode: dense\n    density: [0.5, 2]\n",
     ":5: field 'sparsity[0].density': density must be in"),
    ("arch:\n  rows: {low: 9, high: 4}\n", ":2: field 'arch.rows': low (9) exceeds"),
    ("arch:\n  rows: {low: 1, hi: 4}\n", ":2: field 'arch.rows': unknown range key"),
    ("arch:\n  dataflow: [os, xs]\n", ":2: field 'arch.dataflow'"),
    ("arch:\n  rows: []\n", ":2: field 'arch.rows' has no values"),
    ("base:\n  rowz: 3\narch:\n  rows: [8]\n", ":2: field 'base.rowz': not an Arch field"),
    ("arch:\n  rows: [8]\nseed: x\n", ":3: field 'seed' must be an integer"),
    ("arch:\n  rows: [8]\nextra: 1\n", ":3: field 'extra': unknown"),
    ("arch:\n  rows: [8\n", "not valid YAML"),
    ("base: {}\n", "no 'arch' mapping"),
    ("arch:\n  sparsity: [dense]\n", "sweep it in the 'sparsity' section"),
])
def test_malformed_space_names_file_line_field(tmp_path, text, where):
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert str(path) in str(err.value) and where in str(err.value)


def test_ranges_are_for_search_only(tmp_path):
    space = load_space(write(tmp_path, "arch:\n  rows: {low: 4, high: 64, log: true}\n"
                                       "  cols: {low: 4, high: 32, step: 4}\n"
                                       "  dram_words_per_cycle: {low: 0.5, high: 8.0}\n"))
    assert space.axes["rows"] == Range(4, 64, None, True, True)
    assert space.axes["dram_words_per_cycle"].integer is False
    with pytest.raises(SpaceError, match=r":2: field 'arch.rows': a range can only be searched"):
        space.grid()


def test_search_finds_a_front_on_the_same_executor(tmp_path):
    path = write(tmp_path, """\
        base: {dram_words_per_cycle: 8}
        arch:
          rows: {low: 2, high: 32, log: true}
          cols: {low: 2, high: 32, step: 2}
          dataflow: [os, ws, is]
          sram_kb: [1, 16, 64]
        sparsity:
          - mode: dense
          - mode: unstructured
            density: [0.3]
        """)
    layers = [sim.Layer("x", 32, 64, 32)]
    res = sim.search(path, layers, trials=24, chunk=8, processes=1, progress=False,
                     out=tmp_path / "r")
    assert len(res.rows) + sum(t.state.name == "FAIL" for t in res.study.trials) == 24
    assert res.front == sim.pareto(res.rows)
    assert all(2 <= r["rows"] <= 32 and r["cols"] % 2 == 0 for r in res.rows)
    again = sim.search(path, layers, trials=24, chunk=8, processes=1, progress=False,
                       out=tmp_path / "r")
    assert [r["point_id"] for r in again.rows] == [r["point_id"] for r in res.rows]
    one = res.rows[0]
    check = sim.sweep([sim.DesignPoint(sim.Arch(
        rows=one["rows"], cols=one["cols"], dataflow=one["dataflow"],
        sparsity=one["sparsity"], ifmap_sram_kb=one["ifmap_sram_kb"],
        filter_sram_kb=one["ifmap_sram_kb"], ofmap_sram_kb=one["ifmap_sram_kb"],
        dram_words_per_cycle=8), one["density"])], layers, processes=1, progress=False)
    assert check[0]["elapsed_cycles"] == one["elapsed_cycles"]
    with pytest.raises(ValueError, match="trials"):
        sim.search(path, layers, trials=0)
