"""The kernel table: torch dense, torch.sparse and sparse_ops, one run, same inputs.

    python -m bench.kernels                 # CPU, fp32, W 4096 x 4096, N in {1, 16, 128, 512}
    python -m bench.kernels --quick         # a small table (CI smoke run)
    python -m bench.kernels --device cuda   # fp16/bf16 on a GPU, W 4096^2 and 11008 x 4096

Each cell times ``Y = W @ X`` (W sparse M x K, X dense K x N) two ways, call by call
(bench/timing.py):

- **in a model** (the figure that counts): every call right after a torch op, the dense
  product of the same shape with other weights (as a layer follows the previous Linear), the
  variants of one row (dense, torch.sparse, ours) alternated call by call;
- **alone**: the same call repeated by itself (the steady state of a loop).

Ratios are ``dense / ours`` and ``torch.sparse / ours`` in the same mode (> 1: ours faster),
medians. Writes ``bench/out/<cpu>-<simd>/kernels_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import sparse_ops as so
from bench import targets
from bench.host import OUT, header, slug
from bench.timing import alone, in_a_model, median, median_seconds

ROUNDS = 15  # calls per variant in a model (each after the torch op), alternated call by call
ALONE_ROUNDS = 3  # rounds of 5 back-to-back calls per variant


@dataclass
class Cell:
    """One row of the table: times in milliseconds in a model (each call after a torch op),
    ``*_alone_ms`` repeated by themselves; ratios > 1 mean sparse_ops is faster."""

    device: str
    dtype: str
    shape: str
    n: int
    fmt: str
    density: float
    dense_ms: float
    torch_sparse: str
    torch_sparse_ms: float | None
    ours_ms: float
    speedup_vs_dense: float
    speedup_vs_torch_sparse: float | None
    dense_alone_ms: float
    ours_alone_ms: float
    speedup_alone: float
    ours_bytes: int
    dense_bytes: int
    ours_gbps: float
    ours_gflops: float
    frac_peak_bw: float
    frac_peak_flops: float


def measure_peaks(device: str, dtype: torch.dtype, repeat: int) -> tuple[float, float]:
    """(GB/s of a large copy, GFLOP/s of a large square mm) on ``device`` in ``dtype``."""
    big = torch.empty(64 * 2**20 // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(big)
    t = median_seconds(lambda: dst.copy_(big), device, repeat)
    bw = 2 * big.numel() * 4 / t / 1e9
    side = 4096 if device == "cuda" else 2048
    a = torch.randn(side, side, device=device).to(dtype)
    t = median_seconds(lambda: torch.mm(a, a), device, repeat)
    return bw, 2 * side**3 / t / 1e9


def formats_for(quick: bool, device: str) -> list[tuple[str, dict, float]]:
    """(layout, to_sparse kwargs, density) for each row."""
    dens = [0.1] if quick else [0.5, 0.25, 0.1, 0.05, 0.01]
    rows: list[tuple[str, dict, float]] = []
    if device == "cuda":
        rows += [("csr", {}, d) for d in ([0.05] if quick else [0.1, 0.05, 0.01])]
        rows += [("bsr", {"blocksize": b}, 0.1) for b in ((32, 32), (64, 64))]
        rows += [("bitmap", {}, d) for d in ([0.5] if quick else [0.5, 0.3])]
    else:
        rows += [("csr", {}, d) for d in dens]
        # bitmap against csr where bitmap is meant to win (density >= 0.2)
        bm = [0.5] if quick else [0.7, 0.5, 0.3, 0.2]
        rows += [("csr", {}, d) for d in bm if d not in dens]
        rows += [("bitmap", {}, d) for d in bm]
        rows += [("bsr", {"blocksize": (32, 32)}, d) for d in dens]
    rows += [("nm", {"n": 2, "m": 4}, 0.5), ("nm", {"n": 1, "m": 4}, 0.25)]
    return rows


def torch_sparse_for(layout: str, pruned: torch.Tensor, kw: dict, device: str):
    """torch's own sparse counterpart of a cell, or None where torch has none."""
    if layout in ("csr", "bitmap") or (layout == "nm" and device == "cpu"):
        return "torch.sparse CSR", pruned.to_sparse_csr()
    if layout == "bsr":
        return "torch.sparse BSR", pruned.to_sparse_bsr(kw["blocksize"])
    if layout == "nm" and kw == {"n": 2, "m": 4}:
        try:
            from torch.sparse import to_sparse_semi_structured
            return "torch 2:4 semi-structured", to_sparse_semi_structured(pruned)
        except Exception:  # no cuSPARSELt/CUTLASS path for this device or dtype
            return "torch 2:4 semi-structured (unavailable)", None
    return "none", None


