"""One GEMM whose weight pattern is already decided, on the fast or the reference engine.

The public calls (``engine.py``: ``simulate_gemm``, ``simulate_sddmm``, ...) check their
arguments and decide the pattern (``mask_choice.py``); ``PreparedWorkload`` keeps patterns
for many architectures. Both end here:

* ``engine="fast"``: the closed-form fold table (``folding.py``), the traffic model and the
  fold-level DRAM schedule (``memory.py``), then the energy pass; cost grows with folds.
* ``engine="reference"`` (or ``trace=True``): the cycle-stepping engine (``reference.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .arch import Arch
from .energy import EnergyTable, estimate_energy
from .folding import build_fold_table
from .memory import schedule, traffic
from .pattern import WeightPattern
from .result import Result

ENGINES = ("fast", "reference")


def check_engine(engine: Any) -> str:
    """``engine`` if it is one of ``ENGINES``; ``ValueError`` naming it otherwise."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine


def run_gemm(arch: Arch, M: int, K: int, N: int,
             mask: np.ndarray | WeightPattern | None, *, engine: str = "fast",
             trace: bool = False, energy_table: EnergyTable | str | Path | None = None,
             name: str = "gemm") -> Result:
    """Simulate ``X (M x K) @ W (K x N)`` on ``arch`` with the weight pattern ``mask``.

    Args:
        arch, M, K, N: the accelerator and the GEMM sizes (already checked).
        mask: the ``K x N`` nonzero pattern (a bool array or a ``WeightPattern``), or
            ``None`` for the closed-form cases (see ``mask_choice.mask_choice``).
        engine: ``"fast"`` or ``"reference"`` (cycle stepping, small problems only).
        trace: return a per-cycle trace in ``Result.trace`` (runs the reference engine).
        energy_table: a table, a YAML path or ``None`` for the 45 nm default.
        name: label of the result.
    """
    check_engine(engine)
    if trace or engine == "reference":
        from .reference import run_reference  # pure Python, loaded only when asked for

        if isinstance(mask, WeightPattern):
            mask = mask.mask
        return run_reference(arch, M, K, N, mask, trace=trace, energy_table=energy_table,
                             name=name)
    table = build_fold_table(arch, M, K, N, mask)
    return result_from_table(arch, M, K, N, table, energy_table, name)


def result_from_table(arch: Arch, M: int, K: int, N: int, table: Any,
                      energy_table: EnergyTable | str | Path | None, name: str) -> Result:
    """Traffic, DRAM schedule and energy of a fold table, as a ``Result``."""
    tr = traffic(table, arch)
    tl = schedule(table.length, tr.load_words, tr.write_words, arch.bandwidth,
                  arch.dram_latency)
    compute = table.compute_cycles()
    energy = estimate_energy(arch, table.useful_macs, table.performed_macs, tr.sram_reads,
                             tr.sram_writes, tr.dram_reads, tr.dram_writes, energy_table)
    return Result(
        name=name, M=M, K=K, N=N, arch=arch,
        compute_cycles=compute, stall_cycles=tl.stall, total_cycles=compute + tl.stall,
        elapsed_cycles=tl.end,
        utilization=table.useful_macs / (arch.pes * tl.end) if tl.end else 0.0,
        mapping_efficiency=table.mapping_efficiency(),
        useful_macs=table.useful_macs, performed_macs=table.performed_macs,
        folds=table.folds, active_folds=int((table.length > 0).sum()),
        sram_reads=tr.sram_reads, sram_writes=tr.sram_writes, dram_reads=tr.dram_reads,
        dram_writes=tr.dram_writes, energy_pj=energy,
        stall_breakdown={"fill": tl.fill, "between": tl.between, "drain": tl.drain},
        engine="fast")
