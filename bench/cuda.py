"""Triton kernels on an NVIDIA GPU: each layout with bf16 values and with int8 values (W8A16,
one scale per output row) against cuBLAS bf16 ``F.linear``, as a model runs.

    python -m bench.cuda [--n 1 16 256 4096] [--shapes 4096x4096 14336x4096] [--rounds 30]

Each cell is ``so.linear(x, W)`` with ``x (N, K)`` bf16 and ``W (M, K)`` pruned (and, for
"int8", quantized by ``so.quantize``) as the row names, beside torch's anchors in the same
run: dense bf16 ``F.linear`` (cuBLAS), and where this torch runs them on the GPU, torch's
int8 weight-only product (``aten._weight_int8pack_mm``) and 2:4 semi-structured bf16
(``to_sparse_semi_structured``, cuSPARSELt or CUTLASS).

**Timing.** Each call is enqueued right after a torch op (a bf16 matmul long enough that the
host has queued the whole call before the GPU reaches it) between two CUDA events: the pair
times the GPU's work for the call, gaps between its kernels included (and the host's time too,
wherever the call makes the host wait on the GPU). The variants alternate call by call and each
rotates through copies of its weight that together are several times the L2, so every call
reads its weight from HBM, as a model's layers each read their own. Beside it, ``host us`` is
the host's enqueue time of the call (Python, checks, launches): what a decode step pays per
layer when the GPU waits on the host, and what a CUDA graph removes.

**Bytes.** The weight's (``S.nbytes``: values, indices, scales), x's and y's, each once; the
bound of a cell is those bytes at the device-to-device copy bandwidth measured in the same run
(bytes read plus written). FLOPs: ``2 nnz N`` (``2 M K N`` dense).

**Check.** Each variant's first output against a float64 product with its own weight (the
pruned, or dequantized, one): relative error, which must stay under 1e-2 (bf16 output).
Writes ``bench/out/cuda/cuda.json`` and ``cuda.md``; exits 1 if a check fails.

With ``--device cpu`` under ``TRITON_INTERPRET=1`` the same code runs the Triton kernels in the
interpreter on small sizes (a smoke run of this script, timings meaningless).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import sparse_ops as so
from bench.host import OUT
from bench.int8 import CASES, _int8pack, _matrix
from bench.timing import median

L2_MULTIPLE = 4  # weight copies of a variant, in bytes, at least this many times the L2
MAX_COPIES = 32


def _copies(make: Callable[[], object], nbytes: int, l2: int) -> list[object]:
    """Independent copies (own memory) of one weight, together >= L2_MULTIPLE x the L2."""
    n = min(MAX_COPIES, max(2, math.ceil(L2_MULTIPLE * l2 / max(nbytes, 1))))
    return [make() for _ in range(n)]


class Clock:
    """Per-call times on ``device``: CUDA events on a GPU, the host clock elsewhere."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"

    def start(self) -> object:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def stop(self, t0: object) -> Callable[[], float]:
        """A function that gives the seconds since ``t0`` (after a synchronisation)."""
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return lambda: t0.elapsed_time(e) / 1e3
        dt = time.perf_counter() - t0
        return lambda: dt

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def timed_in_a_model(variants: dict[str, list[Callable[[], object]]],
                     before: Callable[[], object], rounds: int, device: str,
                     warmup: int = 3) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(device seconds, host enqueue seconds) per call of each variant: each call right after
    ``before()``, the variants alternated call by call, each rotating through its copies."""
    clock = Clock(device)
    for fns in variants.values():  # every copy once, untimed: each weight is checked at its
        for fn in fns:  # first call and cached, as a model's layers are after their first
            fn()
    clock.sync()
    dev: dict[str, list[float]] = {k: [] for k in variants}
    host: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(warmup + rounds):
        pending = []
        for name, fns in variants.items():
            before()
            t0 = clock.start()
            h0 = time.perf_counter()
            fns[r % len(fns)]()
            h = time.perf_counter() - h0
            pending.append((name, clock.stop(t0), h))
        clock.sync()
        if r >= warmup:
            for name, get, h in pending:
                dev[name].append(get())
                host[name].append(h)
    return dev, host


def copy_bandwidth(device: str) -> float:
    """Bytes/s of a 1 GiB device-to-device copy (read + written), median of 10."""
    n = (2**30 if device == "cuda" else 2**24) // 4
    a = torch.randn(n, device=device)
    b = torch.empty_like(a)
    clock = Clock(device)
    ts = []
    for _ in range(12):
        t0 = clock.start()
        b.copy_(a)
        get = clock.stop(t0)
        clock.sync()
        ts.append(get())
    return 2 * a.numel() * 4 / median(ts[2:])


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    """``||y - ref|| / ||ref||`` in float64 (inf if y is not finite)."""
    y = y.double()
    if not torch.isfinite(y).all():
        return math.inf
    return float((y - ref).norm() / ref.norm().clamp_min(1e-300))


def _torch_anchors(w: torch.Tensor, w24: torch.Tensor, device: str) -> dict[str, object]:
    """torch's own int8 weight-only and 2:4 weights on ``device``, where this torch runs
    them there (each tried once on a small input)."""
    out: dict[str, object] = {}
    q, scale = _int8pack(w)
    q, scale = q.to(device), scale.to(device)
    try:
        x = torch.randn(2, w.shape[1], device=device, dtype=torch.bfloat16)
        torch.ops.aten._weight_int8pack_mm(x, q, scale)
        out["torch int8pack_mm"] = (q, scale)
    except Exception as e:  # no kernel for this device in this torch
        print(f"torch int8pack_mm unavailable on {device}: {str(e).splitlines()[0]}")
    if device == "cuda":
        try:
            from torch.sparse import to_sparse_semi_structured

            s24 = to_sparse_semi_structured(w24.to(device, torch.bfloat16))
            F.linear(torch.randn(8, w.shape[1], device=device, dtype=torch.bfloat16), s24)
            out["torch 2:4 bf16"] = w24
        except Exception as e:
            print(f"torch 2:4 semi-structured unavailable: {str(e).splitlines()[0]}")
    return out


def run(shapes: list[tuple[int, int]], ns: list[int], rounds: int, device: str,
        layouts: list[str], save: Callable[[list[dict], dict], None] = lambda r, p: None
        ) -> tuple[list[dict], dict]:
    """One row per (shape, N, weight): device ms, host us, GB/s, ratios, bound, error.
    ``save(rows, props)`` is called after each (shape, N), so a cut-short run keeps its cells."""
    torch.manual_seed(0)
    props = {"device": device}
    l2 = 2**20
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        l2 = int(getattr(p, "L2_cache_size", 50 * 2**20))
        props.update(name=p.name, sms=p.multi_processor_count, l2_bytes=l2,
                     torch=torch.__version__, triton=__import__("triton").__version__)
    bw = copy_bandwidth(device)
    props["copy_GBps"] = bw / 1e9
    print(props, flush=True)
    big = 8192 if device == "cuda" else 256
    a = torch.randn(big, big, device=device, dtype=torch.bfloat16)
    b = torch.randn(big, big // 4, device=device, dtype=torch.bfloat16)
    before = lambda: a @ b  # noqa: E731 - about 0.35 ms of bf16 tensor-core work on an H200

    rows, failed = [], []
    props["failed"] = failed
    for M, K in shapes:
        w = torch.randn(M, K)
        wb = w.bfloat16()
        mats = {f"{k} bf16": _matrix(w, *CASES[k]).to(torch.bfloat16) for k in layouts}
        mats.update({f"{k} int8": so.quantize(_matrix(w, *CASES[k])) for k in layouts})
        w24 = mats["2:4 bf16"].to_dense() if "2:4 bf16" in mats else _matrix(
            w, *CASES["2:4"]).to_dense()
        anchors = _torch_anchors(w, w24, device)
        weights: dict[str, tuple[list, torch.Tensor, int, int]] = {}  # copies, ref W, bytes, nnz
        weights["dense bf16"] = (
            _copies(lambda wb=wb: wb.to(device, copy=True), wb.numel() * 2, l2),
            wb.double(), wb.numel() * 2, M * K)
        if "torch int8pack_mm" in anchors:
            q, sc = anchors["torch int8pack_mm"]
            nb = q.numel() + sc.numel() * 2
            weights["torch int8pack_mm"] = (
                _copies(lambda q=q, sc=sc: (q.clone(), sc.clone()), nb, l2),
                q.double().cpu() * sc.double().cpu()[:, None], nb, M * K)
        if "torch 2:4 bf16" in anchors:
            from torch.sparse import to_sparse_semi_structured

            w24b = w24.to(device, torch.bfloat16)
            nb = M * K // 2 * 2 + M * K // 8  # values + 2-bit positions (cuSPARSELt's layout)
            weights["torch 2:4 bf16"] = (
                _copies(lambda w=w24b: to_sparse_semi_structured(w.clone()), nb, l2),
                w24.bfloat16().double(), nb, M * K // 2)
        for k, s in mats.items():
            weights[k] = (_copies(lambda s=s: s.to(device), s.nbytes, l2),
                          s.to_dense().double(), s.nbytes, s.nnz)
        for n in ns:
            x = torch.randn(n, K, device=device, dtype=torch.bfloat16)
            calls: dict[str, list[Callable[[], object]]] = {}
            for k, (cps, _, _, _) in weights.items():
                if k == "dense bf16":
                    calls[k] = [lambda c=c, x=x: F.linear(x, c) for c in cps]
                elif k == "torch int8pack_mm":
                    calls[k] = [lambda c=c, x=x: torch.ops.aten._weight_int8pack_mm(x, *c)
                                for c in cps]
                elif k == "torch 2:4 bf16":
                    calls[k] = [lambda c=c, x=x: F.linear(x, c) for c in cps]
                else:
                    calls[k] = [lambda c=c, x=x: so.linear(x, c, backend="triton") for c in cps]
            errs = {}
            for k in list(calls):
                try:
                    y = calls[k][0]()
                except Exception as e:  # torch's anchors: not every N or dtype is supported
                    if k.startswith("torch "):
                        print(f"{k} skipped at N={n}: {str(e).splitlines()[0]}")
                        del calls[k]
                        continue
                    raise
                errs[k] = rel_err(y, x.double() @ weights[k][1].to(device).T)
                if errs[k] > 1e-2:
                    failed.append(f"{M}x{K} N={n} {k}: rel err {errs[k]:.2e}")
            with torch.no_grad():
                dev_t, host_t = timed_in_a_model(calls, before, rounds, device)
            dense = median(dev_t["dense bf16"])
            for k in calls:
                t = median(dev_t[k])
                _, _, nbytes, nnz = weights[k]
                moved = nbytes + 2 * n * (K + M)
                rows.append({
                    "shape": f"{M}x{K}", "N": n, "weight": k, "ms": t * 1e3,
                    "host_us": median(host_t[k]) * 1e6, "MB": nbytes / 1e6,
                    "GBps": moved / t / 1e9, "frac_copy_bw": moved / t / bw,
                    "TFLOPs": 2 * nnz * n / t / 1e12, "x_dense_bf16": dense / t,
                    "bound_x_dense_bf16": (wb.numel() * 2 + 2 * n * (K + M)) / moved,
                    "rel_err": errs[k]})
            print({"shape": f"{M}x{K}", "N": n,
                   **{r["weight"]: round(r["x_dense_bf16"], 2) for r in rows[-len(calls):]}},
                  flush=True)
            props["failed"] = failed
            save(rows, props)
    return rows, props


def markdown(rows: list[dict], props: dict) -> str:
    lines = [f"Machine: {props.get('name', props['device'])} ({props.get('sms', '-')} SMs, "
             f"L2 {props.get('l2_bytes', 0) / 2**20:.0f} MiB), torch {props.get('torch', '')}, "
             f"Triton {props.get('triton', '')}; device-to-device copy "
             f"{props['copy_GBps']:.0f} GB/s (read + written).", "",
             "x bf16 (N, K), W pruned / quantized per row; each call after a bf16 matmul, CUDA "
             "events, weights rotated past the L2; medians. Ratios > 1 are faster than cuBLAS "
             "bf16; bound: dense bf16's bytes over the cell's. `host us`: the host's enqueue "
             "time of the call.", ""]
    for shape in dict.fromkeys(r["shape"] for r in rows):
        for n in dict.fromkeys(r["N"] for r in rows if r["shape"] == shape):
            lines += [f"### W {shape}, N = {n}", "",
                      "| weight | ms | host us | MB | GB/s | of copy BW | TFLOP/s | "
                      "x dense bf16 (bound) | rel err |", "|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                if r["shape"] == shape and r["N"] == n:
                    lines.append(
                        f"| {r['weight']} | {r['ms']:.4f} | {r['host_us']:.0f} | "
                        f"{r['MB']:.1f} | {r['GBps']:.0f} | {r['frac_copy_bw']:.0%} | "
                        f"{r['TFLOPs']:.1f} | {r['x_dense_bf16']:.2f} "
                        f"({r['bound_x_dense_bf16']:.2f}) | {r['rel_err']:.1e} |")
            lines.append("")
    if props.get("failed"):
        lines += ["**Failed checks:**", *[f"- {f}" for f in props["failed"]], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[1, 16, 256, 4096])
    ap.add_argument("--shapes", nargs="*", default=["4096x4096"], help="MxK")
    ap.add_argument("--layouts", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--out", type=Path, default=OUT / "cuda")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes]
    a.out.mkdir(parents=True, exist_ok=True)

    def save(rows: list[dict], props: dict) -> None:
        (a.out / "cuda.json").write_text(json.dumps({"props": props, "rows": rows}, indent=1))
        (a.out / "cuda.md").write_text(markdown(rows, props) + "\n")

    rows, props = run(shapes, a.n, a.rounds, a.device, a.layouts, save)
    print(markdown(rows, props))
    if props["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
