"""Load sparse, compute dense: the wide bitmap and N:M products on their dense panel against
their own sparse kernels and dense torch, W 4096 x 4096, per call after a torch op.

    python -m bench.panel [--n 16 64 256] [--dtypes float32,bfloat16] [--rounds 7]

Each cell is a ratio to dense torch fp32 (``W @ X``) in the same run, medians of calls each
right after an untimed torch matmul of another 4096 x 4096 weight (``bench.timing.in_a_model``;
the variants alternate call by call). bf16 rows compare with dense fp32 as well as with dense
bf16: on a CPU without native bf16 (AVX2) torch's bf16 matmul is no anchor (tens of times
slower than its fp32). Bounds: every path does the dense multiply-adds on the panel (2 M K N
FLOP); the sparse kernels do d x that. Writes ``panel.md`` / ``panel.json`` to
``bench/out/<cpu>-<simd>/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import sparse_ops as so
from bench import host
from bench.timing import in_a_model, median
from sparse_ops import _C

CASES = {
    "bitmap 0.5": ("bitmap", {"density": 0.5}),
    "bitmap 0.3": ("bitmap", {"density": 0.3}),
    "2:4": ("nm", {"n": 2, "m": 4}),
    "1:4": ("nm", {"n": 1, "m": 4}),
}


def _matrix(w: torch.Tensor, layout: str, kw: dict) -> so.SparseMatrix:
    if layout == "bitmap":
        return so.to_sparse(so.prune(w, "bitmap", density=kw["density"]), "bitmap")
    return so.to_sparse(so.prune(w, "nm", **kw), "nm", **kw)


def run(ns: list[int], dtypes: list[torch.dtype], rounds: int, size: int = 4096) -> list[dict]:
    """One row per (dtype, N): dense times and, per case, the panel / sparse ratios."""
    torch.manual_seed(0)
    w = torch.randn(size, size)
    other = torch.randn(size, size)
    mats = {name: _matrix(w, *spec) for name, spec in CASES.items()}
    # torch's bf16/fp16 matmul without native support (AVX2) takes seconds at N = 256
    native = bool({"avx512_bf16", "amx_bf16"} & set(host.cpu_features()))
    rows = []
    for dt in dtypes:
        ms = {k: v.to(dt) for k, v in mats.items()}
        wd = w.to(dt)
        for n in ns:
            x = torch.randn(size, n).to(dt)
            xo = torch.randn(size, n)
            variants = {"dense fp32": lambda x=x: w @ x.float()}
            if dt != torch.float32 and (native or n <= 16):
                variants[f"dense {dt}"] = lambda x=x, wd=wd: wd @ x
            for name, s in ms.items():
                variants[f"{name} panel"] = lambda s=s, x=x: (_C._set_panel("on"), so.matmul(s, x))
                variants[f"{name} sparse"] = lambda s=s, x=x: (_C._set_panel("off"),
                                                               so.matmul(s, x))
            with torch.no_grad():
                t = in_a_model(variants, lambda xo=xo: other @ xo,
                               rounds=rounds if n < 256 else max(3, rounds // 2))
            _C._set_panel("auto")
            med = {k: median(v) for k, v in t.items()}
            d = med["dense fp32"]
            rows.append({"dtype": str(dt).removeprefix("torch."), "N": n,
                         "dense_fp32_ms": d * 1e3,
                         "dense_fp32_gflops": 2 * size * size * n / d / 1e9,
                         "dense_same_dtype_ms": (med[f"dense {dt}"] * 1e3
                                                 if f"dense {dt}" in med else None),
                         "x_dense_fp32": {k: d / v for k, v in med.items()
                                          if not k.startswith("dense")}})
            print(rows[-1], flush=True)
    return rows


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def markdown(rows: list[dict]) -> str:
    names = list(rows[0]["x_dense_fp32"]) if rows else []
    lines = [f"Machine: {host.header()}", "",
             "x dense fp32 (W @ X, same run; > 1 is faster), per call after a torch op, medians",
             "", "| dtype | N | dense fp32 ms (GFLOP/s) | dense same dtype ms | "
             + " | ".join(names) + " |", "|" + "---|" * (4 + len(names))]
    for r in rows:
        lines.append(f"| {r['dtype']} | {r['N']} | {r['dense_fp32_ms']:.2f} "
                     f"({r['dense_fp32_gflops']:.0f}) | {_ms(r['dense_same_dtype_ms'])} | "
                     + " | ".join(f"{r['x_dense_fp32'][k]:.2f}" for k in names) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[16, 64, 256])
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = run(a.n, [getattr(torch, d) for d in a.dtypes.split(",")], a.rounds)
    out = a.out or host.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "panel.json").write_text(json.dumps({"host": host.header(), "rows": rows}, indent=1))
    (out / "panel.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
