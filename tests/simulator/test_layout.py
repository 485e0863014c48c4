"""Weight storage layouts of unstructured sparsity: CSR (the default) against a bitmap; and
the field's former name ``weight_format``, still accepted with a DeprecationWarning."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys

import numpy as np
import pytest

import sparse_accel_sim as sim
from sparse_accel_sim import design_point
from sparse_accel_sim.folding import build_fold_table, index_bits
from sparse_accel_sim.layout import (
    bitmap_words,
    break_even_density,
    csr_words,
    dense_break_even_density,
)
from sparse_accel_sim.pattern import WeightPattern
from sparse_accel_sim.results_store import ResultsStore
from sparse_accel_sim.space import load_space
from sparse_accel_sim.sweep import workload_spec

# Recorded with the simulator before the layout field (first named weight_format) existed:
# 37 x 70 x 45, density 0.3, seed 1, 8 x 8 array, 0.25 KB buffers, 2.5 words/cycle,
# latency 7. Per (dataflow, balance): total_cycles, stall_cycles, dram_reads filter,
# dram_reads metadata, sram_reads metadata, dram_writes ofmap.
BEFORE = {
    ("os", False): [10575, 9421, 4725, 4375, 4375, 1665],
    ("os", True): [10568, 9499, 4725, 4375, 4375, 1665],
    ("ws", False): [11725, 10546, 945, 983, 983, 5587],
    ("ws", True): [10949, 9829, 945, 973, 973, 5291],
    ("is", False): [15182, 13388, 4725, 3910, 3910, 14060],
    ("is", True): [14793, 13154, 4725, 3910, 3910, 13653],
}


def _figures(r: sim.Result) -> list[int]:
    return [r.total_cycles, r.stall_cycles, r.dram_reads["filter"], r.dram_reads["metadata"],
            r.sram_reads["metadata"], r.dram_writes["ofmap"]]


def _arch(df: str, layout: str | None = None, **kw) -> sim.Arch:
    extra = {} if layout is None else {"layout": layout}
    base = dict(rows=8, cols=8, dataflow=df, sparsity="unstructured", ifmap_sram_kb=0.25,
                filter_sram_kb=0.25, ofmap_sram_kb=0.25, dram_words_per_cycle=2.5,
                dram_latency=7)
    base.update(kw)
    return sim.Arch(**base, **extra)


@pytest.mark.parametrize("df, balance", sorted(BEFORE))
def test_default_is_csr_and_unchanged(df, balance):
    arch = _arch(df, balance=balance)
    assert arch.layout == "csr"
    assert arch == _arch(df, "csr", balance=balance)
    r = sim.simulate_gemm(arch, 37, 70, 45, density=0.3, seed=1)
    assert _figures(r) == BEFORE[(df, balance)]


def test_point_ids_of_default_points_are_unchanged():
    spec = workload_spec([sim.Layer("a", 8, 16, 8)], seed=0)
    point = sim.DesignPoint(sim.Arch(rows=8, sparsity="unstructured"), 0.5)
    arch = point.arch.to_dict()
    del arch["layout"]  # the hash of a point before the field existed
    text = design_point.canonical({"v": design_point.SIMULATOR_VERSION, "arch": arch,
                                   "density": 0.5, "workload": spec.key})
    assert spec.point_id(point) == hashlib.sha256(text.encode()).hexdigest()[:16]
    bitmap = sim.DesignPoint(point.arch.with_(layout="bitmap"), 0.5)
    assert spec.point_id(bitmap) != spec.point_id(point)
    # a non-default layout is hashed under the field's first name, so its ids stay valid too
    arch = {**arch, "weight_format": "bitmap"}
    text = design_point.canonical({"v": design_point.SIMULATOR_VERSION, "arch": arch,
                                   "density": 0.5, "workload": spec.key})
    assert spec.point_id(bitmap) == hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("value", ["coo", "", "bitmaps", "CSC"])
def test_bad_values_raise_naming_the_field(value):
    with pytest.raises(ValueError, match="Arch.layout"):
        sim.Arch(layout=value)


def test_bad_types_raise_naming_the_field():
    with pytest.raises(TypeError, match="Arch.layout"):
        sim.Arch(layout=1)


def test_values_are_normalised():
    assert sim.Arch(layout=" Bitmap ").layout == "bitmap"
    assert sim.LAYOUTS == ("csr", "bitmap")


def test_os_bitmap_words_hand_computed():
    # one column tile of 16 x 4 positions: 64 bits = 8 one-byte words, whatever the nnz;
    # CSR: 10 nonzeros x 4-bit index = 40 bits = 5 words, plus 4 lane pointers = 9 words
    w = np.zeros((16, 4))
    w[[0, 3, 7, 15], 0] = 1
    w[[1, 2], 1] = 1
    w[[5, 6, 8], 2] = 1
    w[9, 3] = 1
    arch = sim.Arch(rows=2, cols=4, dataflow="os", sparsity="unstructured")
    assert bitmap_words(16 * 4, arch.word_bits) == 8
    assert csr_words(10, 4, index_bits(16), arch.word_bits) == 9
    for layout, words in (("bitmap", 8), ("csr", 9)):
        r = sim.simulate_gemm(arch.with_(layout=layout), 4, 16, 4, weight=w)
        assert r.dram_reads["metadata"] == words  # fetched once, resident for row fold 2
        assert r.sram_reads["metadata"] == 2 * words  # read by both row folds
        assert r.dram_reads["filter"] == 10
    r2 = sim.simulate_gemm(arch.with_(layout="bitmap", word_bytes=2), 4, 16, 4,
                           weight=w)
    assert r2.dram_reads["metadata"] == 4  # 64 bits in 16-bit words


def test_is_bitmap_words_hand_computed():
    # is: lanes are PE rows; two row tiles of 4 x 10 positions = 40 bits = 5 words each
    w = np.zeros((8, 10))
    w[0, [0, 4]] = w[3, 9] = w[6, 1] = 1
    arch = sim.Arch(rows=4, cols=4, dataflow="is", sparsity="unstructured",
                    layout="bitmap")
    t = build_fold_table(arch, 4, 8, 10, w != 0)
    assert t.meta_tile_words.tolist() == [5, 5]
    t = build_fold_table(arch.with_(layout="csr"), 4, 8, 10, w != 0)
    # 4-bit indices (N = 10): 3 nonzeros = 12 bits = 2 words, 1 nonzero = 1 word; + 4 rows
    assert t.meta_tile_words.tolist() == [2 + 4, 1 + 4]


def test_ws_bitmap_bits_are_split_among_row_folds():
    # lane 0 has nonzeros at k = 1, 2, 5, 6, 7; lane 1 only at k = 0; R = 2 rows per fold.
    # fold 0 holds ranks 0-1 of lane 0 (bits k = 0..2) and all of lane 1 (its last fold:
    # all 8 bits): 11 bits; fold 1 holds ranks 2-3 (k = 3..6): 4 bits; fold 2 rank 4 and
    # the rest of the lane (k = 7): 1 bit. 16 bits in all = K x 2 lanes.
    w = np.zeros((8, 2), dtype=bool)
    w[[1, 2, 5, 6, 7], 0] = True
    w[0, 1] = True
    arch = sim.Arch(rows=2, cols=2, dataflow="ws", sparsity="unstructured",
                    layout="bitmap")
    pat = WeightPattern(w)
    assert pat.ws_fold_bitmap_bits(2, 2, False, np.array([0]), 3).tolist() == [11, 4, 1]
    t = build_fold_table(arch, 3, 8, 2, w)
    assert t.meta_tile_words.tolist() == [2, 1, 1]
    # CSR: 3-bit indices, two lane pointers per fold: 3, 2 and 1 nonzeros
    t = build_fold_table(arch.with_(layout="csr"), 3, 8, 2, w)
    assert t.meta_tile_words.tolist() == [2 + 2, 1 + 2, 1 + 2]


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_engines_agree_on_bitmap(df):
    w = sim.synthetic_weight(12, 10, 0.35, "powerlaw", seed=3)
    arch = sim.Arch(rows=3, cols=4, dataflow=df, sparsity="unstructured",
                    layout="bitmap", dram_words_per_cycle=1, dram_latency=3,
                    ifmap_sram_kb=0.03, filter_sram_kb=0.03, ofmap_sram_kb=0.25,
                    balance=True)
    fast = sim.simulate_gemm(arch, 7, 12, 10, w)
    other = sim.simulate_gemm(arch, 7, 12, 10, w, engine="reference")
    assert fast.totals() == other.totals()
    assert fast.energy_pj["metadata"] == pytest.approx(other.energy_pj["metadata"])


def _metadata(df: str, layout: str, density: float, K: int = 256, N: int = 256) -> int:
    arch = sim.Arch(rows=8, cols=8, dataflow=df, sparsity="unstructured", layout=layout,
                    ifmap_sram_kb=1024, filter_sram_kb=1024, ofmap_sram_kb=1024)
    return sim.simulate_gemm(arch, 8, K, N, density=density, seed=5).dram_reads["metadata"]


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_ordering_flips_at_the_break_even_density(df):
    # K = N = 256: 8-bit CSR indices, one-byte words; metadata alone breaks even at 1/8
    d_star = break_even_density(index_bits(256))
    assert d_star == 1 / 8
    below, above = 0.6 * d_star, 1.5 * d_star
    assert _metadata(df, "csr", below) < _metadata(df, "bitmap", below)
    assert _metadata(df, "bitmap", above) < _metadata(df, "csr", above)
    if df != "ws":  # (ws cuts each lane's bitmap at its row folds, whose number varies)
        # the bitmap costs the same at every density; CSR grows with the nonzeros
        assert _metadata(df, "bitmap", below) == _metadata(df, "bitmap", above)


def test_exact_crossing_counts_the_lane_pointers():
    # os: a lane is one column of K = 256 positions; CSR also pays 1 pointer word per lane,
    # so the crossing is (1/8)(1 - 8/256) = 0.1211
    d_x = break_even_density(8, word_bits=8, lane_positions=256)
    assert d_x == pytest.approx(0.12109375)
    lo, hi = d_x - 0.006, d_x + 0.006
    assert _metadata("os", "csr", lo) < _metadata("os", "bitmap", lo)
    assert _metadata("os", "bitmap", hi) < _metadata("os", "csr", hi)


def test_bitmap_breaks_even_with_dense_at_one_minus_one_over_word_bits():
    d = dense_break_even_density("bitmap", word_bits=8)
    assert d == 1 - 1 / 8

    def stored(mode: str, density: float | None) -> int:
        arch = sim.Arch(rows=8, cols=8, dataflow="os", sparsity=mode, layout="bitmap")
        r = sim.simulate_gemm(arch, 8, 256, 64, density=density, seed=2)
        return r.dram_reads["filter"] + r.dram_reads["metadata"]

    dense = stored("dense", None)
    assert dense == 256 * 64
    assert stored("unstructured", d - 0.02) < dense < stored("unstructured", d + 0.02)
    assert stored("unstructured", d) == dense  # exactly: 0.875 * P + P / 8 = P
    csr = dense_break_even_density("csr", 8, index_bits=8, lane_positions=256)
    assert csr == pytest.approx((1 - 1 / 256) / 2)


def test_other_modes_ignore_the_layout():
    for mode, d in (("dense", None), ("nm", None), ("block", 0.5)):
        a = sim.Arch(rows=4, cols=4, sparsity=mode, dram_words_per_cycle=2)
        r1 = sim.simulate_gemm(a, 8, 32, 16, density=d)
        r2 = sim.simulate_gemm(a.with_(layout="bitmap"), 8, 32, 16, density=d)
        assert r1.totals() == r2.totals()


def test_to_dict_round_trip():
    arch = sim.Arch(rows=4, cols=6, dataflow="ws", sparsity="unstructured", nm=(1, 4),
                    block=(8, 2), balance=True, layout="bitmap", name="x")
    d = arch.to_dict()
    assert d["layout"] == "bitmap"
    back = sim.Arch.from_dict(d)
    assert back == arch and back.layout == "bitmap" and back.name == "x"
    assert sim.Arch.from_dict({"rows": 2}).layout == "csr"  # older dicts
    with pytest.raises(ValueError, match="not Arch fields"):
        sim.Arch.from_dict({"rows": 2, "lyaout": "bitmap"})
    with pytest.raises(ValueError, match="layout"):
        sim.Arch.from_dict({**d, "layout": "coo"})


def test_sweep_rows_and_parquet_keep_the_layout(tmp_path):
    layers = [sim.Layer("a", 8, 64, 16)]
    grid = {"dataflow": ["os", "ws"], "sparsity": ["unstructured"],
            "layout": ["csr", "bitmap"], "density": [0.5]}
    rows = sim.sweep(grid, layers, processes=1, progress=False, out=tmp_path / "r")
    assert [r["layout"] for r in rows] == ["csr", "bitmap", "csr", "bitmap"]
    assert rows[0]["dram_reads_metadata"] != rows[1]["dram_reads_metadata"]
    assert len({r["point_id"] for r in rows}) == 4
    back = ResultsStore(tmp_path / "r").rows()
    assert back == rows


def test_space_file_sweeps_the_layout(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("arch:\n  rows: [8]\nsparsity:\n  - mode: dense\n"
                    "  - mode: unstructured\n    density: [0.3]\n"
                    "    layout: [csr, bitmap]\n")
    points = load_space(path).grid()
    assert [(p.arch.sparsity, p.arch.layout) for p in points] == [
        ("dense", "csr"), ("unstructured", "csr"), ("unstructured", "bitmap")]
    path.write_text("arch:\n  rows: [8]\nsparsity:\n  - mode: unstructured\n"
                    "    layout: [coo]\n")
    with pytest.raises(sim.SpaceError, match=r"space.yaml:5: .*layout"):
        load_space(path)


def test_cli_flag(tmp_path, capsys):
    from sparse_accel_sim.cli import main

    out = tmp_path / "r.json"
    assert main(["run", "--gemm", "8,64,16", "--sparsity", "unstructured", "--density", "0.5",
                 "--layout", "bitmap", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["arch"]["layout"] == "bitmap"
    assert main(["run", "--gemm", "8,64,16", "--layout", "coo"]) == 2
    assert "layout" in capsys.readouterr().err


def test_scalesim_config_section(tmp_path):
    cfg = tmp_path / "x.cfg"
    cfg.write_text("[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\n"
                   "IfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: 64\nDataflow: os\n"
                   "\n[sparse_ops]\nSparsity = unstructured\nLayout = Bitmap\n")
    a = sim.load_scalesim_config(cfg)
    assert (a.sparsity, a.layout) == ("unstructured", "bitmap")
    cfg.write_text(cfg.read_text().replace("Bitmap", "coo"))
    with pytest.raises(sim.ConfigError, match="layout"):
        sim.load_scalesim_config(cfg)


# The former name weight_format: accepted wherever a user gives it, with a DeprecationWarning.

def test_former_name_in_python_warns_and_means_layout():
    with pytest.warns(DeprecationWarning, match="weight_format"):
        arch = sim.Arch(rows=4, weight_format=" Bitmap ")
    assert arch == sim.Arch(rows=4, layout="bitmap")
    with pytest.warns(DeprecationWarning, match="weight_format"):
        assert arch.with_(weight_format="csr").layout == "csr"
    with pytest.warns(DeprecationWarning, match="Arch.layout"):
        assert arch.weight_format == "bitmap"
    with pytest.warns(DeprecationWarning, match="weight_format"):
        assert sim.Arch.from_dict({"rows": 4, "weight_format": "bitmap"}) == arch
    assert sim.WEIGHT_FORMATS == sim.LAYOUTS


def test_former_name_errors_name_what_was_given():
    with pytest.raises(ValueError, match=r"Arch.weight_format \(now Arch.layout\)"):
        sim.Arch(weight_format="coo")
    with pytest.raises(TypeError, match="Arch.weight_format"):
        sim.Arch(weight_format=1)
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="not both"):
        sim.Arch(layout="csr", weight_format="bitmap")
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="not both"):
        sim.Arch().with_(layout="csr", weight_format="bitmap")


def test_former_name_in_grids_space_and_config_files(tmp_path):
    grid = {"sparsity": ["unstructured"], "weight_format": ["csr", "bitmap"]}
    with pytest.warns(DeprecationWarning, match="sweep grid"):
        points = sim.design_points(grid, density=0.5)
    assert [p.arch.layout for p in points] == ["csr", "bitmap"]
    path = tmp_path / "space.yaml"
    path.write_text("base:\n  weight_format: bitmap\narch:\n  rows: [8]\nsparsity:\n"
                    "  - mode: unstructured\n    weight_format: [csr]\n")
    with pytest.warns(DeprecationWarning) as caught:
        space = load_space(path)
    assert sorted(str(w.message).split(": field ")[1] for w in caught) == [
        "'base.weight_format': Arch field 'weight_format' is deprecated, use 'layout'",
        "'sparsity[0].weight_format': Arch field 'weight_format' is deprecated, use 'layout'"]
    assert ":2: " in str(caught[0].message) and ":7: " in str(caught[1].message)
    assert space.base.layout == "bitmap" and space.grid()[0].arch.layout == "csr"
    path.write_text("arch:\n  rows: [8]\nsparsity:\n  - mode: unstructured\n"
                    "    layout: [csr]\n    weight_format: [bitmap]\n")
    with pytest.warns(DeprecationWarning), \
            pytest.raises(sim.SpaceError, match=r"space.yaml:6: .*not both"):
        load_space(path)
    cfg = tmp_path / "x.cfg"
    cfg.write_text("[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\n"
                   "IfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: 64\nDataflow: os\n"
                   "\n[sparse_ops]\nWeightFormat = Bitmap\n")
    with pytest.warns(DeprecationWarning, match=r"x.cfg:10: .*WeightFormat"):
        assert sim.load_scalesim_config(cfg).layout == "bitmap"
    with pytest.warns(DeprecationWarning):
        assert sim.load_scalesim_config(cfg, weight_format="csr").layout == "csr"
    cfg.write_text(cfg.read_text() + "Layout = csr\n")
    with pytest.raises(sim.ConfigError, match="not both"):
        sim.load_scalesim_config(cfg)


def test_former_cli_flag(tmp_path, capsys):
    from sparse_accel_sim.cli import main

    out = tmp_path / "r.json"
    with pytest.warns(DeprecationWarning, match="--weight-format"):
        assert main(["run", "--gemm", "8,64,16", "--sparsity", "unstructured",
                     "--weight-format", "bitmap", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["arch"]["layout"] == "bitmap"
    assert "--weight-format is deprecated, use --layout" in capsys.readouterr().err
    assert main(["run", "--gemm", "8,64,16", "--layout", "csr", "--weight-format", "csr"]) == 2
    assert "not both" in capsys.readouterr().err


def test_former_module_and_results_column(tmp_path):
    sys.modules.pop("sparse_accel_sim.weight_format", None)
    with pytest.warns(DeprecationWarning, match="sparse_accel_sim.layout"):
        old = importlib.import_module("sparse_accel_sim.weight_format")
    assert old.WEIGHT_FORMATS == sim.LAYOUTS and old.DEFAULT_WEIGHT_FORMAT == "csr"
    assert old.check_weight_format(" CSR ") == "csr"
    # a results file written when the column was still called weight_format reads back as
    # layout, and the sweep resumes from it (same point ids)
    layers = [sim.Layer("a", 8, 64, 16)]
    grid = {"sparsity": ["unstructured"], "layout": ["csr", "bitmap"], "density": [0.5]}
    rows = sim.sweep(grid, layers, processes=1, progress=False)
    former = [{("weight_format" if k == "layout" else k): v for k, v in r.items()}
              for r in rows]
    ResultsStore(tmp_path).write_chunk(former)
    assert ResultsStore(tmp_path).rows() == rows
    assert sim.sweep(grid, layers, processes=1, progress=False, out=tmp_path) == rows
    assert len(ResultsStore(tmp_path).files()) == 1  # nothing was simulated again
