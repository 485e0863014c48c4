"""Writes the report: ``<stem>.md`` (the claims table), ``<stem>.json`` (every figure),
``<stem>_cells.csv`` (one row per measured/simulated workload) and PNG plots in
``<stem>_plots/``.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import model_row, plots
from .agreement import FormatAgreement
from .agreement import to_dict as agreement_dict
from .config import Sizes
from .machine import Machine
from .preset import Preset
from .result import Cell, ClaimResult

AGREE = {"holds": "agree", "partly holds": "partly agree", "does not hold": "disagree",
         "not tested": "not tested"}


@dataclass
class RunInfo:
    """How the run was made: mode, device, dtype, seed, backend, wall time (s), date."""

    mode: str
    device: str
    dtype: str
    seed: int
    backend: str
    seconds: float
    date: str
    command: str
    others_cpu_share: float = 0.0
    disturbed_cells: int = 0
    timed_cells: int = 0


def _cell_text(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        return _jsonable(asdict(x))
    return x


def markdown(results: list[ClaimResult], agree: list[FormatAgreement], dense_cal: dict,
             machine: Machine, preset: Preset, sizes: Sizes, info: RunInfo,
             plot_dir: str, plot_files: list[str], model: dict | None = None) -> str:
    """The claims.md text (``model``: the model row's figures, ``model_row.model_rows``)."""
    mins, secs = divmod(round(info.seconds), 60)
    lines = [
        "# Hardware claims of the sparsity literature: kernels and simulator",
        "",
        f"Run: `{info.command}` — mode **{info.mode}** (weight {sizes.rows} x {sizes.cols} "
        f"{info.dtype}, medians of {sizes.repeat} samples), seed {info.seed}, sparse_ops "
        f"backend **{info.backend}**, {mins} min {secs} s, {info.date}.",
        "",
        f"Machine: {machine.describe()} Other processes used {info.others_cpu_share:.0%} of "
        f"the machine's CPU time during the run; {info.disturbed_cells} of "
        f"{info.timed_cells} timed cells stayed disturbed (> 10 % of the CPU taken by others "
        f"in each of up to {sizes.attempts} attempts)" + (
            " — **timings are unreliable: other work competed for the cores** (rerun on an "
            "idle machine)." if info.disturbed_cells > 0.1 * max(info.timed_cells, 1)
            else "."),
        "",
        f"Simulator preset (models this machine): {preset.describe()}.",
        "",
        "Speedup = dense time / sparse time (> 1: sparse faster), measured in the same run "
        "against torch; the simulator's speedup is dense / sparse elapsed cycles on the preset "
        "for the same shapes and the same nonzeros. Each verdict is computed from this run's "
        "numbers by the rule given with it (rules in `bench/claims/verdict.py`).",
        "",
        "| # | claim | source | what the kernels measured | what the simulator predicts "
        "| verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: r.number):
        lines.append(
            f"| {r.number} | {_cell_text(r.claim)} | {_cell_text(r.source)} | "
            f"{_cell_text(r.measured)} | {_cell_text(r.simulated)} | **{r.verdict.verdict}**: "
            f"{_cell_text(r.verdict.rule)} |")
    lines += [
        "",
        "## Simulator against kernels",
        "",
        "Every forward product (S @ X) the claims ran, grouped by format: do the simulated "
        "speedups rank the workloads as the measured ones do (Spearman rho over densities and "
        "batches), and at what scale (geometric mean of measured / simulated speedup, and per "
        "batch)?",
        "",
        "| format | cells | Spearman rho | measured / simulated | per batch | agreement (both: "
        "agree, one: partly) | where and why |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in agree:
        bb = ", ".join(f"B={b}: {x:.2f}" for b, x in a.by_batch.items())
        rho = "n/a" if math.isnan(a.rho) else f"{a.rho:.2f}"
        lines.append(f"| {a.fmt} | {a.cells} | {rho} | {a.ratio:.2f} | {bb} | "
                     f"**{AGREE[a.verdict.verdict]}** ({_cell_text(a.verdict.rule)}) | "
                     f"{_cell_text(a.explanation)} |")
    lines += [
        "",
        "Dense baseline, measured torch.mm against the preset (the calibration both speedups "
        "divide by):",
        "",
        "| batch | measured dense ms | preset dense ms | measured / preset |",
        "|---|---|---|---|",
    ]
    for b, d in dense_cal.items():
        lines.append(f"| {b} | {d['measured_s'] * 1e3:.3f} | {d['simulated_s'] * 1e3:.3f} | "
                     f"{d['measured_over_simulated']:.2f} |")
    lines.append("")
    if model is not None:
        lines += model_row.markdown(model)
    lines += [
        "## How the figures are made",
        "",
        "- Break-even density: where speedup crosses 1, interpolated linearly in log(speedup) "
        "against log(density) between the swept points (the last downward crossing); 'none in "
        "range' reads '> max (faster everywhere)' or '< min (slower everywhere)'.",
        "- Dense equivalents: forward `torch.mm(W, X)`, input gradient `torch.mm(W.t(), dY)`, "
        "weight gradient `torch.mm(dY, X.t()) * mask` (masked dense training), all with the "
        "full dense fp32 W.",
        "- Simulator mapping: `S (out x in) @ X (in x B)` is SCALE-Sim's GEMM with M = B, "
        "K = in, N = out and weight `S.T`; `S^T @ dY` has K = out, N = in and weight `S`; the "
        "sampled product is `simulate_sddmm` with M = out, K = B, N = in and output mask "
        "`S != 0`, against the dense array computing every output. CSR runs on the unstructured "
        "(per-lane zero-skipping) array, BSR on block skipping with the same block, N:M on the "
        "N:M array (unstructured for S^T, whose groups do not run along the reduction).",
        "- Memory level: " + (
            f"the dense weight ({machine.working_set_bytes / 2**20:.0f} MiB) fits in the "
            f"{machine.llc_bytes / 2**20:.0f} MiB last-level cache, so batch-1 products stream "
            "it from that cache, not DRAM; the preset's 'DRAM' rate is the read bandwidth "
            "measured at that size, and its buffers (a third of the last-level cache each) "
            "hold every operand, so each crosses that link about once, as in the kernels' "
            "cache tiling."
            if 0 < machine.working_set_bytes < machine.llc_bytes else
            "the preset's 'DRAM' rate is the read bandwidth measured at the dense weight's "
            "size; its buffers are a third of the last-level cache each."),
        "- Patterns: magnitude pruning (`so.prune`) of one seeded Gaussian weight; claim 6 uses "
        "`simulator.synthetic_weight` uniform and power-law patterns, the same for both sides.",
        f"- Raw data: `{info_stem(info)}.json` (every figure), `{info_stem(info)}_cells.csv` "
        "(every workload).",
        "",
        "## Plots",
        "",
    ]
    for name in plot_files:
        lines.append(f"![{name}]({plot_dir}/{name})")
    return "\n".join(lines) + "\n"


def info_stem(info: RunInfo) -> str:
    """File stem of a run's outputs: ``claims`` on CPU, ``claims_<device>`` otherwise."""
    return "claims" if info.device == "cpu" else f"claims_{info.device}"


def cell_rows(cells: list[Cell]) -> list[dict[str, Any]]:
    """Cells as flat dicts (``extra`` merged in) for the CSV."""
    rows = []
    for c in cells:
        d = asdict(c)
        extra = d.pop("extra")
        for k, v in extra.items():
            d[k] = v
        rows.append(d)
    return rows


def write(out: Path, results: list[ClaimResult], agree: list[FormatAgreement],
          dense_cal: dict, machine: Machine, preset: Preset, sizes: Sizes, info: RunInfo,
          cells: list[Cell], model: dict | None = None) -> dict[str, Path]:
    """Write every file; return their paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    stem = info_stem(info)
    plot_dir = out / f"{stem}_plots"
    plot_dir.mkdir(exist_ok=True)
    rows = cell_rows(cells)
    t0 = time.perf_counter()
    plot_files = plots.draw_all(results, rows, plot_dir)
    info.seconds += time.perf_counter() - t0  # the run's length includes its plots
    md = markdown(results, agree, dense_cal, machine, preset, sizes, info, plot_dir.name,
                  plot_files, model)
    paths = {"md": out / f"{stem}.md", "json": out / f"{stem}.json",
             "csv": out / f"{stem}_cells.csv", "plots": plot_dir}
    paths["md"].write_text(md)
    payload = {
        "run": asdict(info), "machine": machine.to_dict(), "preset": preset.to_dict(),
        "sizes": asdict(sizes),
        "claims": [{"number": r.number, "claim": r.claim, "source": r.source,
                    "measured": r.measured, "simulated": r.simulated,
                    "verdict": r.verdict.verdict, "rule": r.verdict.rule,
                    "figures": r.figures, "plots": r.plots} for r in results],
        "agreement": agreement_dict(agree), "dense_calibration": dense_cal,
        "model_row": model,
    }
    paths["json"].write_text(json.dumps(_jsonable(payload), indent=1))
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return paths
