"""Claims 1 and 2: the break-even density of sparse against dense, by batch and block size.

Claim 1 sweeps CSR over densities for each batch; claim 2 sweeps square BSR blocks (block 1 is
CSR) at one batch. The break-even density is where speedup (dense time / sparse time) crosses
1, interpolated linearly in log(speedup) against log(density).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from . import verdict as rules
from .config import Sizes
from .lab import Lab
from .result import ClaimResult
from .workloads import Job, Spec


@dataclass(frozen=True)
class BreakEven:
    """Where a speedup-vs-density curve crosses 1.

    ``status``: ``crosses`` (sparse wins below ``density``, loses above), ``faster
    everywhere``, ``slower everywhere``, or ``inverted`` (loses at low density and wins at the
    densest point: ``density`` is then the last upward crossing). ``lo``/``hi``: the density
    range swept.
    """

    density: float | None
    status: str
    lo: float
    hi: float

    def text(self) -> str:
        """The break-even as the report prints it (a density, or why there is none)."""
        if self.status == "crosses":
            return f"{self.density:.3g}"
        if self.status == "faster everywhere":
            return f"> {self.hi:.2g} (faster everywhere)"
        if self.status == "slower everywhere":
            return f"< {self.lo:.2g} (slower everywhere)"
        return f"{self.density:.3g} (inverted: wins only at high density)"

    def rank_value(self, lo: float | None = None, hi: float | None = None) -> float:
        """A number for rank statistics: censored curves sit just outside the range swept.

        Pass the same ``lo``/``hi`` for curves that are compared, so that censored curves tie
        (their own ranges differ a little: real densities are not exactly the nominal ones).
        """
        if self.status == "faster everywhere":
            return (self.hi if hi is None else hi) * 1.5
        if self.status == "slower everywhere":
            return (self.lo if lo is None else lo) / 1.5
        return float(self.density)


def break_even(densities: Sequence[float], speedups: Sequence[float]) -> BreakEven:
    """The break-even density of a speedup curve (see ``BreakEven``).

    Points are sorted by density; between neighbours ``(d0, s0)``, ``(d1, s1)`` that straddle
    1 the crossing is ``exp(log d0 + t (log d1 - log d0))``, ``t = log s0 / (log s0 - log s1)``.
    When the curve crosses more than once the last downward crossing counts: beyond it sparse
    loses at every density swept.
    """
    if len(densities) != len(speedups) or not densities:
        raise ValueError("densities, speedups: need equal, non-zero lengths")
    pts = sorted(zip(densities, speedups, strict=True))
    if any(d <= 0 or s <= 0 for d, s in pts):
        raise ValueError("densities, speedups: must be > 0 (log interpolation)")
    lo, hi = pts[0][0], pts[-1][0]
    if all(s >= 1 for _, s in pts):
        return BreakEven(None, "faster everywhere", lo, hi)
    if all(s < 1 for _, s in pts):
        return BreakEven(None, "slower everywhere", lo, hi)

    def cross(i: int) -> float:
        (d0, s0), (d1, s1) = pts[i], pts[i + 1]
        t = math.log(s0) / (math.log(s0) - math.log(s1))
        return math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0)))

    down = [i for i in range(len(pts) - 1) if pts[i][1] >= 1 > pts[i + 1][1]]
    if pts[-1][1] < 1 and down:
        return BreakEven(cross(down[-1]), "crosses", lo, hi)
    up = [i for i in range(len(pts) - 1) if pts[i][1] < 1 <= pts[i + 1][1]]
    return BreakEven(cross(up[-1]), "inverted", lo, hi)


def jobs_claim1(sizes: Sizes) -> list[Job]:
    """CSR at every density of the sweep, for every batch."""
    return [Job(Spec.csr(d), b) for b in sizes.batches for d in sizes.densities]


def jobs_claim2(sizes: Sizes) -> list[Job]:
    """Every block size at every density of the sweep, at the block batch."""
    return [Job(Spec.bsr(d, blk), sizes.block_batch) for blk in sizes.blocks
            for d in sizes.densities]


def _curve(lab: Lab, specs: Sequence[Spec], batch: int) -> dict:
    cells = [lab.cell(Job(s, batch)) for s in specs]
    dens = [c.density for c in cells]
    meas = [c.speedup for c in cells]
    simu = [c.sim_speedup for c in cells]
    return {"density": dens, "measured": meas, "simulated": simu,
            "be_measured": break_even(dens, meas), "be_simulated": break_even(dens, simu)}


def analyse_claim1(lab: Lab) -> ClaimResult:
    """Claim 1: CSR break-even density per batch, measured and simulated."""
    sizes = lab.sizes
    curves = {b: _curve(lab, [Spec.csr(d) for d in sizes.densities], b) for b in sizes.batches}
    be_m = {b: c["be_measured"] for b, c in curves.items()}
    be_s = {b: c["be_simulated"] for b, c in curves.items()}
    v = rules.unstructured_breakeven({b: e.density for b, e in be_m.items()},
                                     {b: e.status for b, e in be_m.items()})
    cells = [lab.cell(Job(Spec.csr(d), b)) for b in sizes.batches for d in sizes.densities]
    best = max(cells, key=lambda c: c.extra["sparse_gflops"])
    frac = best.extra["sparse_gflops"] * 1e9 / lab.machine.peak_flops
    measured = "break-even density " + ", ".join(
        f"B={b}: {e.text()}" for b, e in be_m.items()) + \
        f"; best CSR rate {best.extra['sparse_gflops']:.1f} GFLOP/s = {frac:.1%} of the " \
        f"measured fp32 peak (B={best.batch}, d={best.density:.2g}; Sputnik: ~27 % on a V100)"
    simulated = "break-even density " + ", ".join(f"B={b}: {e.text()}" for b, e in be_s.items())
    return ClaimResult(
        number=1,
        claim="Unstructured sparsity (CSR) beats dense only at high sparsity (wins from about "
              "70-90 % sparsity)",
        source="Hoefler et al. 2021 (survey, sec. 7); Gale et al. 2020 (Sputnik)",
        measured=measured, simulated=simulated, verdict=v,
        figures={"curves": {str(b): _plain(c) for b, c in curves.items()},
                 "best_csr_gflops": best.extra["sparse_gflops"],
                 "best_csr_fraction_of_peak": frac,
                 "best_csr_cell": {"batch": best.batch, "density": best.density}},
        plots=["claim1_breakeven.png"],
    )


def analyse_claim2(lab: Lab) -> ClaimResult:
    """Claim 2: break-even density per block size at one batch, measured and simulated."""
    sizes = lab.sizes
    curves = {blk: _curve(lab, [Spec.bsr(d, blk) for d in sizes.densities], sizes.block_batch)
              for blk in sizes.blocks}
    be_m = {b: c["be_measured"] for b, c in curves.items()}
    be_s = {b: c["be_simulated"] for b, c in curves.items()}
    blocks = list(curves)
    lo, hi = min(sizes.densities), max(sizes.densities)
    v = rules.rises_with(blocks, [be_m[b].rank_value(lo, hi) for b in blocks],
                         "break-even density rises with block size (measured)")
    v_sim = rules.rises_with(blocks, [be_s[b].rank_value(lo, hi) for b in blocks],
                             "simulated")
    measured = f"B={sizes.block_batch}, break-even density by block: " + ", ".join(
        f"{b}: {e.text()}" for b, e in be_m.items())
    simulated = "break-even density by block: " + ", ".join(
        f"{b}: {e.text()}" for b, e in be_s.items()) + f"; {v_sim.rule}"
    return ClaimResult(
        number=2,
        claim="Structure lowers the break-even point: at equal density, the break-even "
              "density rises with block size (1 = CSR, then square BSR blocks)",
        source="Hoefler et al. 2021 (survey, sec. 7); Gray et al. 2017 (block-sparse GPU "
               "kernels)",
        measured=measured, simulated=simulated, verdict=v,
        figures={"batch": sizes.block_batch,
                 "curves": {str(b): _plain(c) for b, c in curves.items()},
                 "simulated_rule": v_sim.rule, "simulated_verdict": v_sim.verdict},
        plots=["claim2_blocks.png"],
    )


def _plain(curve: dict) -> dict:
    """A curve dict with its BreakEven objects as JSON-ready dicts."""
    out = dict(curve)
    for key in ("be_measured", "be_simulated"):
        e: BreakEven = curve[key]
        out[key] = {"density": e.density, "status": e.status, "text": e.text()}
    return out
