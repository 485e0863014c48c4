"""W8A8: int8 weights times activations quantized per token to int8, integer dot products.

A quantized matrix (``so.quantize(..., activation_dtype="int8")``, or ``so.sparsify(...,
weight_dtype="int8", activation_dtype="int8")``) lets its wide products (prefill: many tokens
at once) quantize the activations dynamically, one symmetric scale per token
(``quantize_activations``), and multiply the int8 weights by the int8 activations in integers:
``torch.ops.sparse_ops.{bitmap,nm,bsr}_spmm_w8a8`` (C++, the dense-panel design of the float
wide products with an int8 panel and int32 accumulators, BSR's blocks used as they are stored:
``csrc/panel_i8_kernels.h``; ``vpdpbusd`` where the CPU has VNNI, else on AVX2 the
``vpmaddubsw`` / ``vpmaddwd`` pair: ``dot_engine()``).

Where it runs, by measurement: CPU, ``cpp`` backend, bitmap, N:M and BSR layouts (BSR blocks a
multiple of 4 wide), per-row scales or groups of a multiple of 4 columns, at least
``MIN_TOKENS`` tokens. The first call of each
(layout, activation dtype, token bucket, density tenth) times the W8A8 product (quantizing
included) against the W8A16 one (the float activations with the int8 weights widened in
registers) and keeps the faster for the process; ``SPARSE_OPS_W8A8=on|off`` (or
``set_w8a8_mode``) forces it. Decode (one token) always runs W8A16: its SpMV is bound by
the weight's bytes, not by multiplies.

Accuracy: the activations' rounding adds about half a step per entry (``quantization_error``
on such a matrix measures the whole product); an activation holding an inf or NaN has no
int8 scale, so such a call runs W8A16. The result is exact given the quantized operands: the
integer sums are exact and each run of columns sharing a weight scale adds one rounded float
product, so the products match a float64 reference on ``xq * scale`` to float32 rounding.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch

from . import _C  # registers torch.ops.sparse_ops.*_spmm_w8a8
from .format import SparseMatrix

QMAX = 127
MIN_TOKENS = 2
LAYOUTS: tuple[str, ...] = ("bitmap", "nm", "bsr")

# (layout, activation dtype, token bucket, density tenth) -> True (W8A8) / False (W8A16),
# measured once.
_choice: dict[tuple[str, str, int, int], bool] = {}
_mode = {"value": os.environ.get("SPARSE_OPS_W8A8", "auto")}
_last = {"path": "none"}


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 of each token (row) of ``x (B, K)`` (float32 / bfloat16 / float16):
    ``(xq (B, K) int8 in [-127, 127], scales (B,) float32)``, ``x[t] ~ xq[t] * scales[t]``
    with ``scales[t] = max |x[t]| / 127`` (1 for a row of zeros) and ``xq = round(x / scale)``
    (half to even). A row holding an inf or NaN gets a non-finite scale."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"x: expected a 2-D (tokens, K) tensor, got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"x: expected float32, bfloat16 or float16, got {x.dtype}")
    xf = x.float()
    scale = xf.abs().amax(dim=1) / QMAX if x.shape[1] else xf.new_zeros(x.shape[0])
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # NaN stays NaN
    xq = torch.round(xf / scale[:, None]).clamp_(-QMAX, QMAX).to(torch.int8)
    return xq, scale


def set_w8a8_mode(mode: str) -> None:
    """``"auto"`` (measure, the default; forgets the kept choices), ``"on"`` (W8A8 wherever it
    applies) or ``"off"`` (never): a testing and tuning aid, as ``SPARSE_OPS_W8A8``."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"mode: expected 'auto', 'on' or 'off', got {mode!r}")
    _mode["value"] = mode
    if mode == "auto":
        _choice.clear()


def dot_engine() -> str:
    """The integer dot product the W8A8 kernels run on at the active SIMD level: ``"amx"``
    (AMX-INT8 ``tdpbssd`` tiles, avx512 level, where the CPU and OS allow it: the automatic
    choice there), ``"vnni"`` (``vpdpbusd``: AVX-VNNI at the avx2 level, AVX512-VNNI at
    avx512, where the CPU has it), ``"madd"`` (AVX2 ``vpmaddubsw`` + ``vpmaddwd``),
    ``"vnni-emulated"`` / ``"amx-emulated"`` (those engines with their instructions emulated
    exactly: testing aids) or ``"plain"`` (scalar loops).
    ``SPARSE_OPS_INT8_DOT=auto|amx|vnni|madd|vnni-emulated|amx-emulated|plain`` forces one at
    start (``sparse_ops._C._set_int8_dot`` later)."""
    return str(_C._int8_dot())


def kept_choices() -> dict[tuple[str, str, int, int], str]:
    """The measured choices so far: ``(layout, activation dtype, token bucket =
    tokens.bit_length() capped at 11, density tenth) -> "w8a8" | "w8a16"`` (forgotten by
    ``set_w8a8_mode("auto")``)."""
    return {k: "w8a8" if v else "w8a16" for k, v in _choice.items()}


