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


# Per layout: the fake kernels of (spmm, spmm_t, sddmm), and of the native linear.
FAKES = {
    "csr": (csr_spmm, csr_spmm_t, csr_sddmm),
    "bsr": (bsr_spmm, bsr_spmm_t, bsr_sddmm),
    "nm": (nm_spmm, nm_spmm_t, nm_sddmm),
}

LINEAR_FAKES = {"csr": csr_linear, "bsr": bsr_linear, "nm": nm_linear}
