"""The C++ CPU kernels (``sparse_ops._C``) as ``torch.library`` custom ops.

Ops take the formats' plain tensors (docs/formats.md) in the order of ``reference.py``. The
kernels compute in float32 or float64; bfloat16 and float16 operands are widened to float32
and the result rounded back. Each kernel validates its indices before touching memory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import _C, fake
from .autograd import ProductOps, register_backend

_NATIVE = (torch.float32, torch.float64)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in _NATIVE:
        return dtype
    if dtype in (torch.bfloat16, torch.float16):
        return torch.float32
    raise TypeError(f"values: unsupported dtype {dtype} (float32/64, bfloat16, float16)")


def _np(t: Tensor, dtype: torch.dtype | None = None):
    t = t.detach()
    if dtype is not None:
        t = t.to(dtype)
    return t.contiguous().numpy()


def _run(kernel, out_shape, values: Tensor, index: tuple, floats: tuple, ints: tuple) -> Tensor:
    """Call ``kernel(*index, *floats, out, *ints, num_threads)`` and return ``out``."""
    cd = _compute_dtype(values.dtype)
    out = torch.empty(out_shape, dtype=cd)
    kernel(
        *(_np(t) for t in index),
        *(_np(t, cd) for t in floats),
        out.numpy(),
        *ints,
        torch.get_num_threads(),
    )
    return out if cd == values.dtype else out.to(values.dtype)


_EAGER: dict[str, Callable[..., Tensor]] = {}


def _define(name: str):
    """Register ``fn`` as the CPU custom op ``sparse_ops::<name>`` and keep the plain function
    for the eager fast path (no dispatcher hop when autograd and compile are not involved)."""

    def wrap(fn: Callable[..., Tensor]):
        _EAGER[name] = fn
        return torch.library.custom_op(f"sparse_ops::{name}", mutates_args=(), device_types="cpu")(
            fn
        )

    return wrap


def _transpose(crow: Tensor, col: Tensor, num_cols: int) -> tuple[Tensor, Tensor, Tensor]:
    crow_t, col_t, perm = _C.csr_transpose(_np(crow), _np(col), num_cols)
    return torch.from_numpy(crow_t), torch.from_numpy(col_t), torch.from_numpy(perm)


# --- CSR ------------------------------------------------------------------------------------
@_define("csr_spmm")
def csr_spmm(crow: Tensor, col: Tensor, values: Tensor, x: Tensor) -> Tensor:
    """``S @ x`` for CSR ``S (M, K)``, ``x (K, N)`` → ``(M, N)``."""
    fake.check_operands("csr_spmm", values, x)
    m = crow.shape[0] - 1
    return _run(_C.csr_spmm, (m, x.shape[1]), values, (crow, col), (values, x), ())


@_define("csr_spmm_t")
def csr_spmm_t(crow: Tensor, col: Tensor, values: Tensor, d: Tensor, num_cols: int) -> Tensor:
    """``S^T @ d`` for CSR ``S (M, K)``, ``d (M, N)`` → ``(K, N)``: transposes the structure."""
    fake.check_operands("csr_spmm_t", values, d)
    crow_t, col_t, perm = _transpose(crow, col, num_cols)
    vals_t = values[perm]
    return _run(_C.csr_spmm, (num_cols, d.shape[1]), values, (crow_t, col_t), (vals_t, d), ())


@_define("csr_sddmm")
def csr_sddmm(crow: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``<a[i], b[j]>`` at each stored ``(i, j)``: ``a (M, N)``, ``b (K, N)`` → ``(nnz,)``."""
    fake.check_operands("csr_sddmm", a, b)
    return _run(_C.csr_sddmm, (col.shape[0],), a, (crow, col), (a, b), ())


# --- BSR ------------------------------------------------------------------------------------
@_define("bsr_spmm")
def bsr_spmm(crow: Tensor, col: Tensor, values: Tensor, x: Tensor, r: int, c: int) -> Tensor:
    """``S @ x`` for BSR ``S (M, K)`` of ``r x c`` blocks → ``(M, N)``."""
    fake.check_operands("bsr_spmm", values, x)
    m = (crow.shape[0] - 1) * r
    return _run(_C.bsr_spmm, (m, x.shape[1]), values, (crow, col), (values, x), ())


@_define("bsr_spmm_t")
def bsr_spmm_t(
    crow: Tensor, col: Tensor, values: Tensor, d: Tensor, num_cols: int, r: int, c: int
) -> Tensor:
    """``S^T @ d`` for BSR: transposes the block structure and each block."""
    fake.check_operands("bsr_spmm_t", values, d)
    crow_t, col_t, perm = _transpose(crow, col, num_cols // c if c else 0)
    vals_t = values[perm].transpose(1, 2)
    return _run(_C.bsr_spmm, (num_cols, d.shape[1]), values, (crow_t, col_t), (vals_t, d), ())


@_define("bsr_sddmm")
def bsr_sddmm(crow: Tensor, col: Tensor, a: Tensor, b: Tensor, r: int, c: int) -> Tensor:
    """Block-sampled ``a @ b^T`` → ``(nnzb, r, c)``."""
    fake.check_operands("bsr_sddmm", a, b)
    return _run(_C.bsr_sddmm, (col.shape[0], r, c), a, (crow, col), (a, b), ())


# --- N:M ------------------------------------------------------------------------------------
@_define("nm_spmm")
def nm_spmm(metadata: Tensor, values: Tensor, x: Tensor, n: int, m: int) -> Tensor:
    """``S @ x`` for N:M ``S (M, K)`` → ``(M, N)``."""
    fake.check_operands("nm_spmm", values, x)
    return _run(
        lambda meta, v, xx, out, nn, mm, t: _C.nm_spmm(v, meta, xx, out, nn, mm, t),
        (values.shape[0], x.shape[1]), values, (metadata,), (values, x), (n, m),
    )


@_define("nm_spmm_t")
def nm_spmm_t(
    metadata: Tensor, values: Tensor, d: Tensor, num_cols: int, n: int, m: int
) -> Tensor:
    """``S^T @ d`` for N:M ``S (M, K)``, ``d (M, N)`` → ``(K, N)``."""
    fake.check_operands("nm_spmm_t", values, d)
    return _run(
        lambda meta, v, dd, out, nn, mm, t: _C.nm_spmm_t(v, meta, dd, out, nn, mm, t),
        (num_cols, d.shape[1]), values, (metadata,), (values, d), (n, m),
    )


@_define("nm_sddmm")
def nm_sddmm(metadata: Tensor, a: Tensor, b: Tensor, n: int, m: int) -> Tensor:
    """``<a[i], b[col]>`` at each N:M slot → ``(M, ceil(K/m) * n)``."""
    fake.check_operands("nm_sddmm", a, b)
    slots = (b.shape[0] + m - 1) // m * n
    return _run(_C.nm_sddmm, (a.shape[0], slots), a, (metadata,), (a, b), (n, m))


OPS = {
    "csr": ProductOps(csr_spmm, csr_spmm_t, csr_sddmm, 2, _EAGER["csr_spmm"]),
    "bsr": ProductOps(bsr_spmm, bsr_spmm_t, bsr_sddmm, 2, _EAGER["bsr_spmm"]),
    "nm": ProductOps(nm_spmm, nm_spmm_t, nm_sddmm, 1, _EAGER["nm_spmm"]),
}

register_backend(OPS)
