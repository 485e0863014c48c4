"""Speed and memory of the simulator: ``python -m bench.simulator_speed``.

Measures (targets from the simulator issue):
  * one 1024 x 1024 x 1024 GEMM on a 32 x 32 array, full counts (< 1 s, < 200 MB),
    dense and with a 10 %-dense unstructured pattern;
  * the bundled ResNet-50 and BERT-base layer lists (< 10 s each);
  * a 1,000-point design-space sweep across all cores, with its progress bar.
Peak memory is the tracemalloc peak of the call (numpy's buffers included), measured in a
second run so that tracing does not inflate the times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import sparse_accel_sim as sim


def measure(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, float, Any]:
    """Best wall time (s) over ``repeat`` runs, tracemalloc peak (MB), and the result."""
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20, out


def sweep_grid(points: int) -> list[sim.Arch]:
    grid = {"rows": [8, 16, 32, 64, 128], "cols": [8, 16, 32, 64, 128],
            "dataflow": ["os", "ws", "is"], "sram_kb": [32, 256],
            "dram_words_per_cycle": [None, 4, 16, 64], "sparsity": ["dense", "nm"]}
    archs = sim.grid_points(grid)
    return archs[:points]


def run(points: int = 1000, processes: int | None = None, progress: bool = True
        ) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    arch = sim.Arch(rows=32, cols=32, dram_words_per_cycle=16)

    t, mb, r = measure(lambda: sim.simulate_gemm(arch, 1024, 1024, 1024))
    rows.append({"case": "GEMM 1024^3 on 32x32 (dense)", "seconds": t, "peak_mb": mb,
                 "cycles": r.total_cycles, "target": "< 1 s, < 200 MB"})
    w = sim.synthetic_weight(1024, 1024, 0.1, "uniform", seed=0)
    sparse = arch.with_(sparsity="unstructured", balance=True)
    t, mb, r = measure(lambda: sim.simulate_gemm(sparse, 1024, 1024, 1024, weight=w))
    rows.append({"case": "GEMM 1024^3 on 32x32 (unstructured 10%)", "seconds": t,
                 "peak_mb": mb, "cycles": r.total_cycles, "target": "< 1 s, < 200 MB"})

    for name in ("resnet50", "bert_base"):
        layers = sim.load_topology(sim.bundled_topology(name))
        t, mb, r = measure(lambda layers=layers: sim.simulate_topology(arch, layers),
                           repeat=2)
        rows.append({"case": f"{name} ({len(layers)} layers) on 32x32", "seconds": t,
                     "peak_mb": mb, "cycles": r.total_cycles, "target": "< 10 s"})

    archs = sweep_grid(points)
    workload = [sim.Layer("qkv", 512, 768, 2304), sim.Layer("ffn1", 512, 768, 3072),
                sim.Layer("ffn2", 512, 3072, 768)]
    procs = processes or os.cpu_count() or 1
    t0 = time.perf_counter()
    out = sim.sweep(archs, workload, processes=procs, progress=progress)
    t = time.perf_counter() - t0
    rows.append({"case": f"sweep {len(out)} points x 3 GEMMs, {procs} processes",
                 "seconds": t, "peak_mb": float("nan"),
                 "cycles": min(r["total_cycles"] for r in out), "target": "progress bar"})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=1000, help="sweep points (default 1000)")
    p.add_argument("--processes", type=int, help="sweep processes (default: all cores)")
    p.add_argument("--json", help="also write the measurements here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    rows = run(args.points, args.processes, progress=not args.no_progress)
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  {'seconds':>8}  {'peak MB':>8}  {'cycles':>12}  target")
    for r in rows:
        print(f"{r['case']:<{width}}  {r['seconds']:8.3f}  {r['peak_mb']:8.1f}  "
              f"{r['cycles']:12d}  {r['target']}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS: {rss:.0f} MB (numpy and the interpreter included)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
