"""Fake (meta) kernels: output shapes of every product, shared by the C++ and Triton ops.

Signatures match ``reference.py``; outputs take the dtype and device of the dense operand.
"""

from __future__ import annotations


def csr_spmm(crow, col, values, x):
    return x.new_empty(crow.shape[0] - 1, x.shape[1])


def csr_spmm_t(crow, col, values, d, num_cols):
    return d.new_empty(num_cols, d.shape[1])


def csr_sddmm(crow, col, a, b):
    return a.new_empty(col.shape[0])


def bsr_spmm(crow, col, values, x, r, c):
    return x.new_empty((crow.shape[0] - 1) * r, x.shape[1])


def bsr_spmm_t(crow, col, values, d, num_cols, r, c):
    return d.new_empty(num_cols, d.shape[1])


def bsr_sddmm(crow, col, a, b, r, c):
    return a.new_empty(col.shape[0], r, c)


def nm_spmm(metadata, values, x, n, m):
    return x.new_empty(values.shape[0], x.shape[1])


def nm_spmm_t(metadata, values, d, num_cols, n, m):
    return d.new_empty(num_cols, d.shape[1])


def nm_sddmm(metadata, a, b, n, m):
    return a.new_empty(a.shape[0], (b.shape[0] + m - 1) // m * n)


def csr_linear(crow, col, values, x, bias):
    return x.new_empty(x.shape[0], crow.shape[0] - 1)


def bsr_linear(crow, col, values, x, bias, r, c):
    return x.new_empty(x.shape[0], (crow.shape[0] - 1) * r)


def nm_linear(metadata, values, x, bias, n, m):
    return x.new_empty(x.shape[0], values.shape[0])


def bitmap_spmm(row_offsets, bitmap, values, x, nnz):
    return x.new_empty(row_offsets.shape[0] - 1, x.shape[1])


def bitmap_spmm_t(row_offsets, bitmap, values, d, num_cols, nnz):
    return d.new_empty(num_cols, d.shape[1])


def bitmap_sddmm(row_offsets, bitmap, a, b, nnz):
    return a.new_empty(nnz)


def bitmap_linear(row_offsets, bitmap, values, x, bias, nnz):
    return x.new_empty(x.shape[0], row_offsets.shape[0] - 1)


def fakes_of(layout: str) -> dict:
    """``{product: fake kernel}`` of ``layout`` (its functions here, by name)."""
    g = globals()
    return {p: g[f"{layout}_{p}"] for p in ("spmm", "spmm_t", "sddmm", "linear")}
