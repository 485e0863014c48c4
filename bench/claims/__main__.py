"""The claims report: ``python -m bench.claims [--quick | --tiny] [--device cuda]``.

Runs the experiments that check the hardware claims of the sparsity literature on the real
kernels and on the simulator (a preset modelling this machine), and writes
``<out>/claims.md`` (the table: claim, source, measured, simulated, verdict), ``claims.json``,
``claims_cells.csv`` and PNG plots in ``claims_plots/`` (``claims_cuda*`` with
``--device cuda``). On 2 idle CPU cores the full run takes 1-1.5 minutes (up to about 3 when
other work competes and cells are re-timed), ``--quick`` about 20 s, ``--tiny`` (tests)
seconds.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from .config import FULL, QUICK, TINY
from .run import run_claims

OUT = Path(__file__).resolve().parent.parent / "out"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the claims, print the table; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m bench.claims",
                                 description=__doc__.split("\n\n")[1])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a smaller run for CI (~20 s)")
    size.add_argument("--tiny", action="store_true", help="the smallest run, for tests")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="where the kernels run (cuda: the Triton kernels on a GPU)")
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default bench/out)")
    ap.add_argument("--seed", type=int, default=0, help="seed of weights and inputs")
    ap.add_argument("--backend", default=None, choices=["cpp", "triton", "reference"],
                    help="sparse_ops backend (default: the device's fast one)")
    ap.add_argument("--threads", type=int, default=None, help="torch / OpenMP threads")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    command = "python -m bench.claims " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    paths = run_claims(sizes, args.device, args.out, seed=args.seed, backend=args.backend,
                       command=command.strip(), progress=not args.no_progress)
    print(paths["md"].read_text().split("\n## ")[0])
    print(f"wrote {paths['md']}, {paths['json'].name}, {paths['csv'].name}, "
          f"{paths['plots'].name}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
