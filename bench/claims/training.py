"""Claim 8: sparse training needs all three products to be fast.

A training step of a sparse layer runs the forward ``S @ X``, the input gradient
``S^T @ dY`` and the weight gradient, the sampled product ``dY X^T`` at S's nonzeros (SDDMM).
Each is timed against its dense equivalent (see ``lab.py``: ``W @ X``, ``W^T @ dY`` and
``(dY @ X^T) * mask``) at each density, and simulated: the GEMMs on the array of the format,
SDDMM with ``simulator.simulate_sddmm`` (an output-stationary array skips output tiles with no
sampled output) against the dense array computing every output, and ``S^T @ dY`` of an N:M
weight as unstructured (its groups do not run along that reduction).
"""

from __future__ import annotations

from . import verdict as rules
from .config import Sizes
from .lab import Lab
from .result import ClaimResult
from .workloads import PRODUCTS, Job, Spec


def specs(sizes: Sizes) -> list[Spec]:
    """CSR, bitmap and BSR at the training densities, and 2:4."""
    out = [Spec.csr(d) for d in sizes.train_densities]
    out += [Spec.bitmap(d) for d in sizes.train_densities]
    out += [Spec.bsr(d, b) for b in sizes.train_blocks for d in sizes.train_densities]
    return out + [Spec.nm(2, 4)]


def jobs(sizes: Sizes) -> list[Job]:
    """The three products of every training weight at the training batch."""
    return [Job(s, sizes.train_batch, p) for s in specs(sizes) for p in PRODUCTS]


def analyse(lab: Lab) -> ClaimResult:
    """Per-product and per-step speedups; CSR at the lowest density decides the verdict."""
    sizes = lab.sizes
    b = sizes.train_batch
    rows = []
    for spec in specs(sizes):
        cells = {p: lab.cell(Job(spec, b, p)) for p in PRODUCTS}
        dense_t = sum(c.dense_s for c in cells.values())
        sparse_t = sum(c.sparse_s for c in cells.values())
        sim_d = sum(c.sim_dense_cycles for c in cells.values())
        sim_s = sum(c.sim_sparse_cycles for c in cells.values())
        rows.append({"fmt": spec.fmt, "density": spec.density,
                     "measured": {p: c.speedup for p, c in cells.items()},
                     "simulated": {p: c.sim_speedup for p, c in cells.items()},
                     "step_measured": dense_t / sparse_t, "step_simulated": sim_d / sim_s})
    low = min(sizes.train_densities)
    csr_low = next(r for r in rows if r["fmt"] == "csr" and r["density"] == low)
    v = rules.all_products_faster(csr_low["measured"], low)

    def fmt_row(r: dict, key: str) -> str:
        parts = "/".join(f"{r[key][p]:.2f}" for p in PRODUCTS)
        return f"{r['fmt']} d={r['density']:g}: {parts} (step {r['step_' + key]:.2f}x)"

    measured = f"B={b}, speedup spmm/spmm_t/sddmm: " + "; ".join(
        fmt_row(r, "measured") for r in rows)
    simulated = "speedup spmm/spmm_t/sddmm: " + "; ".join(fmt_row(r, "simulated") for r in rows)
    return ClaimResult(
        number=8,
        claim="Sparse training needs all three products (forward S @ X, S^T @ dY, sampled "
              "dY X^T): a step gains only if each beats dense",
        source="Sun et al. 2020; Hoefler et al. 2021 (survey, sec. 7)",
        measured=measured, simulated=simulated, verdict=v,
        figures={"batch": b, "rows": rows,
                 "dense_meaning": {"spmm": "torch.mm(W, X)", "spmm_t": "torch.mm(W.t(), dY)",
                                   "sddmm": "torch.mm(dY, X.t()) * mask"}},
        plots=["claim8_training.png"],
    )
