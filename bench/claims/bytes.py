"""Claims 4 and 5: bytes.

Claim 4: a batch-1 product (matrix-vector) is limited by the bytes it moves, so its speedup
over dense should follow the byte ratio ``(dense weight + x + y) / (sparse weight + x + y)``.
Claim 5: the formats' index and metadata overheads, from ``nbytes`` of real tensors and from
the formulas of ``storage.py``, and the break-even densities against dense storage.
"""

from __future__ import annotations

import torch

import sparse_ops as so

from . import storage
from . import verdict as rules
from .config import Sizes
from .lab import Lab
from .result import Cell, ClaimResult
from .stats import median, spearman
from .workloads import Job, Spec


def specs_claim4(sizes: Sizes) -> list[Spec]:
    """CSR, bitmap and BSR at every density of the sweep, and the N:M patterns."""
    specs = [Spec.csr(d) for d in sizes.densities]
    specs += [Spec.bitmap(d) for d in sizes.densities]
    specs += [Spec.bsr(d, b) for b in sizes.bytes_blocks for d in sizes.densities]
    specs += [Spec.nm(n, m) for n, m in sizes.nm_patterns]
    return specs


def jobs_claim4(sizes: Sizes) -> list[Job]:
    """Every claim-4 weight at batch 1 (matrix-vector)."""
    return [Job(s, 1) for s in specs_claim4(sizes)]


def byte_ratio(cell: Cell, elem: int) -> float:
    """Dense bytes over sparse bytes moved by a product: weight plus ``x`` and ``y`` once."""
    io = (cell.rows + cell.cols) * cell.batch * elem
    return (cell.dense_bytes + io) / (cell.sparse_bytes + io)


def analyse_claim4(lab: Lab) -> ClaimResult:
    """Measured and simulated batch-1 speedups against the byte ratio of each format."""
    elem = lab.dense_w.element_size()
    cells = [lab.cell(Job(s, 1)) for s in specs_claim4(lab.sizes)]
    pred = [byte_ratio(c, elem) for c in cells]
    meas = [c.speedup for c in cells]
    simu = [c.sim_speedup for c in cells]
    v = rules.bytes_bound(meas, pred)
    per_fmt: dict[str, list[float]] = {}
    for c, p in zip(cells, pred, strict=True):
        per_fmt.setdefault(_family(c), []).append(c.speedup / p)
    sim_rho = spearman(simu, pred)
    sim_eff = median([s / p for s, p in zip(simu, pred, strict=True)])
    fastest = min(cells, key=lambda c: c.sparse_s)
    sparsest = max(cells, key=lambda c: byte_ratio(c, elem))
    capped = sparsest.speedup < 0.5 * byte_ratio(sparsest, elem)
    measured = "median measured / byte-ratio speedup: " + ", ".join(
        f"{f} {median(e):.2f}" for f, e in per_fmt.items()) + f"; {v.rule.split(';')[0]}; " \
        f"at the largest byte ratio (x{byte_ratio(sparsest, elem):.0f}, {sparsest.fmt} " \
        f"d={sparsest.density:.2g}) x{sparsest.speedup:.1f}; fastest call " \
        f"{fastest.sparse_s * 1e6:.0f} us" + (
            " (a per-call cost that bytes do not explain caps the largest gains)"
            if capped else "")
    simulated = f"rho(simulated, byte ratio) = {sim_rho:.2f}, median simulated / byte ratio " \
                f"= {sim_eff:.2f}"
    return ClaimResult(
        number=4,
        claim="Memory-bound sparse matmul (batch 1) is limited by bytes: speedup follows the "
              "byte ratio of the format (values + indices/metadata vs dense)",
        source="Hoefler et al. 2021 (survey, sec. 7); Williams et al. 2009 (roofline)",
        measured=measured, simulated=simulated, verdict=v,
        figures={"cells": [{"fmt": c.fmt, "density": c.density, "byte_ratio": p,
                            "measured": c.speedup, "simulated": c.sim_speedup}
                           for c, p in zip(cells, pred, strict=True)],
                 "median_efficiency": {f: median(e) for f, e in per_fmt.items()},
                 "fastest_call_s": fastest.sparse_s,
                 "sim_rho": sim_rho, "sim_median_efficiency": sim_eff},
        plots=["claim4_bytes.png"],
    )


def _family(c: Cell) -> str:
    return "N:M" if c.layout == "nm" else c.fmt


