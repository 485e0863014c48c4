"""Sparse and quantized: int8 values (per-row scales) in every layout against torch's int8
weight-only product and dense bf16 / fp32, W 4096 x 4096, per call after a torch op.

    python -m bench.int8 [--n 1 16] [--rounds 15]

Anchors, in the same run: ``torch.ops.aten._weight_int8pack_mm`` (dense int8 weights with
bf16 scales, bf16 activations: torchao's int8 weight-only path on CPU), ``F.linear`` in bf16
and in fp32. Each sparse row is ``so.linear(x, W)`` with ``x (N, K)`` bf16 and ``W`` pruned then
quantized (``so.quantize``, one scale per output row), next to the same layout with bf16 values.
From N = 2 on, "W8A8" rows run bitmap 0.5, 2:4 and BSR with ``activation_dtype="int8"`` and the
W8A8 path forced (activations quantized per token in the call, integer dot products:
``sparse_ops/w8a8.py``; ``--dots vnni`` adds rows on another engine than the automatic one:
tdpbssd, else vpdpbusd); ``--n 1 16 256`` gives the prefill cell (dense bf16 is timed at
N <= 16, at N = 256, and wherever the CPU has native bf16).
Bytes: every tensor of the weight (values, indices, scales), read once a call; the bound of a
cell is its bytes against the anchor's at the anchor's bytes/s. Medians of calls each right
after an untimed fp32 matmul of another 4096 x 4096 weight (``bench.timing.in_a_model``; the
variants alternate call by call). Writes ``int8.md`` / ``int8.json`` to
``bench/out/<cpu>-<simd>/``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import sparse_ops as so
from bench import host, targets
from bench.timing import in_a_model, median
from sparse_ops import _C, w8a8

CASES = {
    "bitmap 0.5": ("bitmap", {"density": 0.5}),
    "2:4": ("nm", {"n": 2, "m": 4}),
    "1:4": ("nm", {"n": 1, "m": 4}),
    "csr 0.3": ("csr", {"density": 0.3}),
    "bsr 32² 0.3": ("bsr", {"density": 0.3, "blocksize": (32, 32)}),
}


W8A8_CASES = ("bitmap 0.5", "2:4", "bsr 32² 0.3")


def _matrix(w: torch.Tensor, layout: str, kw: dict) -> so.SparseMatrix:
    opts = {k: v for k, v in kw.items() if k != "density"}
    return so.to_sparse(so.prune(w, layout, kw.get("density"), **opts), layout, **opts)


def _int8pack(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8 of a dense ``w (M, K)`` and its bf16 scales ``(M,)``."""
    scale = (w.abs().amax(1) / 127).clamp_min(1e-12)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale.to(torch.bfloat16)


