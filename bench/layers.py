"""Real layer sizes, per-call cost, bfloat16 and training products, beside torch, one run.

    python -m bench.layers            # every section (a few minutes on 2 cores)
    python -m bench.layers --quick    # fewer shapes and repeats (smoke run)
    SPARSE_OPS_SIMD=avx2 python -m bench.layers   # the AVX2 kernels on an AVX-512 machine

Sections (medians; each ratio is torch's time over ours in the same run, > 1: ours faster):

- ``layers``: ``SparseLinear`` vs ``nn.Linear`` (eager, ``no_grad``) at BERT / Llama layer
  sizes (out x in) 768x768, 3072x768, 768x3072, 5632x2048, 4096x4096, batch 1 and 16, for
  2:4, 1:4, csr at density 0.1 and 0.3 and bitmap at 0.5 and 0.3. In a model (the figure that
  counts): each call right after the previous layer (an ``nn.Linear`` of the same shape with
  other weights), the variants alternated call by call; alone: repeated calls.
- ``percall``: ``so.matmul`` on a 64 x 64 CSR with 100 nonzeros at N = 1 against ``torch.mv`` on
  the dense 64 x 64, and ``SparseLinear`` against ``nn.Linear`` on the same weight.
- ``bf16``: W 4096^2, N = 1, bfloat16 values and activations against the float32 time of the
  same layout, and against torch's bfloat16 ``mv`` (in a model).
- ``training``: ``spmm_t`` (the product of the backward, on the cached transposed structure)
  against the forward ``spmm`` of the same layout, W 4096^2, N = 128, density 0.1 and 0.5
  (in a model).

Writes ``bench/out/<cpu>-<simd>/layers.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from torch import nn

import sparse_ops as so
from bench import targets
from bench.host import header, out_dir
from bench.timing import alone, in_a_model, median, median_seconds
from sparse_ops import _C

SHAPES = [(768, 768), (3072, 768), (768, 3072), (5632, 2048), (4096, 4096)]
FORMATS = [("2:4", "nm", {"n": 2, "m": 4}), ("1:4", "nm", {"n": 1, "m": 4}),
           ("csr 0.1", "csr", {"density": 0.1}), ("csr 0.3", "csr", {"density": 0.3}),
           ("bitmap 0.5", "bitmap", {"density": 0.5}), ("bitmap 0.3", "bitmap", {"density": 0.3})]


def _sparse(w: torch.Tensor, layout: str, kw: dict) -> so.SparseMatrix:
    pruned = so.prune(w, layout, kw.get("density"), blocksize=kw.get("blocksize"),
                      n=kw.get("n"), m=kw.get("m"))
    return so.to_sparse(pruned, layout, **{k: v for k, v in kw.items() if k != "density"})


def _t(fn, repeat: int) -> float:
    return median_seconds(fn, repeat=repeat, warmup=3, min_time=0.02) * 1e3


def _alternated(dense, sparse, repeat: int, rounds: int = 3) -> tuple[float, float]:
    """Medians (ms) of ``dense`` and ``sparse`` timed in alternation (ABAB...), so drift of a
    shared machine falls on both; each round is a median of ``repeat`` samples."""
    td, ts = [], []
    for _ in range(rounds):
        td.append(_t(dense, repeat))
        ts.append(_t(sparse, repeat))
    return statistics.median(td), statistics.median(ts)


def bench_layers(shapes, batches, rounds: int) -> list[dict]:
    """SparseLinear vs nn.Linear at real layer sizes (ms, eager, no_grad): in a model (each
    call right after the previous layer, an ``nn.Linear`` of the same shape with other
    weights; the variants alternated call by call) and alone (repeated calls)."""
    rows = []
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for out_f, in_f in shapes:
            dense = nn.Linear(in_f, out_f)
            dense.weight.copy_(torch.randn(out_f, in_f, generator=g))
            prev = nn.Linear(in_f, out_f)  # the previous layer
            layers = {name: so.SparseLinear(_sparse(dense.weight, layout, kw), dense.bias)
                      for name, layout, kw in FORMATS}
            for b in batches:
                x = torch.randn(b, in_f, generator=g)
                variants = {"dense": lambda d=dense, x=x: d(x)}
                variants.update({name: (lambda m=m, x=x: m(x)) for name, m in layers.items()})
                model = in_a_model(variants, lambda p=prev, x=x: p(x), rounds)
                solo = alone(variants, max(1, rounds // 5))
                td, tda = median(model["dense"]) * 1e3, median(solo["dense"]) * 1e3
                for name in layers:
                    ts, tsa = median(model[name]) * 1e3, median(solo[name]) * 1e3
                    rows.append({"shape": f"{out_f}x{in_f}", "format": name, "batch": b,
                                 "dense_ms": td, "sparse_ms": ts, "speedup": td / ts,
                                 "dense_alone_ms": tda, "sparse_alone_ms": tsa,
                                 "speedup_alone": tda / tsa})
    return rows


def bench_percall(repeat: int) -> dict:
    """Per-call cost on a tiny CSR: so.matmul vs torch.mv, SparseLinear vs nn.Linear (us)."""
    g = torch.Generator().manual_seed(1)
    w = torch.zeros(64, 64)
    idx = torch.randperm(64 * 64, generator=g)[:100]
    w.view(-1)[idx] = torch.randn(100, generator=g)
    s = so.to_sparse(w, "csr")
    x = torch.randn(64, 1, generator=g)
    xv = x[:, 0]
    lin = nn.Linear(64, 64)
    with torch.no_grad():
        lin.weight.copy_(w)
        sl = so.SparseLinear(s, lin.bias)
        xb = torch.randn(1, 64, generator=g)
        # each pair in alternation (medians of rounds), like the layer rows
        mv, ours = (1e3 * t for t in _alternated(lambda: torch.mv(w, xv),
                                                 lambda: so.matmul(s, x), repeat, rounds=5))
        args = (s.crow_indices, s.col_indices, s.values, x)
        # the *_call twin (C++ CompositeImplicitAutograd: below autograd when no gradient is
        # needed) against the product op itself (its autograd kernel registered from Python)
        raw, plain = (1e3 * t for t in _alternated(
            lambda: torch.ops.sparse_ops.csr_spmm_call.default(*args),
            lambda: torch.ops.sparse_ops.csr_spmm.default(*args), repeat, rounds=5))
        dense_lin, sparse_lin = (1e3 * t for t in _alternated(lambda: lin(xb), lambda: sl(xb),
                                                              repeat, rounds=5))
    return {"torch_mv_us": mv, "so_matmul_us": ours, "op_call_us": raw, "op_plain_us": plain,
            "call_twin_saves_us": plain - raw,
            "matmul_over_mv": ours / mv, "nn_linear_us": dense_lin,
            "sparse_linear_us": sparse_lin, "linear_gap_us": sparse_lin - dense_lin}


BF16_FORMATS = [("csr 0.1", "csr", {"density": 0.1}),
                ("bsr 32x32 0.1", "bsr", {"density": 0.1, "blocksize": (32, 32)}),
                ("2:4", "nm", {"n": 2, "m": 4}), ("1:4", "nm", {"n": 1, "m": 4}),
                ("bitmap 0.5", "bitmap", {"density": 0.5})]


def bench_bf16(rounds: int, side: int = 4096) -> list[dict]:
    """bf16 values + activations vs fp32 of the same layout, and vs torch's bf16 mv (ms), each
    call right after a dense mv of the same shape and dtype (other weights)."""
    g = torch.Generator().manual_seed(2)
    w = torch.randn(side, side, generator=g)
    x = torch.randn(side, 1, generator=g)
    wb, xb = w.bfloat16(), x.bfloat16()
    prev32 = torch.randn(side, side, generator=g)
    prev16 = prev32.bfloat16()
    variants = {"mv32": lambda: torch.mv(w, x[:, 0]), "mv16": lambda: torch.mv(wb, xb[:, 0])}
    mats = {}
    for name, layout, kw in BF16_FORMATS:
        s = _sparse(w, layout, kw)
        mats[name] = (s, s.to(dtype=torch.bfloat16))
        variants[f"{name} fp32"] = lambda s=s: so.matmul(s, x)
        variants[f"{name} bf16"] = lambda sb=mats[name][1]: so.matmul(sb, xb)
    # the previous layer in the dtype of the call that follows
    def before() -> None:
        before.flip = not getattr(before, "flip", False)
        torch.mv(prev16 if before.flip else prev32, (xb if before.flip else x)[:, 0])

    model = in_a_model(variants, before, rounds)
    t = {k: median(v) * 1e3 for k, v in model.items()}
    rows = []
    for name, (s, sb) in mats.items():
        t32, t16 = t[f"{name} fp32"], t[f"{name} bf16"]
        rows.append({"format": name, "fp32_ms": t32, "bf16_ms": t16, "bf16_over_fp32": t16 / t32,
                     "torch_mv_fp32_ms": t["mv32"], "torch_mv_bf16_ms": t["mv16"],
                     "vs_torch_bf16_mv": t["mv16"] / t16,
                     "bf16_bytes_over_fp32": sb.nbytes / s.nbytes})
    return rows


def bench_training(rounds: int, side: int = 4096, n: int = 128) -> list[dict]:
    """spmm_t (cached transpose) vs the forward spmm of the same layout (ms), each call right
    after a dense product of the same shape (other weights)."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(side, side, generator=g)
    x = torch.randn(side, n, generator=g)
    prev = torch.randn(side, side, generator=g)
    variants = {}
    names = []
    for name, layout, kw in [("csr 0.1", "csr", {"density": 0.1}),
                             ("csr 0.5", "csr", {"density": 0.5}),
                             ("bsr 32x32 0.1", "bsr", {"density": 0.1, "blocksize": (32, 32)}),
                             ("bsr 32x32 0.5", "bsr", {"density": 0.5, "blocksize": (32, 32)}),
                             ("2:4", "nm", {"n": 2, "m": 4})]:
        s = _sparse(w, layout, kw)
        op = getattr(torch.ops.sparse_ops, f"{layout}_spmm_t")
        variants[f"{name} fwd"] = lambda s=s: so.matmul(s, x)
        variants[f"{name} bwd"] = lambda s=s, op=op: op(*s.structure(), s.values, x, side,
                                                         *s.params())
        names.append(name)
    model = in_a_model(variants, lambda: torch.mm(prev, x), rounds)
    rows = []
    for name in names:
        fwd, bwd = median(model[f"{name} fwd"]) * 1e3, median(model[f"{name} bwd"]) * 1e3
        rows.append({"format": name, "spmm_ms": fwd, "spmm_t_ms": bwd,
                     "spmm_t_over_spmm": bwd / fwd})
    return rows