def last_path() -> str:
    """``"w8a8"`` or ``"w8a16"``: how the last int8 product with ``activation_dtype="int8"``
    ran (``"none"`` before any)."""
    return _last["path"]


def applies(w: SparseMatrix, x2: torch.Tensor, backend: str | None) -> bool:
    """Whether ``x2 (B, K) @ w^T`` may run W8A8 (see the module docstring)."""
    gs = w.group_size
    return (w.activation_dtype == "int8" and w.layout in LAYOUTS and x2.is_cpu
            and backend in (None, "cpp") and x2.shape[0] >= MIN_TOKENS
            and (gs is None or gs % 4 == 0) and _mode["value"] != "off"
            and (w.layout != "bsr" or w.params()[1] % 4 == 0))


def spmm_w8a8(w: SparseMatrix, xq: torch.Tensor, x_scales: torch.Tensor) -> torch.Tensor:
    """``(M, B)`` float32: ``w``'s int8 values with their scales times ``(xq * x_scales)^T``,
    ``xq (B, K)`` int8 in [-127, 127], ``x_scales (B,)`` float32 (``quantize_activations``)."""
    op = getattr(torch.ops.sparse_ops, f"{w.layout}_spmm_w8a8")
    return op(*w.structure(), w.values, w.scales, xq, x_scales, w.group_size or 0, *w.params())


def _w8a8(x2: torch.Tensor, w: SparseMatrix, bias: torch.Tensor | None) -> torch.Tensor | None:
    """``x2 @ w^T + bias`` in W8A8, in x's dtype; None for activations with an inf or NaN
    (not checked under torch.compile, where such a token's output row is NaN)."""
    xq, xs = quantize_activations(x2)
    if not torch.compiler.is_compiling() and not bool(torch.isfinite(xs).all()):
        return None
    y = spmm_w8a8(w, xq, xs).t()
    if bias is not None:
        y = y + bias.float()  # float32 output, then x's dtype
    return y.to(x2.dtype)


def _bucket(w: SparseMatrix, x2: torch.Tensor) -> tuple[str, str, int, int]:
    """(layout, x's dtype, token bucket, density tenth): W8A16 runs at x's dtype's speed."""
    m, k = w.shape
    density = w.nnz / (m * k) if m * k else 0.0
    return (w.layout, str(x2.dtype).removeprefix("torch."), min(x2.shape[0].bit_length(), 11),
            min(int(density * 10), 10))


def _timed(f: Callable[[], torch.Tensor | None]) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def linear(x2: torch.Tensor, w: SparseMatrix, bias: torch.Tensor | None, backend: str | None,
           w8a16: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``x2 (B, K) @ w^T + bias`` for a ``w`` with ``activation_dtype="int8"``: W8A8 where it
    ``applies`` and is measured faster for the bucket (or forced by the mode), else
    ``w8a16()`` (the float-activation product)."""
    if not applies(w, x2, backend):
        _last["path"] = "w8a16"
        return w8a16()
    key = _bucket(w, x2)
    use = True if _mode["value"] == "on" else _choice.get(key)
    if torch.compiler.is_compiling():  # no timing while tracing: the kept choice, else W8A16
        use = bool(use)
    if use is None:  # each once to warm, once timed; keep the faster
        if _w8a8(x2, w, bias) is None:
            _last["path"] = "w8a16"
            return w8a16()
        w8a16()
        t8, t16 = _timed(lambda: _w8a8(x2, w, bias)), _timed(w8a16)
        use = _choice[key] = t8 < t16  # then this call runs the kept path
    if use:
        y = _w8a8(x2, w, bias)
        if y is not None:
            _last["path"] = "w8a8"
            return y
    _last["path"] = "w8a16"
    return w8a16()


def _fake(xq: torch.Tensor, rows: int) -> torch.Tensor:
    return xq.new_empty((rows, xq.shape[0]), dtype=torch.float32)


@torch.library.register_fake("sparse_ops::bitmap_spmm_w8a8")
def _bitmap_w8a8_fake(row_offsets: torch.Tensor, bitmap: torch.Tensor, values: torch.Tensor,
                      scales: torch.Tensor, xq: torch.Tensor, x_scales: torch.Tensor,
                      group_size: int, nnz: int) -> torch.Tensor:
    return _fake(xq, row_offsets.shape[0] - 1)


@torch.library.register_fake("sparse_ops::bsr_spmm_w8a8")
def _bsr_w8a8_fake(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor,
                   scales: torch.Tensor, xq: torch.Tensor, x_scales: torch.Tensor,
                   group_size: int, r: int, c: int) -> torch.Tensor:
    return _fake(xq, (crow.shape[0] - 1) * r)


@torch.library.register_fake("sparse_ops::nm_spmm_w8a8")
def _nm_w8a8_fake(metadata: torch.Tensor, values: torch.Tensor, scales: torch.Tensor,
                  xq: torch.Tensor, x_scales: torch.Tensor, group_size: int, n: int,
                  m: int) -> torch.Tensor:
    return _fake(xq, metadata.shape[0])
