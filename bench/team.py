"""The thread mechanism, W 4096 x 4096, fp32: each sparse product alone, right after a 2-thread
torch op, beside a busy 2-thread torch process; and the torch op right after the product.

    python -m bench.team            # N = 1 and 16, 2:4, csr 0.1, bitmap 0.5, bsr 32x32 0.1
    python -m bench.team --quick    # a smoke run (small counts)

The torch op is a LayerNorm over (16, 4096) (parallel: it runs on torch's 2 threads, and it
touches 256 KiB, so the product's operands stay where the repeated calls left them): what
differs between "alone" and "after a torch op" is the state of the threads, not the caches.
Each cell is a block of calls of one variant, the variants taking turns in rounds; times are
per call (``time.perf_counter``), medians, p90 for the busy neighbour.

Targets (issue 20), printed met / missed:
- after a torch op / alone <= 1.15 (each layout, N);
- the torch op right after the product / the torch op right after the dense product of the
  same shape (torch's own op in the product's place) <= 1.15. The table also gives the torch
  op right after itself: after any product that streams megabytes the op's operands have left
  L1/L2, for torch's dense product as for ours;
- beside the busy process: median / quiet median <= 1.5, and p90 / quiet median no worse
  than that of torch's own op reading the same bytes (``t.sum()`` over ``S.nbytes``).

Writes ``bench/out/<cpu>-<simd>/team.json`` and ``team.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

import sparse_ops as so
from bench import targets
from bench.busy import BusyLoad
from bench.host import header, out_dir
from bench.timing import median, percentile

SIDE = 4096
LAYOUTS = [("2:4", "nm", {"n": 2, "m": 4}), ("csr 0.1", "csr", {"density": 0.1}),
           ("bitmap 0.5", "bitmap", {"density": 0.5}),
           ("bsr 32x32 0.1", "bsr", {"density": 0.1, "blocksize": (32, 32)})]


def _sparse(w: torch.Tensor, layout: str, kw: dict) -> so.SparseMatrix:
    kw = dict(kw)
    density = kw.pop("density", None)
    return so.to_sparse(so.prune(w, layout, density, **kw), layout, **kw)


def _block(fn: Callable[[], object], before: Callable[[], object] | None, calls: int,
           out: list[float]) -> None:
    """``calls`` timed calls of ``fn``, each right after ``before()`` (untimed) if given."""
    for _ in range(calls):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)


def measure(rounds: int, calls: int, ns: list[int], busy: BusyLoad | None) -> list[dict]:
    """Every cell of the table (times in ms)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(SIDE, SIDE, generator=g)
    ln = torch.nn.LayerNorm(SIDE)
    h = torch.randn(16, SIDE, generator=g)
    op = lambda: ln(h)  # noqa: E731  (the 2-thread torch op)
    mats = [(name, _sparse(w, layout, kw)) for name, layout, kw in LAYOUTS]
    rows = []
    with torch.no_grad():
        for n in ns:
            x = torch.randn(SIDE, n, generator=g)
            fns = {"dense": lambda x=x: torch.mm(w, x)}
            fns.update({name: (lambda s=s, x=x: so.matmul(s, x)) for name, s in mats})
            sums = {name: torch.randn(max(s.nbytes // 4, 1), generator=g) for name, s in mats}
            sums["dense"] = w.view(-1)
            keys = ["alone", "after", "op_after", "op_op", "busy", "sum_quiet", "sum_busy"]
            t: dict[str, dict[str, list[float]]] = {k: {m: [] for m in fns} for k in keys}
            for _ in range(rounds):
                for name, fn in fns.items():
                    fn()
                    fn()
                    _block(fn, None, calls, t["alone"][name])
                    _block(fn, op, calls, t["after"][name])
                    _block(op, fn, calls, t["op_after"][name])
                    _block(op, op, calls, t["op_op"][name])
                    s = sums[name]
                    s.sum()
                    _block(s.sum, None, calls, t["sum_quiet"][name])
            if busy is not None:
                busy.on()
                try:
                    for _ in range(rounds):
                        for name, fn in fns.items():
                            fn()
                            _block(fn, None, calls, t["busy"][name])
                            _block(sums[name].sum, None, calls, t["sum_busy"][name])
                finally:
                    busy.off()
            for name in fns:
                m = {k: median(v[name]) * 1e3 for k, v in t.items() if v[name]}
                row = {"layout": name, "n": n, **{f"{k}_ms": v for k, v in m.items()},
                       "after_over_alone": m["after"] / m["alone"],
                       "op_after_over_op_op": m["op_after"] / m["op_op"],
                       "op_after_over_op_after_dense":
                           m["op_after"] / (median(t["op_after"]["dense"]) * 1e3)}
                if t["busy"][name]:
                    q = m["alone"]
                    row["busy_median_over_quiet"] = m["busy"] / q
                    row["busy_p90_over_quiet"] = percentile(t["busy"][name], 0.9) * 1e3 / q
                    row["sum_busy_p90_over_quiet"] = (
                        percentile(t["sum_busy"][name], 0.9) * 1e3 / m["sum_quiet"])
                rows.append(row)
    return rows


def verdicts(rows: list[dict]) -> list[dict]:
    """Each target of issue 20 (``bench/targets.py``) on each sparse row: value, limit, met."""
    return targets.check("team", {"rows": rows})


def to_markdown(head: str, rows: list[dict], checks: list[dict]) -> str:
    lines = [f"Machine: {head}", "",
             "W 4096 x 4096 fp32; the torch op is LayerNorm over (16, 4096) on 2 threads. "
             "Times are medians per call (ms); ratios > 1 are slowdowns.", "",
             "| layout | N | alone | after a torch op | ratio | op after it (us) | op after op "
             "(us) | ratio to after op | ratio to after dense | busy median / quiet "
             "| busy p90 / quiet | t.sum() busy p90 / quiet |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        busy = (f"{r['busy_median_over_quiet']:.2f} | {r['busy_p90_over_quiet']:.2f} | "
                f"{r['sum_busy_p90_over_quiet']:.2f}" if "busy_median_over_quiet" in r
                else "- | - | -")
        lines.append(
            f"| {r['layout']} | {r['n']} | {r['alone_ms']:.3f} | {r['after_ms']:.3f} | "
            f"{r['after_over_alone']:.2f} | {r['op_after_ms'] * 1e3:.1f} | "
            f"{r['op_op_ms'] * 1e3:.1f} | {r['op_after_over_op_op']:.2f} | "
            f"{r['op_after_over_op_after_dense']:.2f} | {busy} |")
    lines += ["", targets.markdown(checks)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts, no busy neighbour")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--calls", type=int, default=5, help="timed calls per block")
    ap.add_argument("--no-busy", action="store_true", help="skip the busy-neighbour columns")
    ap.add_argument("--busy", default="matmul", choices=["matmul", "exp"],
                    help="the neighbour: a 2048^2 matmul loop (cores) or exp on 4M floats "
                         "(cores, caches and memory bus)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    rounds, calls = (2, 2) if args.quick else (args.rounds, args.calls)
    busy = None if (args.quick or args.no_busy) else BusyLoad(kind=args.busy)
    try:
        rows = measure(rounds, calls, [1, 16], busy)
    finally:
        if busy is not None:
            busy.close()
    checks = verdicts(rows)
    head = header()
    md = to_markdown(head, rows, checks)
    print(md)
    d = out_dir()
    (d / "team.json").write_text(json.dumps({"machine": head, "rows": rows, "targets": checks},
                                            indent=1))
    (d / "team.md").write_text(md)
    print(f"wrote {d / 'team.md'} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
