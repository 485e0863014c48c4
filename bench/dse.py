"""Design-space exploration at scale: ``python -m bench.dse [--quick]``.

Measures, on this machine:

1. Seconds per design point, one process, for ResNet-50 and BERT-base with dense, 2:4 and
   unstructured (density 0.3) weights: this code (patterns prepared once, then every point
   folds them; the first point's preparation is reported apart) against the simulator as it
   was before issue 12 (``--baseline-ref``, extracted with ``git archive`` and run in a
   subprocess), and the sparse-point speedup.
2. Points per second of ResNet-50 sweeps (dense, 2:4, unstructured) on the local executor
   (a process pool) and the Dask executor (a LocalCluster), both with ``--workers`` single-
   threaded workers on the same cores; worker caches are emptied before each sweep so both
   start cold. Cluster start-up is reported apart.
3. A mixed ResNet-50 sweep (array shape x dataflow x buffer size x sparsity; 1,152 points by
   default, 36 with ``--quick``) on both executors: the Dask overhead, rows equal between
   them, stored in a Parquet results directory, and its Pareto front (cycles, energy, area)
   drawn as a PNG.

Results go to ``--out-dir`` (default ``bench/out/dse``): ``dse.json``, ``front.png`` and
``results/``. ``--quick`` runs small versions of everything in well under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import sparse_accel_sim as sim
from sparse_accel_sim import evaluate
from sparse_accel_sim.dask_executor import DaskExecutor
from sparse_accel_sim.local_executor import LocalExecutor
from sparse_accel_sim.prepared import PreparedWorkload

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "fb3dc4e"  # the last commit before issue 12 touched the simulator
MODES = {"dense": {"sparsity": "dense"}, "2:4": {"sparsity": "nm", "nm": (2, 4)},
         "unstructured": {"sparsity": "unstructured"}}
MODE_DENSITY = {"dense": None, "2:4": None, "unstructured": 0.3}


def point_archs(quick: bool) -> list[sim.Arch]:
    """The architectures of the per-point timings (16x16 and 32x32, three dataflows)."""
    shapes = [(16, "ws"), (32, "os")] if quick else [(r, d) for r in (16, 32)
                                                     for d in ("os", "ws", "is")]
    return [sim.Arch(rows=r, cols=r, dataflow=d, dram_words_per_cycle=16) for r, d in shapes]


def mode_grid(quick: bool) -> dict[str, list[Any]]:
    """Array shape x dataflow x buffer size of the per-mode sweeps."""
    sizes = [32, 64] if quick else [16, 32, 64, 128]
    return {"rows": sizes, "cols": sizes, "dataflow": ["os", "ws", "is"],
            "sram_kb": [32, 512] if quick else [32, 128, 512, 2048]}


def mixed_points(quick: bool) -> list[sim.DesignPoint]:
    """The front sweep: the mode grid x six sparsity choices (1,152 points by default)."""
    options = [({"sparsity": "dense"}, None), ({"sparsity": "nm", "nm": (2, 4)}, None),
               ({"sparsity": "unstructured"}, 0.5), ({"sparsity": "unstructured"}, 0.3),
               ({"sparsity": "unstructured"}, 0.1),
               ({"sparsity": "unstructured", "balance": True}, 0.3)]
    grid = mode_grid(quick)
    if quick:
        options = options[:2] + options[3:4]
        grid["sram_kb"] = grid["sram_kb"][:1]
    base = sim.Arch(dram_words_per_cycle=16)
    points = []
    for arch in sim.grid_points(grid, base):
        for change, density in options:
            points.append(sim.DesignPoint(arch.with_(**change), density))
    return points


# 1. Seconds per point ---------------------------------------------------------------------

def time_points_now(network: str, mode: str, archs: list[sim.Arch]) -> dict[str, float]:
    layers = sim.load_topology(sim.bundled_topology(network))
    work = PreparedWorkload(layers, density=MODE_DENSITY[mode])
    archs = [a.with_(**MODES[mode]) for a in archs]
    t0 = time.perf_counter()
    work.simulate(archs[0])
    first = time.perf_counter() - t0
    for a in archs[1:]:
        work.simulate(a)  # every lane order / list the archs need is now prepared
    t0 = time.perf_counter()
    elapsed = [sim.summarize(work.simulate(a)).elapsed_cycles for a in archs]
    per_point = (time.perf_counter() - t0) / len(archs)
    return {"first_point_s": first, "per_point_s": per_point,
            "prepared_mb": work.nbytes / 2**20, "elapsed": elapsed}


BASELINE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import sparse_accel_sim as sim
    spec = json.loads(sys.argv[1])
    layers = sim.load_topology(sim.bundled_topology(spec["network"]))
    times = []
    sim.simulate_topology(sim.Arch(**spec["archs"][0]), layers[:2], density=spec["density"])
    for a in spec["archs"]:
        arch = sim.Arch(**a)
        t0 = time.perf_counter()
        r = sim.simulate_topology(arch, layers, density=spec["density"])
        times.append(time.perf_counter() - t0)
        print(json.dumps({"s": times[-1], "elapsed": r.elapsed_cycles}), flush=True)
""")


