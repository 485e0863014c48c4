"""Command line: ``python -m simulator run ...`` and ``python -m simulator sweep ...``.

``run`` simulates one GEMM (``--gemm M,K,N``) or a topology CSV (``--topology``) on one
architecture (``--config x.cfg`` and/or flags); ``sweep`` simulates a workload on every
combination of comma-separated flag values (or a YAML ``--grid``). Both print a summary table
and write ``--csv`` / ``--json`` files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .arch import Arch
from .config import load_scalesim_config
from .engine import simulate_gemm, simulate_layers
from .result import format_table, summarize, write_csv, write_json
from .sweep import sweep
from .topology import bundled_topology, load_topology
from .workload import Layer

SUMMARY = ["name", "M", "K", "N", "compute_cycles", "stall_cycles", "total_cycles",
           "utilization", "mapping_efficiency", "dram_words", "energy_uj"]
SWEEP_SUMMARY = ["point", "rows", "cols", "dataflow", "sparsity", "ifmap_sram_kb",
                 "dram_words_per_cycle", "total_cycles", "stall_cycles", "utilization",
                 "energy_uj"]

# CLI flag -> Arch field
ARCH_FLAGS = {"rows": "rows", "cols": "cols", "dataflow": "dataflow",
              "ifmap_kb": "ifmap_sram_kb", "filter_kb": "filter_sram_kb",
              "ofmap_kb": "ofmap_sram_kb", "sram_kb": "sram_kb",
              "bandwidth": "dram_words_per_cycle", "latency": "dram_latency",
              "sparsity": "sparsity", "nm": "nm", "block": "block", "balance": "balance",
              "word_bytes": "word_bytes"}


def _number(text: str) -> Any:
    t = text.strip()
    if t.lower() in ("none", "inf", "unlimited"):
        return None
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def _value(field: str, text: str) -> Any:
    if field in ("nm", "block"):
        return text.replace("x", ":")
    if field in ("dataflow", "sparsity"):
        return text
    return _number(text)


def _add_arch_flags(p: argparse.ArgumentParser, multi: bool) -> None:
    h = " (comma-separated list to sweep)" if multi else ""
    p.add_argument("--config", help="SCALE-Sim .cfg file giving the base architecture")
    p.add_argument("--rows", help="PE array rows" + h)
    p.add_argument("--cols", help="PE array columns" + h)
    p.add_argument("--dataflow", help="os, ws or is" + h)
    p.add_argument("--sram-kb", dest="sram_kb", help="size of each of the 3 buffers, KB" + h)
    p.add_argument("--ifmap-kb", dest="ifmap_kb", help="ifmap buffer KB" + h)
    p.add_argument("--filter-kb", dest="filter_kb", help="filter buffer KB" + h)
    p.add_argument("--ofmap-kb", dest="ofmap_kb", help="ofmap buffer KB" + h)
    p.add_argument("--bandwidth", help="DRAM words/cycle, or 'none' (unlimited)" + h)
    p.add_argument("--latency", help="DRAM latency in cycles" + h)
    p.add_argument("--sparsity", help="dense, nm, block or unstructured" + h)
    p.add_argument("--nm", help="N:M ratio, e.g. 2:4" + h)
    p.add_argument("--block", help="block shape KxN, e.g. 16x16" + h)
    p.add_argument("--balance", help="true/false: balance unstructured lanes" + h)
    p.add_argument("--word-bytes", dest="word_bytes", help="bytes per word" + h)


def _add_workload_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--gemm", help="one GEMM as M,K,N (inputs M x K, weights K x N)")
    g.add_argument("--topology", help="SCALE-Sim topology CSV, or a bundled name "
                                      "(resnet50, bert_base)")
    p.add_argument("--topology-kind", default="auto", choices=("auto", "conv", "gemm"))
    p.add_argument("--density", type=float, help="synthetic weight density (sparse modes)")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic patterns")
    p.add_argument("--energy", help="YAML energy table replacing the 45 nm default")
    p.add_argument("--csv", help="write results as CSV here")
    p.add_argument("--json", help="write results as JSON here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator",
                                     description="Systolic accelerator simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate one architecture")
    _add_arch_flags(run, multi=False)
    _add_workload_flags(run)
    run.add_argument("--reference", action="store_true",
                     help="use the cycle-stepping reference engine (small problems)")
    run.add_argument("--trace", help="write a per-cycle trace CSV (one GEMM, small only)")
    sw = sub.add_parser("sweep", help="simulate a grid of architectures")
    _add_arch_flags(sw, multi=True)
    _add_workload_flags(sw)
    sw.add_argument("--grid", help="YAML file mapping Arch fields to lists of values")
    sw.add_argument("--processes", type=int, help="worker processes (default: all cores)")
    sw.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sw.add_argument("--top", type=int, default=10, help="rows of the summary table")
    sw.add_argument("--sort", default="total_cycles",
                    help="column the summary table is sorted by (default total_cycles)")
    return parser


def _base_arch(args: argparse.Namespace) -> Arch:
    return load_scalesim_config(args.config) if args.config else Arch()


def _arch_changes(args: argparse.Namespace, multi: bool) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for flag, field in ARCH_FLAGS.items():
        raw = getattr(args, flag, None)
        if raw is None:
            continue
        if multi:
            changes[field] = [_value(field, x) for x in raw.split(",")]
        else:
            changes[field] = _value(field, raw)
    return changes


def _workload(args: argparse.Namespace) -> list[Layer]:
    if args.gemm:
        parts = args.gemm.replace("x", ",").split(",")
        if len(parts) != 3:
            raise ValueError(f"--gemm expects M,K,N, got {args.gemm!r}")
        try:
            M, K, N = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"--gemm expects three integers M,K,N, got {args.gemm!r}") from None
        return [Layer("gemm", M, K, N)]
    path = Path(args.topology)
    if not path.exists() and "/" not in args.topology:
        path = bundled_topology(args.topology)
    return load_topology(path, kind=args.topology_kind)


def _summary_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["dram_words"] = sum(v for k, v in row.items()
                            if k.startswith(("dram_reads_", "dram_writes_")))
    out["energy_uj"] = row.get("energy_total_pj", 0.0) / 1e6
    return out


def cmd_run(args: argparse.Namespace) -> int:
    arch = _base_arch(args)
    changes = _arch_changes(args, multi=False)
    if "sram_kb" in changes:
        kb = changes.pop("sram_kb")
        changes.update(ifmap_sram_kb=kb, filter_sram_kb=kb, ofmap_sram_kb=kb)
    arch = arch.with_(**changes)
    layers = _workload(args)
    engine = "reference" if args.reference else "fast"
    if args.trace:
        if len(layers) != 1:
            raise ValueError("--trace needs a single GEMM (--gemm)")
        L = layers[0]
        results = [simulate_gemm(arch, L.M, L.K, L.N, density=args.density, seed=args.seed,
                                 trace=True, energy_table=args.energy, name=L.name)]
        results[0].write_trace_csv(args.trace)
    else:
        results = simulate_layers(arch, layers, density=args.density, seed=args.seed,
                                  engine=engine, energy_table=args.energy)
    total = summarize(results, name="TOTAL")
    rows = [r.to_row() for r in results] + [total.to_row()]
    shown = rows if len(rows) <= 41 else rows[:20] + rows[-1:]
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        write_json({"arch": arch.to_dict(), "layers": [r.to_dict() for r in results],
                    "total": total.to_dict()}, args.json)
    print(f"arch: {arch.rows}x{arch.cols} {arch.dataflow} sparsity={arch.sparsity} "
          f"bandwidth={arch.dram_words_per_cycle} words/cycle")
    print(format_table([_summary_row(r) for r in shown], SUMMARY))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    base = _base_arch(args)
    grid: dict[str, list[Any]] = {}
    if args.grid:
        data = yaml.safe_load(Path(args.grid).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{args.grid}: expected a mapping of Arch fields to lists")
        for k, v in data.items():
            grid[k] = list(v) if isinstance(v, (list, tuple)) else [v]
    grid.update(_arch_changes(args, multi=True))
    if not grid:
        raise ValueError("sweep needs at least one swept field (flags or --grid)")
    layers = _workload(args)
    rows = sweep(grid, layers, processes=args.processes, progress=not args.no_progress,
                 density=args.density, seed=args.seed, energy_table=args.energy, base=base)
    key = args.sort
    if rows and key not in rows[0]:
        raise ValueError(f"--sort: unknown column {key!r}")
    best = sorted(rows, key=lambda r: r[key])[:args.top]
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        write_json(rows, args.json)
    print(f"{len(rows)} design points, {len(layers)} layer(s); best {len(best)} by {key}:")
    print(format_table([_summary_row(r) for r in best], SWEEP_SUMMARY))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        return cmd_sweep(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
