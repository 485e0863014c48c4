"""Claim 3: 2:4 sparsity doubles math throughput on hardware built for it (sparse tensor
cores); real end-to-end gains are smaller.

Kernels: the 2:4 format against dense for every batch of claim 1. Simulator: an N:M sparse
array (it streams only the n of every m weights, with 2-bit positions as metadata) against the
dense array, at batch 1 (memory-bound) and the largest batch (compute-bound).
"""

from __future__ import annotations

from . import verdict as rules
from .config import Sizes
from .lab import Lab
from .result import ClaimResult
from .workloads import Job, Spec

SPEC = Spec.nm(2, 4)


def jobs(sizes: Sizes) -> list[Job]:
    """2:4 at every batch of claim 1."""
    return [Job(SPEC, b) for b in sizes.batches]


def analyse(lab: Lab) -> ClaimResult:
    """Measured 2:4 speedups and the simulated N:M array, memory- and compute-bound."""
    sizes = lab.sizes
    cells = {b: lab.cell(Job(SPEC, b)) for b in sizes.batches}
    mem_b, comp_b = min(sizes.batches), max(sizes.batches)
    sims = {b: lab.sims[Job(SPEC, b)] for b in sizes.batches}
    bound = {b: ("compute" if sims[b].dense.stall_cycles < 0.5 * sims[b].dense.elapsed_cycles
                 else "memory") for b in sizes.batches}
    sim_comp, sim_mem = cells[comp_b].sim_speedup, cells[mem_b].sim_speedup
    measured_list = [c.speedup for c in cells.values()]
    v = rules.nm_speedup(sim_comp, sim_mem, measured_list)
    measured = "2:4 vs dense: " + ", ".join(
        f"B={b} {c.speedup:.2f}x" for b, c in cells.items()) + \
        f" (bytes {cells[mem_b].sparse_bytes / cells[mem_b].dense_bytes:.3f} of dense)"
    simulated = f"2:4 array vs dense array: B={comp_b} ({bound[comp_b]}-bound dense) " \
                f"{sim_comp:.2f}x, B={mem_b} ({bound[mem_b]}-bound dense) {sim_mem:.2f}x; all: " + \
                ", ".join(
                    f"B={b} {c.sim_speedup:.2f}x" for b, c in cells.items())
    return ClaimResult(
        number=3,
        claim="N:M: 2:4 sparse tensor cores double math throughput; real end-to-end gains are "
              "smaller (1.1-1.7x reported)",
        source="Mishra et al. 2021 (Accelerating sparse deep neural networks)",
        measured=measured, simulated=simulated, verdict=v,
        figures={"batches": list(cells), "measured": measured_list,
                 "simulated": [c.sim_speedup for c in cells.values()],
                 "bound": {str(b): x for b, x in bound.items()},
                 "sim_compute_bound": sim_comp, "sim_memory_bound": sim_mem},
        plots=["claim3_nm.png"],
    )