def baseline_tree(ref: str) -> Path | None:
    """``simulator/`` as of git ``ref`` in a temporary directory (``None`` without git)."""
    tmp = Path(tempfile.mkdtemp(prefix="dse_baseline_"))
    try:
        data = subprocess.run(["git", "archive", "--format=tar", ref, "simulator"], cwd=ROOT,
                              capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"baseline: cannot extract simulator/ at {ref}: {exc}; skipped")
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    tar = tmp / "s.tar"
    tar.write_bytes(data)
    with tarfile.open(tar) as tf:
        tf.extractall(tmp, filter="data")
    return tmp


def time_points_before(tree: Path, network: str, mode: str, archs: list[sim.Arch],
                       timeout: float) -> dict[str, Any] | None:
    spec = {"network": network, "density": MODE_DENSITY[mode],
            "archs": [{k: v for k, v in a.with_(**MODES[mode]).to_dict().items()
                       if k != "name"} for a in archs]}
    for a in spec["archs"]:
        a["nm"] = tuple(int(x) for x in a["nm"].split(":"))
        a["block"] = tuple(int(x) for x in a["block"].split("x"))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        proc = subprocess.run([sys.executable, "-c", BASELINE_SCRIPT, json.dumps(spec)],
                              cwd=tree, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        print(f"baseline {network} {mode} failed: {proc.stderr[-500:]}")
        return None
    runs = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    return {"per_point_s": sum(r["s"] for r in runs) / len(runs),
            "elapsed": [r["elapsed"] for r in runs]}


# 2./3. Executors --------------------------------------------------------------------------

def _clear_worker_cache() -> None:
    evaluate._CACHE.clear()


def _warm_worker() -> None:
    import sparse_accel_sim.evaluate  # noqa: F401 - imports are start-up, not sweep time


def timed_sweep(points: list[sim.DesignPoint], layers: list[sim.Layer], ex: Any,
                **kw: Any) -> tuple[float, list[dict[str, Any]]]:
    if isinstance(ex, DaskExecutor):
        ex.client.run(_clear_worker_cache)
    t0 = time.perf_counter()
    rows = sim.sweep(points, layers, executor=ex, progress=False, **kw)
    return time.perf_counter() - t0, rows


def run(quick: bool, workers: int, out_dir: Path, baseline_ref: str | None) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"quick": quick, "workers": workers, "cpus": os.cpu_count(),
                              "points": {}, "sweeps": {}}
    archs = point_archs(quick)
    tree = baseline_tree(baseline_ref) if baseline_ref else None
    print(f"1. seconds per point, one process ({len(archs)} archs each; before = "
          f"{baseline_ref or 'skipped'})")
    print(f"   {'workload':<24} {'before s/pt':>11} {'now s/pt':>9} {'now 1st pt':>10} "
          f"{'speedup':>8}")
    for network in ("resnet50", "bert_base"):
        for mode in MODES:
            now = time_points_now(network, mode, archs)
            before = None
            slow = mode == "unstructured"  # the old code: seconds (ResNet) to tens (BERT)
            if tree is not None and not (quick and slow and network == "bert_base"):
                barchs = archs[:1] if quick and slow else (
                    archs[:2] if slow and network == "bert_base" else archs)
                before = time_points_before(tree, network, mode, barchs,
                                            timeout=120 if quick else 900)
            entry = {**now, "before_per_point_s": before and before["per_point_s"]}
            if before:
                entry["speedup"] = before["per_point_s"] / now["per_point_s"]
                n = len(before["elapsed"])
                entry["cycles_identical"] = before["elapsed"] == now["elapsed"][:n]
            report["points"][f"{network} {mode}"] = entry
            b = f"{before['per_point_s']:11.3f}" if before else f"{'-':>11}"
            sp = f"{entry['speedup']:7.1f}x" if before else f"{'-':>8}"
            same = "" if not before else ("  cycles identical" if entry["cycles_identical"]
                                          else "  CYCLES DIFFER")
            print(f"   {network + ' ' + mode:<24} {b} {now['per_point_s']:9.3f} "
                  f"{now['first_point_s']:10.3f} {sp}{same}")
    if tree is not None:
        shutil.rmtree(tree, ignore_errors=True)

    layers = sim.load_topology(sim.bundled_topology("resnet50"))
    t0 = time.perf_counter()
    dask = DaskExecutor(n_workers=workers)
    dask.client.run(_warm_worker)
    report["dask_cluster_start_s"] = time.perf_counter() - t0
    local = LocalExecutor(workers)
    try:
        print(f"2. ResNet-50 sweeps, {workers} workers (local pool vs Dask LocalCluster, "
              f"started in {report['dask_cluster_start_s']:.1f} s)")
        base = sim.Arch(dram_words_per_cycle=16)
        for mode, change in MODES.items():
            pts = [sim.DesignPoint(a.with_(**change), MODE_DENSITY[mode])
                   for a in sim.grid_points(mode_grid(quick), base)]
            t_local, rows_l = timed_sweep(pts, layers, local)
            local.close()  # a fresh pool, cold caches, for the next sweep
            t_dask, rows_d = timed_sweep(pts, layers, dask)
            report["sweeps"][mode] = {
                "points": len(pts), "local_s": t_local, "dask_s": t_dask,
                "local_points_per_s": len(pts) / t_local,
                "dask_points_per_s": len(pts) / t_dask, "rows_equal": rows_l == rows_d}
            print(f"   {mode:<13} {len(pts):5d} pts  local {len(pts) / t_local:7.1f} pt/s  "
                  f"dask {len(pts) / t_dask:7.1f} pt/s  rows equal: {rows_l == rows_d}")

        points = mixed_points(quick)
        results, results_local = out_dir / "results", out_dir / "results_local"
        for d in (results, results_local):
            shutil.rmtree(d, ignore_errors=True)
        # both write their chunks to a Parquet results directory, as a real sweep would
        t_local, rows_l = timed_sweep(points, layers, local, out=results_local)
        local.close()
        t_dask, rows_d = timed_sweep(points, layers, dask, out=results)
        overhead = t_dask / t_local - 1
        report["mixed"] = {"points": len(points), "local_s": t_local, "dask_s": t_dask,
                           "dask_overhead": overhead, "rows_equal": rows_l == rows_d}
        print(f"3. mixed ResNet-50 sweep, {len(points)} points: local {t_local:.1f} s, "
              f"Dask {t_dask:.1f} s (both storing Parquet results): overhead {overhead:+.1%} "
              f"(target <= 10 % at >= 1,000 points); rows equal: {rows_l == rows_d}")
    finally:
        local.close()
        dask.close()

    from sparse_accel_sim.front_plot import plot_front

    objectives = ("elapsed_cycles", "energy_total_pj", "area_mm2")
    stored = sim.ResultsStore(results).rows()
    front = sim.pareto(stored, objectives)
    png = plot_front(stored, front, objectives, out_dir / "front.png",
                     title=f"ResNet-50: {len(stored)} design points "
                           f"(shape x dataflow x buffer x sparsity)")
    report["front"] = {"points": len(stored), "front": len(front), "png": str(png),
                       "members": [{k: r[k] for k in ("rows", "cols", "dataflow", "sparsity",
                                                      "density", "ifmap_sram_kb", *objectives)}
                                   for r in sorted(front, key=lambda r: r["elapsed_cycles"])]}
    print(f"   Pareto front of cycles, energy, area: {len(front)} of {len(stored)} points "
          f"-> {png}")
    for r in report["front"]["members"][:8]:
        print(f"     {r['rows']:>3}x{r['cols']:<3} {r['dataflow']} {r['sparsity']:<12} "
              f"d={r['density']} {r['ifmap_sram_kb']:g} KB  {r['elapsed_cycles']:>10} cyc  "
              f"{r['energy_total_pj'] / 1e6:9.1f} uJ  {r['area_mm2']:.3f} mm2")
    (out_dir / "dse.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small versions (well under 1 min)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes of both executors (default: all cores)")
    p.add_argument("--out-dir", default=str(ROOT / "bench" / "out" / "dse"),
                   help="where dse.json, front.png and results/ go")
    p.add_argument("--baseline-ref", default=BASELINE_REF,
                   help="git ref of the simulator to compare with ('' to skip)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    run(args.quick, args.workers, Path(args.out_dir), args.baseline_ref or None)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