def _md(title: str, rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    out = [f"### {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                     for v in r.values()) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every section, print markdown tables, write bench/out/layers_<simd>.{json,md}."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="two shapes, few repeats")
    ap.add_argument("--repeat", type=int, default=7, help="per-call samples (median of rounds)")
    ap.add_argument("--rounds", type=int, default=25,
                    help="calls per variant in a model (each after the previous layer)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sections", nargs="*", default=["layers", "percall", "bf16", "training"])
    ap.add_argument("--out", type=Path, default=None, help="default bench/out/<cpu>-<simd>")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeat = 3 if args.quick else args.repeat
    rounds = 5 if args.quick else args.rounds
    shapes = SHAPES[:2] if args.quick else SHAPES
    head = f"Machine: {header()}"
    result: dict = {"machine": head}
    if "layers" in args.sections:
        result["layers"] = bench_layers(shapes, [1, 16], rounds)
    if "percall" in args.sections:
        result["percall"] = [bench_percall(repeat)]
    if "bf16" in args.sections:
        result["bf16"] = bench_bf16(rounds, 1024 if args.quick else 4096)
    if "training" in args.sections:
        result["training"] = bench_training(rounds, 1024 if args.quick else 4096)
    result["csr_spmv_variant"] = _C._csr_spmv_choice()
    md = [head, "", f"AVX2 CSR SpMV variant: {result['csr_spmv_variant']}", ""]
    for key in ("layers", "percall", "bf16", "training"):
        if key in result:
            md.append(_md(key, result[key]))
    result["targets"] = targets.check("layers", result) if not args.quick else []
    md.append(targets.markdown(result["targets"]))
    text = "\n".join(md)
    print(text)
    out = args.out if args.out is not None else out_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "layers.json").write_text(json.dumps(result, indent=1))
    (out / "layers.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
