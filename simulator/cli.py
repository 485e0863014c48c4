"""Command line: ``python -m sparse_accel_sim run|sweep|pareto ...``.

``run`` simulates one GEMM (``--gemm M,K,N``) or a topology CSV (``--topology``) on one
architecture (``--config x.cfg`` and/or flags); ``sweep`` simulates a workload on every
combination of comma-separated flag values (or a YAML ``--grid``, or a ``--space`` file, see
``space.py``), locally or on Dask (``--executor dask [--address tcp://host:8786]``), storing
results in a resumable Parquet dataset (``--out DIR``), or searches a space with NSGA-II
(``--search TRIALS``). Both print a summary table and write ``--csv`` / ``--json`` files.
``pareto DIR`` prints (and ``--plot``s) the Pareto front of stored results.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml

from .arch import Arch
from .config import load_scalesim_config
from .engine import simulate_gemm, simulate_layers
from .pareto import DEFAULT_OBJECTIVES, pareto
from .result import format_table, summarize, write_csv, write_json
from .space import load_space
from .sweep import EXECUTORS, sweep
from .topology import bundled_topology, load_topology
from .workload import Layer

SUMMARY = ["name", "M", "K", "N", "compute_cycles", "stall_cycles", "total_cycles",
           "utilization", "mapping_efficiency", "dram_words", "energy_uj"]
SWEEP_SUMMARY = ["point", "rows", "cols", "dataflow", "sparsity", "density", "ifmap_sram_kb",
                 "dram_words_per_cycle", "total_cycles", "stall_cycles", "utilization",
                 "energy_uj", "area_mm2"]

# CLI flag -> Arch field
ARCH_FLAGS = {"rows": "rows", "cols": "cols", "dataflow": "dataflow",
              "ifmap_kb": "ifmap_sram_kb", "filter_kb": "filter_sram_kb",
              "ofmap_kb": "ofmap_sram_kb", "sram_kb": "sram_kb",
              "bandwidth": "dram_words_per_cycle", "latency": "dram_latency",
              "sparsity": "sparsity", "nm": "nm", "block": "block", "balance": "balance",
              "word_bytes": "word_bytes", "layout": "layout"}
# Former flag -> its flag now (still accepted, with a warning).
FORMER_FLAGS = {"weight_format": "layout"}


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
    if field in ("dataflow", "sparsity", "layout"):
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
    p.add_argument("--layout", help="csr or bitmap: how unstructured weights are stored" + h)
    p.add_argument("--weight-format", dest="weight_format",
                   help="deprecated name of --layout")


def _add_workload_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--gemm", help="one GEMM as M,K,N (inputs M x K, weights K x N)")
    g.add_argument("--topology", help="SCALE-Sim topology CSV, or a bundled name "
                                      "(resnet50, bert_base)")
    p.add_argument("--topology-kind", default="auto", choices=("auto", "conv", "gemm"))
    p.add_argument("--density", type=float, help="synthetic weight density (sparse modes)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of synthetic patterns (default 0, or the --space file's)")
    p.add_argument("--energy", help="YAML energy table replacing the 45 nm default")
    p.add_argument("--csv", help="write results as CSV here")
    p.add_argument("--json", help="write results as JSON here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sparse_accel_sim",
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
    sw.add_argument("--space", help="YAML space file: Arch fields (lists, or ranges for "
                                    "--search) and sparsity modes/densities")
    sw.add_argument("--search", type=int, metavar="TRIALS",
                    help="NSGA-II search of --space with this many trials instead of a grid")
    sw.add_argument("--executor", default="local", choices=EXECUTORS,
                    help="local process pool, or a Dask cluster (default local)")
    sw.add_argument("--address", help="Dask scheduler address, e.g. tcp://host:8786 "
                                      "(default: start a LocalCluster)")
    sw.add_argument("--chunk", type=int, help="points per task (default: ~8 tasks per worker)")
    sw.add_argument("--out", help="results directory (Parquet dataset); points already "
                                  "there are skipped, so a sweep resumes")
    sw.add_argument("--area", help="YAML area table replacing the 45 nm default")
    sw.add_argument("--processes", type=int,
                    help="worker processes (local) or LocalCluster workers (dask); "
                         "default: all cores")
    sw.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sw.add_argument("--top", type=int, default=10, help="rows of the summary table")
    sw.add_argument("--sort", default="total_cycles",
                    help="column the summary table is sorted by (default total_cycles)")
    pa = sub.add_parser("pareto", help="Pareto front of a results directory")
    pa.add_argument("results", help="directory written by sweep --out")
    pa.add_argument("--objectives", default=",".join(DEFAULT_OBJECTIVES),
                    help="comma-separated columns to minimise (default %(default)s)")
    pa.add_argument("--maximize", default="", help="comma-separated objectives to maximise")
    pa.add_argument("--plot", help="write the points and the front as a PNG here")
    pa.add_argument("--csv", help="write the front as CSV here")
    pa.add_argument("--json", help="write the front as JSON here")
    pa.add_argument("--top", type=int, default=20, help="front rows printed (default 20)")
    return parser


def _base_arch(args: argparse.Namespace) -> Arch:
    return load_scalesim_config(args.config) if args.config else Arch()


def _former_flags(args: argparse.Namespace) -> None:
    """Move the values of former flags (``--weight-format``) to their flags now, warning."""
    for old, new in FORMER_FLAGS.items():
        raw = getattr(args, old, None)
        if raw is None:
            continue
        flag, now = "--" + old.replace("_", "-"), "--" + new.replace("_", "-")
        if getattr(args, new, None) is not None:
            raise ValueError(f"give {now} or its former name {flag}, not both")
        print(f"warning: {flag} is deprecated, use {now}", file=sys.stderr)
        warnings.warn(f"{flag} is deprecated, use {now}", DeprecationWarning, stacklevel=2)
        setattr(args, new, raw)
        setattr(args, old, None)


def _arch_changes(args: argparse.Namespace, multi: bool) -> dict[str, Any]:
    _former_flags(args)
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
        results = [simulate_gemm(arch, L.M, L.K, L.N, density=args.density, seed=args.seed or 0,
                                 trace=True, energy_table=args.energy, name=L.name)]
        results[0].write_trace_csv(args.trace)
    else:
        results = simulate_layers(arch, layers, density=args.density, seed=args.seed or 0,
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
    layers = _workload(args)
    if args.search is not None and not args.space:
        raise ValueError("--search needs a --space file")
    if args.address and args.executor != "dask":
        raise ValueError("--address needs --executor dask")
    run_kw = {"executor": args.executor, "address": args.address, "out": args.out,
              "processes": args.processes, "energy_table": args.energy,
              "area_table": args.area}
    if args.space:
        if args.grid or _arch_changes(args, multi=True) or args.config:
            raise ValueError("--space replaces --grid, --config and the Arch flags")
        space = load_space(args.space)
        seed = space.seed if args.seed is None else args.seed
        if args.search is not None:
            from .nsga_search import search

            res = search(space, layers, trials=args.search, chunk=args.chunk, seed=seed,
                         progress=not args.no_progress, **run_kw)
            rows = res.rows
        else:
            rows = sweep(space.grid(), layers, chunk=args.chunk, seed=seed,
                         progress=not args.no_progress, density=args.density, **run_kw)
        return _report(args, rows, layers)
    grid: dict[str, list[Any]] = {}
    if args.grid:
        data = yaml.safe_load(Path(args.grid).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{args.grid}: expected a mapping of Arch fields to lists")
        for k, v in data.items():
            grid[k] = list(v) if isinstance(v, (list, tuple)) else [v]
    grid.update(_arch_changes(args, multi=True))
    if not grid:
        raise ValueError("sweep needs at least one swept field (flags, --grid or --space)")
    rows = sweep(grid, layers, progress=not args.no_progress, density=args.density,
                 seed=args.seed or 0, base=base, chunk=args.chunk, **run_kw)
    return _report(args, rows, layers)


def _report(args: argparse.Namespace, rows: list[dict[str, Any]], layers: list[Layer]) -> int:
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


def cmd_pareto(args: argparse.Namespace) -> int:
    objectives = [x.strip() for x in args.objectives.split(",") if x.strip()]
    maximize = [x.strip() for x in args.maximize.split(",") if x.strip()]
    path = Path(args.results)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such results directory")
    from .results_store import ResultsStore

    rows = ResultsStore(path).rows()
    if not rows:
        raise ValueError(f"{path}: holds no results")
    front = pareto(rows, objectives, maximize=maximize)
    front.sort(key=lambda r: r[objectives[0]])
    print(f"{len(front)} of {len(rows)} points on the front of {', '.join(objectives)}:")
    cols = ["point", "rows", "cols", "dataflow", "sparsity", "density", "ifmap_sram_kb"]
    cols += [o for o in objectives if o not in cols]
    print(format_table(front[:args.top], cols))
    if args.csv:
        write_csv(front, args.csv)
    if args.json:
        write_json(front, args.json)
    if args.plot:
        from .front_plot import plot_front

        plot_front(rows, front, objectives, args.plot, title=f"{path.name}: {len(rows)} points")
        print(f"wrote {args.plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "pareto":
            return cmd_pareto(args)
        return cmd_sweep(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