def analyse_claim5(lab: Lab) -> ClaimResult:
    """Real ``nbytes`` of each format over a density sweep, against the formulas."""
    sizes = lab.sizes
    rows, cols = sizes.rows, sizes.cols
    g = torch.Generator().manual_seed(lab.seed + 5)
    base = torch.randn(rows, cols, generator=g)
    wide_rows, wide_cols = max(1, rows * cols // 32768), 32768   # int32 column indices
    wide = torch.randn(wide_rows, wide_cols, generator=g)
    series: dict[str, dict[str, list[float]]] = {}
    errors: list[float] = []

    def add(name: str, density: float, real: int, formula: int, dense: int) -> None:
        s = series.setdefault(name, {"density": [], "real": [], "formula": []})
        s["density"].append(density)
        s["real"].append(real / dense)
        s["formula"].append(formula / dense)
        errors.append(abs(formula - real) / real)

    for d in sizes.storage_densities:
        keep = torch.rand(rows, cols, generator=g) < d
        p = base * keep
        nnz = int(keep.sum())
        dense = storage.dense_bytes(rows, cols)
        s16 = so.to_sparse(p, "csr")
        add(f"CSR int{8 * storage.index_bytes(cols)}", nnz / (rows * cols), s16.nbytes,
            storage.csr_bytes(rows, cols, nnz), dense)
        keep_w = torch.rand(wide_rows, wide_cols, generator=g) < d
        s32 = so.to_sparse(wide * keep_w, "csr")
        nnz_w = int(keep_w.sum())
        add("CSR int32", nnz_w / (wide_rows * wide_cols), s32.nbytes,
            storage.csr_bytes(wide_rows, wide_cols, nnz_w), storage.dense_bytes(wide_rows,
                                                                                 wide_cols))
        add("bitmap", nnz / (rows * cols), so.to_sparse(p, "bitmap").nbytes,
            storage.bitmap_bytes(rows, cols, nnz), dense)
        for b in sizes.bytes_blocks:
            kb = torch.rand(rows // b, cols // b, generator=g) < d
            pb = base * kb.repeat_interleave(b, 0).repeat_interleave(b, 1)
            sb = so.to_sparse(pb, "bsr", blocksize=(b, b))
            nnzb = int(kb.sum())
            add(f"BSR {b}x{b}", nnzb * b * b / (rows * cols), sb.nbytes,
                storage.bsr_bytes(rows, cols, nnzb, (b, b)), dense)
    nm_rows = []
    for n, m in sorted({(1, 2), (2, 4), (1, 4), (2, 8), (1, 8), (4, 16)} |
                       set(sizes.nm_patterns), key=lambda t: -t[0] / t[1]):
        s = so.to_sparse(so.prune(base, "nm", n=n, m=m), "nm", n=n, m=m)
        f = storage.nm_bytes(rows, cols, n, m)
        errors.append(abs(f - s.nbytes) / s.nbytes)
        nm_rows.append({"nm": f"{n}:{m}", "density": n / m,
                        "real": s.nbytes / storage.dense_bytes(rows, cols),
                        "formula": f / storage.dense_bytes(rows, cols),
                        "breakeven_ratio": storage.nm_breakeven_ratio(m)})
    formula_be = {
        f"CSR int{8 * storage.index_bytes(cols)}": storage.breakeven_density("csr", rows, cols),
        "CSR int32": storage.breakeven_density("csr", wide_rows, wide_cols),
        "bitmap": storage.breakeven_density("bitmap", rows, cols),
    }
    for b in sizes.bytes_blocks:
        formula_be[f"BSR {b}x{b}"] = storage.breakeven_density("bsr", rows, cols,
                                                               block=(b, b))
    measured_be = {}
    for name, s in series.items():
        measured_be[name] = _crossing(s["density"], s["real"])
    v = rules.format_overheads(max(errors), {k: x for k, x in measured_be.items()
                                             if x is not None}, formula_be)
    measured = "break-even density from real nbytes: " + ", ".join(
        f"{k} {'none' if x is None else f'{x:.3f}'}" for k, x in measured_be.items()) + \
        "; N:M bytes/dense: " + ", ".join(f"{r['nm']} {r['real']:.3f}" for r in nm_rows)
    simulated = "formulas: " + ", ".join(f"{k} {x:.3f}" for k, x in formula_be.items()) + \
        f"; N:M beats dense below n/m = {storage.nm_breakeven_ratio(4):.3f} (2-bit) / " \
        f"{storage.nm_breakeven_ratio(8):.3f} (4-bit positions) [formulas, no simulator]"
    return ClaimResult(
        number=5,
        claim="Format overheads: index/metadata bytes set a break-even density against dense "
              "storage (fp32: CSR int32 50 %, int16 67 %, bitmap 97 %, BSR r x c "
              "rc/(rc+1)); N:M metadata costs b bits per kept value",
        source="Hoefler et al. 2021 (survey, sec. 7: storage overheads); docs/formats.md",
        measured=measured, simulated=simulated, verdict=v,
        figures={"series": series, "nm": nm_rows, "breakeven_measured": measured_be,
                 "breakeven_formula": formula_be, "max_relative_error": max(errors),
                 "wide_shape": [wide_rows, wide_cols]},
        plots=["claim5_storage.png"],
    )


def _crossing(dens: list[float], ratio: list[float]) -> float | None:
    """Density where ``ratio`` (bytes / dense) first reaches 1, linearly interpolated."""
    pts = sorted(zip(dens, ratio, strict=True))
    for (d0, r0), (d1, r1) in zip(pts, pts[1:], strict=False):
        if r0 < 1 <= r1:
            return d0 + (1 - r0) * (d1 - d0) / (r1 - r0)
    return None