def run(device: str, quick: bool, repeat: int, ns: list[int] | None,
        shapes: list[tuple[int, int]] | None, dtypes: list[torch.dtype]
        ) -> tuple[list[Cell], dict]:
    from tqdm import tqdm

    if shapes is None:
        shapes = [(512, 512)] if quick else (
            [(4096, 4096), (11008, 4096)] if device == "cuda" else [(4096, 4096)])
    if ns is None:
        ns = [1, 128] if quick else ([1, 16, 128, 2048] if device == "cuda" else [1, 16, 128, 512])
    rows = formats_for(quick, device)
    cells: list[Cell] = []
    gen = torch.Generator().manual_seed(0)
    total = len(shapes) * len(dtypes) * len(ns) * len(rows)
    bar = tqdm(total=total, desc="kernels", unit="cell")
    peaks = {dt: measure_peaks(device, dt, repeat) for dt in dtypes}
    rounds, alone_rounds = (3, 1) if quick else (ROUNDS, ALONE_ROUNDS)
    for (mm, kk) in shapes:
        w = torch.randn(mm, kk, generator=gen)
        w_prev = torch.randn(mm, kk, generator=gen)  # the previous layer's weights
        for dtype in dtypes:
            peak_bw, peak_flops = peaks[dtype]
            for n in ns:
                x = torch.randn(kk, n, generator=gen).to(device=device, dtype=dtype)
                wd = w.to(device=device, dtype=dtype)
                wp = w_prev.to(device=device, dtype=dtype)
                built = []
                for layout, kw, density in rows:
                    if layout == "nm":
                        pruned = so.prune(wd, "nm", **kw)
                    else:
                        pruned = so.prune(wd, layout, density, **kw)
                    s = so.to_sparse(pruned, layout, **kw)
                    name, ts = torch_sparse_for(layout, pruned, kw, device)
                    built.append((layout, kw, s, name, ts))
                    del pruned
                variants = {"dense": lambda: torch.mm(wd, x)}  # noqa: B023
                for j, (_, _, s, _, ts) in enumerate(built):
                    variants[f"ours{j}"] = lambda s=s: so.matmul(s, x)  # noqa: B023
                    if ts is not None:
                        variants[f"torch{j}"] = lambda ts=ts: torch.mm(ts, x)  # noqa: B023
                model = in_a_model(variants, lambda: torch.mm(wp, x), rounds,  # noqa: B023
                                   device=device)
                solo = alone(variants, alone_rounds, device=device)
                dense_t, dense_alone = median(model["dense"]), median(solo["dense"])
                for j, (layout, kw, s, name, ts) in enumerate(built):
                    ours, ours_alone = median(model[f"ours{j}"]), median(solo[f"ours{j}"])
                    ts_t = median(model[f"torch{j}"]) if ts is not None else None
                    moved = s.nbytes + (x.numel() + mm * n) * x.element_size()
                    gbps, gflops = moved / ours / 1e9, 2 * s.nnz * n / ours / 1e9
                    cells.append(Cell(
                        device, str(dtype).replace("torch.", ""), f"{mm}x{kk}", n, _fmt(layout, kw),
                        round(s.density, 4), dense_t * 1e3, name,
                        None if ts_t is None else ts_t * 1e3, ours * 1e3, dense_t / ours,
                        None if ts_t is None else ts_t / ours, dense_alone * 1e3,
                        ours_alone * 1e3, dense_alone / ours_alone, s.nbytes,
                        wd.numel() * wd.element_size(), gbps, gflops, gbps / peak_bw,
                        gflops / peak_flops,
                    ))
                    bar.update()
                del built
    bar.close()
    return cells, peaks


def _fmt(layout: str, kw: dict) -> str:
    if layout == "bsr":
        return f"bsr {kw['blocksize'][0]}x{kw['blocksize'][1]}"
    if layout == "nm":
        return f"{kw['n']}:{kw['m']}"
    return layout


def to_markdown(cells: list[Cell], machine: str, peaks: str = "") -> str:
    lines = [
        f"Machine: {machine}",
        "",
        "In a model: each call right after the dense product of the same shape (other weights), "
        "the row's variants alternated call by call; alone: the call repeated by itself. "
        "Ratios are median times, torch's over ours (> 1: sparse_ops faster); GB/s (in a model) "
        "counts the sparse operand as stored plus X and Y once; GFLOP/s counts 2 * nnz * N. "
        + peaks,
        "",
        "| shape | dtype | N | format | density | dense ms | ours ms | vs dense | torch.sparse "
        "| vs torch.sparse | alone: dense ms | alone: ours ms | alone: vs dense "
        "| bytes ours/dense | GB/s (of peak) | GFLOP/s (of peak) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        vs = "-" if c.speedup_vs_torch_sparse is None else f"{c.speedup_vs_torch_sparse:.2f}x"
        lines.append(
            f"| {c.shape} | {c.dtype} | {c.n} | {c.fmt} | {c.density:g} | {c.dense_ms:.3f} | "
            f"{c.ours_ms:.3f} | {c.speedup_vs_dense:.2f}x | {c.torch_sparse} | {vs} | "
            f"{c.dense_alone_ms:.3f} | {c.ours_alone_ms:.3f} | {c.speedup_alone:.2f}x | "
            f"{c.ours_bytes / c.dense_bytes:.3f} | {c.ours_gbps:.1f} ({c.frac_peak_bw:.0%}) | "
            f"{c.ours_gflops:.1f} ({c.frac_peak_flops:.0%}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="a small table for a smoke run")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs of each peak (median)")
    ap.add_argument("--n", type=int, nargs="*", help="columns of X (default by device)")
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")
    dtypes = [torch.float16, torch.bfloat16] if args.device == "cuda" else [torch.float32]
    cells, peaks = run(args.device, args.quick, args.repeat, args.n, None, dtypes)
    machine = header() if args.device == "cpu" else torch.cuda.get_device_name()
    peak_text = "Measured peaks: " + "; ".join(
        f"{str(dt).replace('torch.', '')}: copy {bw:.1f} GB/s, mm {fl:.0f} GFLOP/s"
        for dt, (bw, fl) in peaks.items()) + "."
    data = {"machine": machine, "peaks": peak_text, "cells": [asdict(c) for c in cells]}
    data["targets"] = targets.check(f"kernels_{args.device}", data) if not args.quick else []
    md = to_markdown(cells, machine, peak_text) + "\n" + targets.markdown(data["targets"])
    print(md)
    out = args.out / (slug() if args.device == "cpu" else "cuda")
    out.mkdir(parents=True, exist_ok=True)
    stem = f"kernels_{args.device}{'_quick' if args.quick else ''}"
    (out / f"{stem}.md").write_text(md)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=1))
    print(f"wrote {out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
