"""Claim 6: load imbalance. Nonzeros spread unevenly over rows (a power law) leave PEs idle
in an accelerator that gives each PE lane a row (SCNN); balancing the lanes recovers it
(SparTen). The same two patterns, equal nnz, run through the CPU CSR kernel.

Patterns come from ``simulator.synthetic_weight`` with ``lanes="cols"``: its K x N weight's
columns are the rows of the kernels' sparse matrix (out features), so both sides see the same
skew over output rows.
"""

from __future__ import annotations

from . import verdict as rules
from .config import Sizes
from .lab import Lab
from .result import ClaimResult
from .workloads import Job, Spec


def specs(sizes: Sizes) -> tuple[Spec, Spec]:
    """The uniform and the power-law CSR pattern at the same density."""
    d = sizes.imbalance_density
    return (Spec.csr(d, "uniform"), Spec.csr(d, "powerlaw", alpha=sizes.imbalance_alpha))


def jobs(sizes: Sizes) -> list[Job]:
    """Both patterns at batch 1 and the training batch, and simulated with balancing."""
    out = []
    for spec in specs(sizes):
        out += [Job(spec, 1), Job(spec, sizes.train_batch),
                Job(spec, sizes.train_batch, measure=False, balance=True)]
    return out


def analyse(lab: Lab) -> ClaimResult:
    """Simulated utilisation (skew, balancing) and the kernel's time on both patterns."""
    sizes = lab.sizes
    uni, pow_ = specs(sizes)
    b = sizes.train_batch
    cu, cp = lab.cell(Job(uni, b)), lab.cell(Job(pow_, b))
    bu = lab.cell(Job(uni, b, measure=False, balance=True))
    bp = lab.cell(Job(pow_, b, measure=False, balance=True))
    u1, p1 = lab.cell(Job(uni, 1)), lab.cell(Job(pow_, 1))
    v = rules.imbalance(cu.sim_utilization, cp.sim_utilization, bp.sim_utilization)
    row_stats = {}
    for name, job in (("uniform", Job(uni, b)), ("powerlaw", Job(pow_, b))):
        w = lab.sims[job].sparse
        row_stats[name] = w.performed_macs / max(w.useful_macs, 1)
    slow_b = cp.sparse_s / cu.sparse_s
    slow_1 = p1.sparse_s / u1.sparse_s
    effect = ("the skew costs the kernel time" if max(slow_b, slow_1) >= 1.1 else
              "no penalty within 10 %: the kernel's work split absorbs the skew")
    measured = (f"CSR kernel, power-law (alpha {sizes.imbalance_alpha:g}) vs uniform rows at "
                f"equal nnz (d={sizes.imbalance_density:g}): time x{slow_b:.2f} at B={b}, "
                f"x{slow_1:.2f} at B=1 ({effect}; speedup vs dense {cu.speedup:.2f}x uniform, "
                f"{cp.speedup:.2f}x power-law at B={b})")
    simulated = (f"utilisation at B={b}: uniform {cu.sim_utilization:.2f}, power-law "
                 f"{cp.sim_utilization:.2f}, power-law balanced {bp.sim_utilization:.2f} "
                 f"(uniform balanced {bu.sim_utilization:.2f}); sparse cycles power-law/"
                 f"uniform x{cp.sim_sparse_cycles / cu.sim_sparse_cycles:.2f}")
    return ClaimResult(
        number=6,
        claim="Load imbalance: skewed (power-law) nonzeros per row lower utilisation of a "
              "sparse accelerator; balancing the work recovers it",
        source="Parashar et al. 2017 (SCNN); Gondimalla et al. 2019 (SparTen)",
        measured=measured, simulated=simulated, verdict=v,
        figures={"batch": b, "density": sizes.imbalance_density, "alpha": sizes.imbalance_alpha,
                 "sim_utilization": {"uniform": cu.sim_utilization,
                                     "powerlaw": cp.sim_utilization,
                                     "uniform_balanced": bu.sim_utilization,
                                     "powerlaw_balanced": bp.sim_utilization},
                 "kernel_seconds": {"uniform": cu.sparse_s, "powerlaw": cp.sparse_s,
                                    "uniform_b1": u1.sparse_s, "powerlaw_b1": p1.sparse_s},
                 "kernel_slowdown": {"batch": slow_b, "batch1": slow_1},
                 "sim_performed_per_useful_mac": row_stats},
        plots=["claim6_imbalance.png"],
    )