class Int8PackLinear(nn.Module):
    """A dense ``nn.Linear`` with per-row int8 weights through torch's own int8 weight-only
    product (``aten._weight_int8pack_mm``): the dense int8 anchor of ``bench.models``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach()
        q, scale = _int8pack(w.float())
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight", q)
        self.register_buffer("scales", scale.to(w.dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    @property
    def nbytes(self) -> int:
        return self.qweight.numel() + self.scales.numel() * self.scales.element_size()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        y = torch.ops.aten._weight_int8pack_mm(x2, self.qweight, self.scales.to(x.dtype))
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def int8pack_model(model: nn.Module, keep: tuple[str, ...] = ("lm_head",)) -> nn.Module:
    """Replace, in place, every plain ``nn.Linear`` of ``model`` whose name does not end with
    one of ``keep`` by an ``Int8PackLinear``; returns ``model``."""
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is nn.Linear and full.split(".")[-1] not in keep:
                setattr(mod, child_name, Int8PackLinear(child))
    return model


def dequantized_model(model: nn.Module) -> nn.Module:
    """Replace, in place, every ``Int8PackLinear`` by an ``nn.Linear`` holding its dequantized
    weight (``q * scale``) in the scales' dtype: the dense twin the int8 outputs are checked
    against."""
    for mod in list(model.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, Int8PackLinear):
                dt = child.scales.dtype
                lin = nn.Linear(child.in_features, child.out_features,
                                bias=child.bias is not None, dtype=dt)
                with torch.no_grad():
                    lin.weight.copy_((child.qweight.float() * child.scales.float()[:, None])
                                     .to(dt))
                    if child.bias is not None:
                        lin.bias.copy_(child.bias)
                setattr(mod, child_name, lin)
    return model


def run(ns: list[int], rounds: int, size: int = 4096, dots: tuple[str, ...] = ()) -> list[dict]:
    """One row per N: per variant the median ms, bytes of the weight and GB/s. ``dots``:
    W8A8 dot engines (``_C._int8_dots()`` names) timed beside the automatic choice, as rows
    ``"<weight> int8 W8A8 [<engine>]"``. The unnamed W8A8 rows run the engine the process
    started with (``SPARSE_OPS_INT8_DOT`` where set, else the automatic choice)."""
    dot0 = os.environ.get("SPARSE_OPS_INT8_DOT") or "auto"
    torch.manual_seed(0)
    w = torch.randn(size, size)
    other = torch.randn(size, size)
    wq, wscale = _int8pack(w)
    wb = w.bfloat16()
    q8 = {k: so.quantize(_matrix(w, *spec)) for k, spec in CASES.items()}
    # group-wise (128 along K): N:M applies the scales in registers at N = 1, the others
    # dequantize per call (sparse_ops/quantize.py)
    q8g = {f"{k} int8 g128": so.quantize(_matrix(w, *CASES[k]), group_size=128)
           for k in ("2:4", "bitmap 0.5")}
    b16 = {k: _matrix(w, *spec).to(torch.bfloat16) for k, spec in CASES.items()}
    a8 = {f"{k} int8 W8A8": q8[k].with_values(q8[k].values)  # a copy, its scales kept
          for k in W8A8_CASES}
    for s in a8.values():
        s.activation_dtype = "int8"
    nbytes = {"dense bf16": wb.numel() * 2, "dense fp32": w.numel() * 4,
              "int8pack_mm": wq.numel() + wscale.numel() * 2}
    nbytes.update({f"{k} int8": v.nbytes for k, v in q8.items()})
    nbytes.update({f"{k} bf16": v.nbytes for k, v in b16.items()})
    nbytes.update({k: v.nbytes for k, v in q8g.items()})
    nbytes.update({k: v.nbytes for k, v in a8.items()})
    native = bool({"avx512_bf16", "amx_bf16"} & set(host.cpu_features()))
    rows = []
    for n in ns:
        xb = torch.randn(n, size).bfloat16()
        xf = xb.float()
        xo = torch.randn(size, 64)
        variants = {
            "int8pack_mm": lambda xb=xb: torch.ops.aten._weight_int8pack_mm(xb, wq, wscale),
            "dense fp32": lambda xf=xf: F.linear(xf, w),
        }
        if native or n <= 16 or n == 256:
            variants["dense bf16"] = lambda xb=xb: F.linear(xb, wb)
        for k in CASES:
            variants[f"{k} int8"] = lambda xb=xb, s=q8[k]: so.linear(xb, s)
            variants[f"{k} bf16"] = lambda xb=xb, s=b16[k]: so.linear(xb, s)
        for k, s in q8g.items():
            variants[k] = lambda xb=xb, s=s: so.linear(xb, s)
        if n >= w8a8.MIN_TOKENS:
            # each call sets its engine: the variants alternate call by call
            for d in (dot0, *dots):
                for k, s in a8.items():
                    name = k if d == dot0 else f"{k} [{d}]"
                    nbytes[name] = s.nbytes
                    variants[name] = lambda xb=xb, s=s, d=d: (_C._set_int8_dot(d),
                                                              so.linear(xb, s))[1]
        w8a8.set_w8a8_mode("on")
        try:
            with torch.no_grad():
                t = in_a_model(variants, lambda xo=xo: other @ xo, rounds=rounds)
        finally:
            w8a8.set_w8a8_mode("auto")
            _C._set_int8_dot(dot0)
        med = {k: median(v) for k, v in t.items()}
        anchor = med["int8pack_mm"]
        bw = nbytes["int8pack_mm"] / anchor
        cells = {}
        for k, v in med.items():
            cells[k] = {"ms": v * 1e3, "MB": nbytes[k] / 1e6, "GB/s": nbytes[k] / v / 1e9,
                        "x_int8pack": anchor / v,
                        "bound_x_int8pack": nbytes["int8pack_mm"] / nbytes[k],
                        "x_dense_bf16": (med["dense bf16"] / v if "dense bf16" in med
                                         else None),
                        "x_dense_fp32": med["dense fp32"] / v}
        rows.append({"N": n, "anchor_GBps": bw / 1e9, "cells": cells})
        print({"N": n, **{k: round(c["x_int8pack"], 3) for k, c in cells.items()}}, flush=True)
    return rows


def flat_cells(rows: list[dict]) -> list[dict]:
    """One dict per (N, weight): the rows ``bench.targets`` reads."""
    return [{"N": r["N"], "weight": k, **c} for r in rows for k, c in r["cells"].items()]


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def markdown(rows: list[dict]) -> str:
    lines = [f"Machine: {host.header()}", "",
             "W 4096², activations bf16 (N, K); per call after a torch op, medians. Ratios > 1 "
             "are faster than the anchor; bound: the anchor's bytes over the cell's.", ""]
    for r in rows:
        lines += [f"### N = {r['N']} (int8pack_mm reads {r['anchor_GBps']:.1f} GB/s)", "",
                  "| weight | ms | MB | GB/s | x int8pack_mm (bound) | x dense bf16 | "
                  "x dense fp32 |", "|---|---|---|---|---|---|---|"]
        for k, c in r["cells"].items():
            lines.append(f"| {k} | {c['ms']:.3f} | {c['MB']:.1f} | {c['GB/s']:.1f} | "
                         f"{c['x_int8pack']:.2f} ({c['bound_x_int8pack']:.2f}) | "
                         f"{_f(c['x_dense_bf16'])} | {c['x_dense_fp32']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[1, 16])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--dots", nargs="*", default=[],
                    help="W8A8 dot engines to time beside the automatic one (e.g. vnni amx)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bad = [d for d in a.dots if d not in _C._int8_dots()]
    if bad:
        ap.error(f"--dots: {bad} not among this CPU's engines {_C._int8_dots()}")
    rows = run(a.n, a.rounds, dots=tuple(a.dots))
    out = a.out or host.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    data = {"host": host.header(), "rows": rows, "cells": flat_cells(rows)}
    checks = targets.check("int8", data)
    data["targets"] = checks
    (out / "int8.json").write_text(json.dumps(data, indent=1))
    (out / "int8.md").write_text(markdown(rows) + "\n" + targets.markdown(checks))
    print(markdown(rows))
    print(targets.markdown(checks))


if __name__ == "__main__":
    main()
