"""The claims report: its CLI end to end (``--tiny``), break-even interpolation, the storage
formulas against real ``nbytes``, and verdict rules that flip when their data flips."""

from __future__ import annotations

import csv
import json
import math
import re

import pytest
import torch

import sparse_ops as so
from bench.claims import storage
from bench.claims import verdict as rules
from bench.claims.__main__ import main
from bench.claims.breakeven import break_even
from bench.claims.result import VERDICTS
from bench.claims.stats import ranks, spearman

# --- the CLI, end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    assert main(["--tiny", "--out", str(out), "--no-progress"]) == 0
    return out


def test_cli_writes_every_file(tiny_run):
    for name in ("claims.md", "claims.json", "claims_cells.csv"):
        assert (tiny_run / name).stat().st_size > 0, name
    pngs = sorted(p.name for p in (tiny_run / "claims_plots").glob("*.png"))
    assert len(pngs) == 9, pngs  # one per claim and the agreement scatter
    with open(tiny_run / "claims_cells.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {"speedup", "sim_speedup", "fmt", "density"} <= set(rows[0])


def test_table_has_eight_claims_with_computed_verdicts(tiny_run):
    md = (tiny_run / "claims.md").read_text()
    table = md.split("| # | claim |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, 9))
    for r in rows:
        verdict = re.search(r"\*\*(.+?)\*\*", r.split("|")[6]).group(1)
        assert verdict in VERDICTS and verdict != "not tested", r
    assert "Machine: " in md and "cpu" in md
    data = json.loads((tiny_run / "claims.json").read_text())
    assert [c["number"] for c in data["claims"]] == list(range(1, 9))
    assert all(c["verdict"] in VERDICTS for c in data["claims"])
    assert data["machine"]["peak_flops"] > 0 and data["agreement"]


def test_bitmap_rows_in_the_claims(tiny_run):
    from bench.claims.agreement import WHY_BELOW
    from bench.claims.config import TINY
    data = json.loads((tiny_run / "claims.json").read_text())
    claims = {c["number"]: c for c in data["claims"]}
    # claim 4: bitmap at every density of the sweep, at batch 1, next to CSR
    cells4 = claims[4]["figures"]["cells"]
    for fmt in ("csr", "bitmap"):
        dens = [c["density"] for c in cells4 if c["fmt"] == fmt]
        assert dens == pytest.approx(list(TINY.densities), abs=0.01), fmt
        assert all(c["measured"] > 0 and c["simulated"] > 0 for c in cells4 if c["fmt"] == fmt)
    assert "bitmap" in claims[4]["figures"]["median_efficiency"]
    # claim 5: the real layout's nbytes, exactly the formula
    series = claims[5]["figures"]["series"]["bitmap"]
    assert series["real"] == series["formula"]
    assert claims[5]["figures"]["breakeven_measured"]["bitmap"] == pytest.approx(
        claims[5]["figures"]["breakeven_formula"]["bitmap"], abs=1e-3)
    # claims 7 and 8: bitmap beside CSR at the same densities
    energy = {r["fmt"]: r for r in claims[7]["figures"]["formats"]}
    assert energy["bitmap"]["density"] == pytest.approx(energy["csr"]["density"], abs=0.01)
    assert 0 < energy["bitmap"]["energy_ratio"] < 1
    train = [(r["fmt"], round(r["density"], 3)) for r in claims[8]["figures"]["rows"]]
    for d in TINY.train_densities:
        assert ("csr", d) in train and ("bitmap", d) in train
    bm = [r for r in claims[8]["figures"]["rows"] if r["fmt"] == "bitmap"]
    assert all(v > 0 for r in bm for v in r["measured"].values())
    # agreement: a bitmap row; the cells file carries the bitmap cells
    agree = {a["fmt"]: a for a in data["agreement"]}
    assert agree["bitmap"]["cells"] >= len(TINY.densities) and "bitmap" in WHY_BELOW
    with open(tiny_run / "claims_cells.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["layout"] == "bitmap"]
    assert {r["product"] for r in rows} == {"spmm", "spmm_t", "sddmm"}


def test_model_row_simulates_the_sparsified_llama(tiny_run):
    """The report's model row: the sparsified Llama of bench.models traced from the model and
    simulated with its real patterns, next to the measured decode speed (or "not measured")."""
    from bench.claims.model_row import VARIANTS
    md = (tiny_run / "claims.md").read_text()
    section = md.split("## A sparsified model: Llama decode, simulated next to measured", 1)[1]
    table = section.split("\n\n")[2]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows[1:]] == [v[0] for v in VARIANTS]
    data = json.loads((tiny_run / "claims.json").read_text())["model_row"]
    by = {r["variant"]: r for r in data["rows"]}
    for variant, layout, _ in VARIANTS:
        r = by[variant]
        assert r["layout"] == layout and r["density"] == pytest.approx(0.5, abs=1e-6)
        assert r["simulated_tok_s"] > r["simulated_dense_tok_s"] > 0  # half the bytes
        if r["measured_tok_s"] is None:
            assert "not measured" in section
    assert "workload_from_model" in section


def test_bitmap_spec_builds_the_csr_nonzeros_and_simulates_as_bitmap():
    import sparse_accel_sim as sim
    from bench.claims.preset import sparse_arch
    from bench.claims.workloads import Spec, base_weight, build
    base = base_weight(64, 96, seed=3)
    spec = Spec.bitmap(0.3)
    assert (spec.layout, spec.fmt) == ("bitmap", "bitmap")
    assert Spec.bitmap(0.3, "powerlaw").fmt == "bitmap powerlaw"
    w_bm = build(spec, base, "cpu", torch.float32, seed=3)
    w_csr = build(Spec.csr(0.3), base, "cpu", torch.float32, seed=3)
    assert isinstance(w_bm.sparse, so.BitmapMatrix)
    assert torch.equal(w_bm.pruned, w_csr.pruned) and w_bm.sparse.nnz == w_csr.sparse.nnz
    x = torch.randn(96, 5)
    assert torch.allclose(so.matmul(w_bm.sparse, x), w_bm.pruned @ x, rtol=1e-4, atol=1e-4)
    w_u = build(Spec.bitmap(0.2, "uniform"), base, "cpu", torch.float32, seed=3)
    assert isinstance(w_u.sparse, so.BitmapMatrix) and 0.1 < w_u.sparse.density < 0.3
    with pytest.raises(ValueError, match="unstructured"):
        build(Spec("bsr", 0.3, block=4, pattern="uniform"), base, "cpu", torch.float32, 3)
    arch = sim.Arch(rows=4, cols=16)
    a = sparse_arch(arch, "bitmap", balance=True)
    assert (a.sparsity, a.layout, a.balance) == ("unstructured", "bitmap", True)
    assert sparse_arch(arch, "csr").layout == "csr"
    assert sparse_arch(arch, "bsr", 4).block == (4, 4)
    assert sparse_arch(arch, "nm", nm=(1, 4)).nm == (1, 4)
    assert sparse_arch(arch, "dense") is arch
    with pytest.raises(ValueError, match="layout"):
        sparse_arch(arch, "coo")


# --- break-even interpolation -------------------------------------------------------------


def test_break_even_is_exact_on_a_power_law():
    dens = [0.01, 0.05, 0.2, 0.5]
    be = break_even(dens, [0.1 / d for d in dens])  # crosses 1 at d = 0.1
    assert be.status == "crosses"
    assert be.density == pytest.approx(0.1, rel=1e-12)


def test_break_even_statuses():
    dens = [0.1, 0.3, 0.7]
    assert break_even(dens, [3, 2, 1.5]).status == "faster everywhere"
    assert break_even(dens, [0.9, 0.5, 0.2]).status == "slower everywhere"
    assert break_even(dens, [0.9, 0.5, 0.2]).rank_value() < 0.1
    assert break_even(dens, [3, 2, 1.5]).rank_value() > 0.7
    # censored curves over slightly different real densities tie under common bounds
    a, b = break_even([0.1, 0.7], [3, 2]), break_even([0.1001, 0.7001], [3, 2])
    assert a.rank_value(0.1, 0.7) == b.rank_value(0.1, 0.7)
    inv = break_even(dens, [0.5, 0.8, 2.0])
    assert inv.status == "inverted" and 0.3 < inv.density < 0.7
    # noisy: down, up, down -> the last downward crossing counts
    noisy = break_even([0.01, 0.02, 0.05, 0.1, 0.2], [4, 0.9, 1.1, 0.8, 0.5])
    assert noisy.status == "crosses" and 0.05 < noisy.density < 0.1
    # unsorted input gives the same answer
    assert break_even([0.5, 0.01, 0.2, 0.05], [0.2, 10, 0.5, 2]).density == \
        pytest.approx(0.1)
    with pytest.raises(ValueError):
        break_even([0.1, 0.2], [1.0])


# --- storage formulas against real tensors --------------------------------------------------


def _pruned(shape, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    return w * (torch.rand(shape, generator=g) < density)


@pytest.mark.parametrize("density", [0.03, 0.4, 0.9])
def test_csr_formula_matches_nbytes_int16_and_int32(density):
    for shape in ((64, 96), (4, 40000)):  # int16 columns, then int32 (K > 32767)
        p = _pruned(shape, density)
        s = so.to_sparse(p, "csr")
        assert s.col_indices.element_size() == storage.index_bytes(shape[1])
        assert storage.csr_bytes(*shape, s.nnz) == s.nbytes


@pytest.mark.parametrize("block", [2, 4, 16])
def test_bsr_formula_matches_nbytes(block):
    p = so.prune(torch.randn(64, 128), "bsr", 0.3, blocksize=(block, block))
    s = so.to_sparse(p, "bsr", blocksize=(block, block))
    assert storage.bsr_bytes(64, 128, s.values.shape[0], (block, block)) == s.nbytes


@pytest.mark.parametrize("n,m,cols", [(2, 4, 64), (1, 4, 63), (1, 8, 100), (3, 16, 50),
                                      (1, 2, 33)])
def test_nm_formula_matches_nbytes(n, m, cols):
    s = so.to_sparse(so.prune(torch.randn(8, cols), "nm", n=n, m=m), "nm", n=n, m=m)
    assert storage.nm_bytes(8, cols, n, m) == s.nbytes


@pytest.mark.parametrize("shape", [(37, 130), (64, 64), (5, 1), (3, 65), (1, 200)])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.4, 0.9, 1.0])
def test_bitmap_formula_matches_nbytes(shape, density):
    p = _pruned(shape, density, seed=shape[0] * 1000 + shape[1])
    s = so.to_sparse(p, "bitmap")
    assert isinstance(s, so.BitmapMatrix)
    assert s.bitmap.shape[1] == storage.bitmap_row_bytes(shape[1])
    assert storage.bitmap_bytes(*shape, s.nnz) == s.nbytes
    # the break-even density is where the formula meets dense bytes (not rounded to nnz)
    rows, cols = shape
    d = storage.breakeven_density("bitmap", rows, cols)
    assert storage.bitmap_bytes(rows, cols, d * rows * cols) == \
        pytest.approx(storage.dense_bytes(rows, cols))


def test_breakeven_densities_give_dense_bytes():
    rows, cols = 256, 512
    dense = storage.dense_bytes(rows, cols)
    d = storage.breakeven_density("csr", rows, cols)
    assert storage.csr_bytes(rows, cols, d * rows * cols) == pytest.approx(dense)
    assert d == pytest.approx(4 / 6, abs=0.01)  # fp32 values, int16 columns
    assert storage.breakeven_density("csr", rows, 40000) == pytest.approx(0.5, abs=0.01)
    d = storage.breakeven_density("bsr", rows, cols, block=(4, 4))
    assert storage.bsr_bytes(rows, cols, d * rows * cols / 16, (4, 4)) == pytest.approx(dense)
    d = storage.breakeven_density("bitmap", rows, cols)
    assert storage.bitmap_bytes(rows, cols, d * rows * cols) == pytest.approx(dense)
    assert d == pytest.approx(1 - 1 / 32, abs=0.01)  # 1 bit a 32-bit value
    assert storage.nm_breakeven_ratio(4) == pytest.approx(32 / 34)


# --- statistics and verdict rules ---------------------------------------------------------


def test_ranks_and_spearman():
    assert ranks([10, 20, 20, 5]) == [2, 3.5, 3.5, 1]
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_block_trend_verdict_flips_with_the_data():
    blocks = [1, 2, 4, 8, 16, 32]
    rising = [0.02, 0.04, 0.08, 0.15, 0.3, 0.5]
    assert rules.rises_with(blocks, rising, "x").verdict == "holds"
    assert rules.rises_with(blocks, rising[::-1], "x").verdict == "does not hold"
    assert "rho = 1.00" in rules.rises_with(blocks, rising, "x").rule
    assert rules.rises_with(blocks, [0.5] * 6, "x").verdict == "does not hold"


def test_breakeven_verdict_flips_with_the_data():
    st = {1: "crosses", 8: "crosses"}
    assert rules.unstructured_breakeven({1: 0.2, 8: 0.1}, st).verdict == "holds"
    assert rules.unstructured_breakeven({1: 0.6, 8: 0.1}, st).verdict == "partly holds"
    assert rules.unstructured_breakeven({1: 0.6, 8: 0.5}, st).verdict == "does not hold"
    assert rules.unstructured_breakeven(
        {1: None, 8: None}, {1: "faster everywhere", 8: "slower everywhere"}
    ).verdict == "partly holds"


def test_other_verdicts_flip_with_the_data():
    assert rules.nm_speedup(1.95, 1.6, [1.0, 1.3]).verdict == "holds"
    assert rules.nm_speedup(1.2, 1.6, [0.5, 0.9]).verdict == "does not hold"
    pred = [1.5, 2.0, 4.0, 8.0]
    assert rules.bytes_bound([1.4, 1.8, 3.5, 6.0], pred).verdict == "holds"
    assert rules.bytes_bound([6.0, 3.5, 1.8, 1.4], pred).verdict == "does not hold"
    assert rules.bytes_bound([0.1, 0.2, 0.3, 0.4], pred).verdict == "partly holds"
    assert rules.format_overheads(0.0, {"a": 0.5}, {"a": 0.5}).verdict == "holds"
    assert rules.format_overheads(0.2, {"a": 0.9}, {"a": 0.5}).verdict == "does not hold"
    assert rules.imbalance(0.9, 0.5, 0.85).verdict == "holds"
    assert rules.imbalance(0.9, 0.5, 0.55).verdict == "partly holds"
    assert rules.imbalance(0.9, 0.89, 0.9).verdict == "does not hold"
    assert rules.energy_tracks_bytes(0.9, 0.14, 0.135, 0.1).verdict == "holds"
    assert rules.energy_tracks_bytes(0.2, 0.11, 0.135, 0.1).verdict == "does not hold"
    fast = {"spmm": 2.0, "spmm_t": 1.5, "sddmm": 1.2}
    assert rules.all_products_faster(fast, 0.1).verdict == "holds"
    assert rules.all_products_faster({**fast, "sddmm": 0.7}, 0.1).verdict == "partly holds"
    assert rules.all_products_faster({k: 0.5 for k in fast}, 0.1).verdict == "does not hold"
    assert rules.agreement(0.9, 1.1).verdict == "holds"
    assert rules.agreement(0.1, 10.0).verdict == "does not hold"


# --- the simulator preset -----------------------------------------------------------------


def _machine(peak: float, bw: float, simd: str = "avx512", device: str = "cpu"):
    from bench.claims.machine import Machine
    return Machine(device=device, name="test", cores=2, threads=2, torch_version="x",
                   dtype="float32", peak_flops=peak, bandwidth_read=bw,
                   bandwidth_working_set=2 * bw, bandwidth_dram=bw / 2,
                   working_set_bytes=2**24, l2_bytes=2**22, llc_bytes=2**28, simd=simd,
                   load_average=0.0)


@pytest.mark.parametrize("peak,bw,simd,shape", [(356e9, 60e9, "avx512", (4, 16)),
                                                (150e9, 30e9, "avx2", (4, 8)),
                                                (20e9, 5e9, "avx512", (1, 4))])
def test_preset_reproduces_measured_peak_and_bandwidth(peak, bw, simd, shape):
    import sparse_accel_sim as sim
    from bench.claims.preset import make_preset
    p = make_preset(_machine(peak, bw, simd))
    a = p.arch
    assert (a.rows, a.cols) == shape
    assert 2 * a.pes * p.clock_hz == pytest.approx(peak)
    assert a.dram_words_per_cycle * a.word_bytes * p.clock_hz == pytest.approx(bw)
    if simd != "avx512" or peak < 1e11:
        return
    # this machine's figures: a big dense GEMM runs near peak, a batch-1 GEMV near the
    # bandwidth (narrower arrays re-read more of X in the simulator's fold order)
    r = sim.simulate_gemm(a, 512, 2048, 2048)
    assert 2 * 512 * 2048 * 2048 / r.seconds == pytest.approx(peak, rel=0.15)
    r = sim.simulate_gemm(a, 1, 2048, 2048)
    assert 4 * 2048 * 2048 / r.seconds == pytest.approx(bw, rel=0.15)
