"""What a simulation returns, and how results are added up and written out."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .arch import Arch

OPERANDS = ("ifmap", "filter", "metadata", "ofmap")


@dataclass
class Result:
    """Cycles, utilisation, traffic and energy of one workload on one architecture.

    Cycle fields follow SCALE-Sim: ``compute_cycles`` is the index, counting from 0, of the
    last cycle in which the array works (the sum of fold lengths minus one); ``stall_cycles``
    are cycles in which it waits for DRAM; ``total_cycles = compute_cycles + stall_cycles``.
    ``elapsed_cycles`` is the number of cycles from the first DRAM request to the last write
    (``total_cycles + 1`` whenever the array works at all).

    ``utilization``: useful MACs (with a nonzero weight) / (PEs x ``elapsed_cycles``), <= 1.
    ``mapping_efficiency``: mean over executed folds of mapped PEs / PEs (SCALE-Sim's).
    Traffic dicts count words per operand: ``"ifmap"``, ``"filter"``, ``"metadata"``
    (sparsity indices), ``"ofmap"``. ``energy_pj``: pJ per component and ``"total"``.
    """

    name: str
    M: int
    K: int
    N: int
    arch: Arch
    compute_cycles: int
    stall_cycles: int
    total_cycles: int
    elapsed_cycles: int
    utilization: float
    mapping_efficiency: float
    useful_macs: int
    performed_macs: int
    folds: int
    active_folds: int
    sram_reads: dict[str, int]
    sram_writes: dict[str, int]
    dram_reads: dict[str, int]
    dram_writes: dict[str, int]
    energy_pj: dict[str, float]
    stall_breakdown: dict[str, int] = field(default_factory=dict)
    engine: str = "fast"
    trace: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        """Wall time at ``arch.clock_ghz``."""
        return self.elapsed_cycles / (self.arch.clock_ghz * 1e9)

    @property
    def gated_macs(self) -> int:
        """MAC slots spent on a zero weight."""
        return self.performed_macs - self.useful_macs

    def totals(self) -> dict[str, int]:
        """The integer totals the fast and the reference engines must agree on."""
        out = {"compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
               "total_cycles": self.total_cycles, "elapsed_cycles": self.elapsed_cycles,
               "useful_macs": self.useful_macs, "performed_macs": self.performed_macs,
               "folds": self.folds, "active_folds": self.active_folds}
        for level in ("sram_reads", "sram_writes", "dram_reads", "dram_writes"):
            for op, v in getattr(self, level).items():
                out[f"{level}_{op}"] = v
        return out

    def to_row(self) -> dict[str, Any]:
        """A flat dict for CSV: architecture, workload, counts and energy."""
        a = self.arch
        row: dict[str, Any] = {
            "name": self.name, "M": self.M, "K": self.K, "N": self.N,
            "rows": a.rows, "cols": a.cols, "dataflow": a.dataflow, "sparsity": a.sparsity,
            "nm": f"{a.nm[0]}:{a.nm[1]}", "block": f"{a.block[0]}x{a.block[1]}",
            "balance": a.balance, "layout": a.layout,
            "ifmap_sram_kb": a.ifmap_sram_kb,
            "filter_sram_kb": a.filter_sram_kb, "ofmap_sram_kb": a.ofmap_sram_kb,
            "dram_words_per_cycle": a.dram_words_per_cycle, "word_bytes": a.word_bytes,
            "compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
            "total_cycles": self.total_cycles, "elapsed_cycles": self.elapsed_cycles,
            "utilization": self.utilization, "mapping_efficiency": self.mapping_efficiency,
            "useful_macs": self.useful_macs, "performed_macs": self.performed_macs,
            "folds": self.folds,
        }
        for level in ("sram_reads", "sram_writes", "dram_reads", "dram_writes"):
            for op in OPERANDS:
                row[f"{level}_{op}"] = getattr(self, level)[op]
        for comp, v in self.energy_pj.items():
            row[f"energy_{comp}_pj"] = v
        return row

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (nested traffic and energy dicts, no trace)."""
        return {"name": self.name, "M": self.M, "K": self.K, "N": self.N,
                "arch": self.arch.to_dict(), "engine": self.engine,
                "compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles,
                "total_cycles": self.total_cycles, "elapsed_cycles": self.elapsed_cycles,
                "utilization": self.utilization,
                "mapping_efficiency": self.mapping_efficiency,
                "useful_macs": self.useful_macs, "performed_macs": self.performed_macs,
                "folds": self.folds, "stall_breakdown": dict(self.stall_breakdown),
                "sram_reads": dict(self.sram_reads), "sram_writes": dict(self.sram_writes),
                "dram_reads": dict(self.dram_reads), "dram_writes": dict(self.dram_writes),
                "energy_pj": dict(self.energy_pj)}

    def write_trace_csv(self, path: str | Path) -> None:
        """Write the per-cycle trace (``trace=True`` runs only) as CSV, one row per cycle."""
        if self.trace is None:
            raise ValueError("this result has no trace: simulate with trace=True")
        keys = list(self.trace)
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(keys)
            w.writerows(zip(*(self.trace[k].tolist() for k in keys), strict=True))


def summarize(results: list[Result], name: str = "total") -> Result:
    """The sum of several results on one architecture (layers run one after another).

    Cycles, MACs, traffic and energy add up; utilisation is recomputed from the sums and
    mapping efficiency is the mean over all executed folds.
    """
    if not results:
        raise ValueError("summarize needs at least one result")
    arch = results[0].arch

    def add(attr: str) -> dict:
        out: dict = {}
        for r in results:
            for k, v in getattr(r, attr).items():
                out[k] = out.get(k, 0) + v
        return out

    elapsed = sum(r.elapsed_cycles for r in results)
    useful = sum(r.useful_macs for r in results)
    active = sum(r.active_folds for r in results)
    return Result(
        name=name, M=sum(r.M for r in results), K=max(r.K for r in results),
        N=max(r.N for r in results), arch=arch,
        compute_cycles=sum(r.compute_cycles for r in results),
        stall_cycles=sum(r.stall_cycles for r in results),
        total_cycles=sum(r.total_cycles for r in results), elapsed_cycles=elapsed,
        utilization=useful / (arch.pes * elapsed) if elapsed else 0.0,
        mapping_efficiency=(sum(r.mapping_efficiency * r.active_folds for r in results)
                            / active if active else 0.0),
        useful_macs=useful, performed_macs=sum(r.performed_macs for r in results),
        folds=sum(r.folds for r in results), active_folds=active,
        sram_reads=add("sram_reads"), sram_writes=add("sram_writes"),
        dram_reads=add("dram_reads"), dram_writes=add("dram_writes"),
        energy_pj=add("energy_pj"), stall_breakdown=add("stall_breakdown"),
        engine=results[0].engine)


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Write dict rows as CSV (columns: the union of keys, in first-seen order)."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def write_json(obj: Any, path: str | Path) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1, default=_json_default)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table of ``columns`` from dict rows (numbers right-aligned)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
