"""Scratch benchmark of the raw C++ kernels (sparse_ops._C) against torch in the same run.

W is 4096 x 4096 fp32 at a given density (CSR: random; BSR: random 32x32 blocks; N:M: 2:4),
X is 4096 x N. Times are medians over --reps runs after a warm-up, torch.set_num_threads(T).

    .venv/bin/python -m bench.cpp_kernels_scratch --n 1 512 --density 0.1
"""

from __future__ import annotations

import argparse
import functools
import glob
import importlib.util
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_ext():
    if "sparse_ops._C" in sys.modules:
        return sys.modules["sparse_ops._C"]
    path = sorted(glob.glob(os.path.join(ROOT, "sparse_ops", "_C*.so")))[0]
    spec = importlib.util.spec_from_file_location("sparse_ops._C", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def median_ms(fn, reps: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def paired_ms(fns, reps: int) -> list[float]:
    """Median ms of each function, timed round-robin so that load changes hit all alike."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    for _ in range(reps):
        for f, t in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) * 1e3 for t in times]


def make_csr(w: torch.Tensor):
    s = w.to_sparse_csr()
    crow = s.crow_indices().to(torch.int32).numpy()
    col = s.col_indices().to(torch.int16 if w.shape[1] <= 32767 else torch.int32).numpy()
    return s, crow, col, s.values().numpy()


def make_bsr(w: torch.Tensor, bs: int):
    s = w.to_sparse_bsr((bs, bs))
    crow = s.crow_indices().to(torch.int32).numpy()
    col = s.col_indices().to(torch.int32).numpy()
    return s, crow, col, np.ascontiguousarray(s.values().numpy())


def make_nm(w: torch.Tensor, n: int, m: int):
    """2:4 (etc.) keeping the n largest |w| per group; K % m == 0 here."""
    rows, k = w.shape
    g = w.reshape(rows, k // m, m)
    pos = g.abs().topk(n, dim=-1).indices.sort(dim=-1).values
    vals = g.gather(-1, pos).reshape(rows, -1).contiguous()
    b = 1 if m == 2 else (2 if m <= 4 else 4)
    p = pos.reshape(rows, -1).numpy().astype(np.uint8)
    meta = np.zeros((rows, (p.shape[1] * b + 7) // 8), np.uint8)
    for t in range(p.shape[1]):
        o = t * b
        meta[:, o // 8] |= (p[:, t] << (o % 8)).astype(np.uint8)
    dense = torch.zeros_like(g).scatter_(-1, pos, g.gather(-1, pos)).reshape(rows, k)
    return vals.numpy(), meta, dense


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1, 8, 128, 512])
    ap.add_argument("--density", type=float, nargs="+", default=[0.5, 0.25, 0.1, 0.05, 0.01])
    ap.add_argument("--formats", nargs="+", default=["csr", "bsr", "nm"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--no-torch-sparse", action="store_true")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*Sparse.*beta.*")
    torch.set_num_threads(args.threads)
    C = load_ext()
    print(f"simd={C.simd_level()} threads={args.threads} size={args.size}")
    gen = torch.Generator().manual_seed(0)
    M = K = args.size
    w = torch.randn(M, K, generator=gen)
    rows = []
    for n in args.n:
        x = torch.randn(K, n, generator=gen)
        xn = x.numpy()
        dense = functools.partial(torch.mm, w, x)
        if "nm" in args.formats:
            vals, meta, _ = make_nm(w, 2, 4)
            out = np.empty((M, n), np.float32)
            ours = functools.partial(C.nm_spmm, vals, meta, xn, out, 2, 4, args.threads)
            t_dense, t = paired_ms([dense, ours], args.reps)
            print(f"N={n:4d} 2:4        ours {t:8.3f} ms  dense {t_dense:8.3f} ms  "
                  f"x{t_dense / t:5.2f} vs dense")
            rows.append(("nm2:4", n, 0.5, t, t_dense, float("nan")))
        for d in args.density:
            for fmt in args.formats:
                if fmt == "nm":
                    continue
                if fmt == "csr":
                    wm = w * (torch.rand(M, K, generator=gen) < d)
                    ts, crow, col, val = make_csr(wm)
                    out = np.empty((M, n), np.float32)
                    fn = functools.partial(C.csr_spmm, crow, col, val, xn, out, args.threads)
                else:
                    bm = torch.rand(M // 32, K // 32, generator=gen) < d
                    wm = w * bm.repeat_interleave(32, 0).repeat_interleave(32, 1)
                    ts, crow, col, val = make_bsr(wm, 32)
                    out = np.empty((M, n), np.float32)
                    fn = functools.partial(C.bsr_spmm, crow, col, val, xn, out, args.threads)
                fns = [dense, fn]
                if not args.no_torch_sparse:
                    fns.append(functools.partial(torch.sparse.mm, ts, x))
                res = paired_ms(fns, args.reps)
                t_dense, t = res[0], res[1]
                tsp = res[2] if len(res) > 2 else float("nan")
                ref = (wm @ x).numpy()
                fn()
                err = np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30)
                print(f"N={n:4d} {fmt} d={d:<5} ours {t:8.3f} ms  dense {t_dense:8.3f} ms  "
                      f"x{t_dense / t:5.2f} vs dense  torch.sparse {tsp:8.3f} ms "
                      f"(ours x{tsp / t:5.2f})  err {err:.1e}")
                rows.append((fmt, n, d, t, t_dense, tsp))
    return rows


if __name__ == "__main__":
    main()
