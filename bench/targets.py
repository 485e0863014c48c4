"""The benchmarks' targets as data, and the check that prints each one met or missed.

A target names a report (the JSON a benchmark writes under ``bench/out/<cpu>-<simd>/``), the
rows it applies to (equality on columns, or any of a tuple), the column it reads and its
limit (a number, or another column of the same row). ``check(report, data)`` evaluates every
target of that report on every matching row: the benchmark prints the result and stores it in
its JSON, and ``python -m bench.results`` evaluates the stored JSONs again when it regenerates
``bench/RESULTS.md``. Changing a target is an edit here, not in a benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """``column`` of each row of ``rows`` in report ``report`` matching ``where`` must be at
    least (``at_least``) or at most ``limit`` (a number, or the name of a column)."""

    issue: int
    report: str
    what: str
    column: str
    limit: float | str
    at_least: bool = True
    rows: str = "rows"
    where: dict[str, Any] = field(default_factory=dict)
    cell: tuple[str, ...] = ()

    def matches(self, row: dict[str, Any]) -> bool:
        for key, want in self.where.items():
            have = row.get(key)
            if isinstance(want, tuple) and have not in want:
                return False
            if not isinstance(want, tuple) and have != want:
                return False
        return True

    def verdict(self, row: dict[str, Any]) -> dict[str, Any] | None:
        value = row.get(self.column)
        limit = row.get(self.limit) if isinstance(self.limit, str) else self.limit
        if value is None or limit is None:
            return None
        met = value >= limit if self.at_least else value <= limit
        cell = " ".join(f"{row.get(c)}" for c in self.cell)
        return {"issue": self.issue, "target": self.what, "cell": cell, "value": float(value),
                "limit": float(limit), "at_least": self.at_least, "met": bool(met)}


_K = {"shape": "4096x4096", "dtype": "float32"}
_KCELL = ("shape",)
_LCELL = ("shape", "batch")
_MCELL = ("variant",)
_TCELL = ("layout", "n")
_TEAM = ("2:4", "csr 0.1", "bitmap 0.5", "bsr 32x32 0.1")

TARGETS: tuple[Target, ...] = (
    # Issue 20: kernels at 4096^2, each call right after the dense product (in a model).
    *(Target(20, "kernels_cpu", f"N={n} {fmt} {d} >= {lim}x dense", "speedup_vs_dense", lim,
             rows="cells", where={**_K, "n": n, "fmt": fmt, "density": d}, cell=_KCELL)
      for n, fmt, d, lim in [(1, "2:4", 0.5, 1.6), (1, "1:4", 0.25, 3.0), (1, "csr", 0.1, 5.0),
                             (1, "bsr 32x32", 0.1, 8.5), (1, "bitmap", 0.5, 1.6),
                             (512, "2:4", 0.5, 1.3), (512, "csr", 0.1, 4.0),
                             (512, "bsr 32x32", 0.1, 7.0)]),
    # Issue 20: SparseLinear vs nn.Linear at the five sizes, batch 1 and 16.
    Target(20, "layers", "2:4 >= 1.4x nn.Linear", "speedup", 1.4, rows="layers",
           where={"format": "2:4"}, cell=_LCELL),
    Target(20, "layers", "csr 0.1 >= 3x nn.Linear", "speedup", 3.0, rows="layers",
           where={"format": "csr 0.1"}, cell=_LCELL),
    Target(20, "layers", "never slower than nn.Linear", "speedup", 1.0, rows="layers",
           where={"format": ("1:4", "csr 0.3", "bitmap 0.3", "bitmap 0.5")},
           cell=("format", *_LCELL)),
    # Issue 20: models, fp32 eager.
    Target(20, "models", "Llama decode of the bytes-per-token bound", "of_bound", 0.85,
           where={"model": "Llama", "dtype": "float32", "compiled": False,
                  "variant": ("bitmap 0.5", "2:4", "csr 0.3", "bsr 32x32 0.3")}, cell=_MCELL),
    Target(20, "models", "Llama prefill vs dense (d <= 0.3)", "prefill_vs_dense", 1.0,
           where={"model": "Llama", "dtype": "float32", "compiled": False,
                  "variant": ("csr 0.3", "bsr 32x32 0.3", "bitmap 0.3")}, cell=_MCELL),
    Target(20, "models", "BERT vs dense (d <= 0.3)", "vs_dense", 1.0,
           where={"model": "BERT", "dtype": "float32", "compiled": False,
                  "variant": ("csr 0.3", "bsr 32x32 0.3", "bitmap 0.3")}, cell=_MCELL),
    # Issue 20: the thread mechanism (bench.team), each sparse layout at N = 1 and 16.
    Target(20, "team", "after a torch op / alone", "after_over_alone", 1.15, at_least=False,
           where={"layout": _TEAM}, cell=_TCELL),
    Target(20, "team", "torch op after it / after the dense product",
           "op_after_over_op_after_dense", 1.15, at_least=False, where={"layout": _TEAM},
           cell=_TCELL),
    Target(20, "team", "busy median / quiet", "busy_median_over_quiet", 1.5, at_least=False,
           where={"layout": _TEAM}, cell=_TCELL),
    Target(20, "team", "busy p90 / quiet, vs t.sum() of the same bytes", "busy_p90_over_quiet",
           "sum_busy_p90_over_quiet", at_least=False, where={"layout": _TEAM}, cell=_TCELL),
    # Issue 23: int8 values, W 4096^2, N = 1, per call after a torch op (bench.int8).
    Target(23, "int8", "N=1 bitmap 0.5 int8 >= 1.35x aten._weight_int8pack_mm", "x_int8pack",
           1.35, rows="cells", where={"N": 1, "weight": "bitmap 0.5 int8"}, cell=("weight",)),
    Target(23, "int8", "N=1 bitmap 0.5 int8 >= 2.7x dense bf16", "x_dense_bf16", 2.7,
           rows="cells", where={"N": 1, "weight": "bitmap 0.5 int8"}, cell=("weight",)),
    Target(23, "int8", "N=1 2:4 int8 >= 1.3x aten._weight_int8pack_mm", "x_int8pack", 1.3,
           rows="cells", where={"N": 1, "weight": "2:4 int8"}, cell=("weight",)),
    # Issue 23: prefill, W8A8 (the issue sets it for CPUs with VNNI / AMX-INT8; reported on
    # every CPU, the host line says which it has).
    Target(23, "int8", "N=256 W8A8 (int8 activations) >= 0.8x dense bf16", "x_dense_bf16", 0.8,
           rows="cells", where={"N": 256, "weight": ("bitmap 0.5 int8 W8A8", "2:4 int8 W8A8")},
           cell=("weight",)),
    # Issue 23: Llama decode with int8 values against dense bf16 (lm_head dense bf16, counted).
    Target(23, "models", "Llama bf16 decode of the bytes-per-token bound (int8 values)",
           "of_bound", 0.85, where={"model": "Llama", "dtype": "bfloat16", "compiled": False,
                                    "variant": ("bitmap 0.5 int8", "2:4 int8")}, cell=_MCELL),
)


def check(report: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of ``report`` on every matching row of ``data`` (the report's JSON)."""
    out = []
    for t in TARGETS:
        if t.report != report:
            continue
        for row in data.get(t.rows) or []:
            if t.matches(row):
                v = t.verdict(row)
                if v is not None:
                    out.append(v)
    return out


def markdown(checks: list[dict[str, Any]]) -> str:
    """The met / missed table of ``check``'s result (empty string when there is none)."""
    if not checks:
        return ""
    met = sum(c["met"] for c in checks)
    lines = [f"Targets met: {met} of {len(checks)}", "",
             "| issue | target | cell | value | limit | met |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['issue']} | {c['target']} | {c['cell']} | {c['value']:.2f} | "
              f"{'>=' if c['at_least'] else '<='} {c['limit']:.2f} | "
              f"{'yes' if c['met'] else 'NO'} |" for c in checks]
    return "\n".join(lines) + "\n"
