"""``python -m bench.dst``: the Fantastic Weights study (``--quick``: a reduced grid) and,
with ``--speed``, the speed and memory benchmark. Writes ``bench/out/dst.md`` and PNGs (the
study), ``bench/out/<cpu>-<simd>/dst_speed.json`` and ``.md`` (the speed benchmark)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.host import header, slug

from .report import write
from .study import StudyConfig, run_study


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m bench.dst", description=__doc__)
    p.add_argument("--quick", action="store_true", help="reduced grid, under two minutes")
    p.add_argument("--speed", action="store_true",
                   help="the speed/memory benchmark only (MLP 3072-1024-512-10)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..n-1)")
    p.add_argument("--speed-steps", type=int, default=300, help="timed steps per speed mode")
    p.add_argument("--threads", type=int, default=2, help="threads of the speed benchmark")
    p.add_argument("--report", action="store_true",
                   help="rewrite dst.md from the saved runs and speed results (no training)")
    p.add_argument("--out", type=Path, default=Path("bench/out"))
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.speed:
        from .report import speed_lines
        from .speed import run_all

        sp = run_all(a.speed_steps, a.threads)
        sp["machine"] = header()
        d = a.out / slug()  # per CPU and SIMD level, like the other benchmarks
        d.mkdir(parents=True, exist_ok=True)
        (d / "dst_speed.json").write_text(json.dumps(sp, indent=1))
        text = "\n".join([f"Machine: {sp['machine']}", "", *speed_lines(sp)])
        path = d / "dst_speed.md"
        path.write_text(text)
        print(text)
        return path
    if a.report:
        path = write(json.loads((a.out / "dst_runs.json").read_text()), a.out, _speeds(a.out))
        print(path.read_text())
        return path
    cfg = StudyConfig.quick() if a.quick else StudyConfig()
    if a.steps:
        cfg.steps = a.steps
    if a.seeds:
        cfg.seeds = tuple(range(a.seeds))
    print(f"dst study: tasks {cfg.tasks}, densities {cfg.densities}, seeds {cfg.seeds}")
    result = run_study(cfg)
    (a.out / "dst_runs.json").write_text(json.dumps(result, indent=1))
    path = write(result, a.out, _speeds(a.out))
    print(path.read_text())
    return path


def _speeds(out: Path) -> list[dict]:
    """Every saved speed result under ``out`` (``--speed`` runs, any thread count)."""
    return [json.loads(p.read_text()) for p in sorted(out.glob("**/dst_speed*.json"))]


if __name__ == "__main__":
    main()
