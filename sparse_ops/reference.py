"""The reference backend: every product in plain torch ops, differentiable by torch itself.

Each format's three products take the format's plain tensors (docs/formats.md):

- ``spmm(*structure, values, x, *params)``: ``S @ x``, ``x: (K, N)`` → ``(M, N)``
- ``spmm_t(*structure, values, d, num_cols, *params)``: ``S^T @ d``, ``d: (M, N)`` → ``(K, N)``
- ``sddmm(*structure, a, b, *params)``: ``<a[i], b[j]>`` at each stored ``(i, j)``, shaped like
  ``values``

with structure ``(crow, col)`` and params ``()`` for CSR, ``(crow, col)`` and ``(R, C)`` for
BSR, ``(metadata,)`` and ``(n, m)`` for N:M, ``(row_offsets, bitmap)`` and ``(nnz,)`` for
bitmap. They expand the pattern to explicit (row, col) lists, so they are for checking the fast
kernels on modest sizes, not for speed.
"""

from __future__ import annotations

import torch

from .bitmap import unpack_mask
from .nm import num_groups, unpack_positions


def _csr_rows(crow: torch.Tensor, nnz: int) -> torch.Tensor:
    counts = crow.diff().long()
    rows = torch.arange(crow.numel() - 1, device=crow.device)
    return torch.repeat_interleave(rows, counts, output_size=nnz)


def _coo_spmm(rows, cols, values, x, num_rows):
    out = torch.zeros(num_rows, x.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, rows, values.unsqueeze(1) * x[cols])


def _coo_sddmm(rows, cols, a, b):
    return (a[rows] * b[cols]).sum(-1)


# --- CSR ------------------------------------------------------------------------------------
def csr_spmm(crow, col, values, x):
    rows = _csr_rows(crow, values.numel())
    return _coo_spmm(rows, col.long(), values, x, crow.numel() - 1)


def csr_spmm_t(crow, col, values, d, num_cols):
    rows = _csr_rows(crow, values.numel())
    return _coo_spmm(col.long(), rows, values, d, num_cols)


def csr_sddmm(crow, col, a, b):
    return _coo_sddmm(_csr_rows(crow, col.numel()), col.long(), a, b)


# --- BSR ------------------------------------------------------------------------------------
def bsr_spmm(crow, col, values, x, r, c):
    mb, kb = crow.numel() - 1, x.shape[0] // c
    brow = _csr_rows(crow, values.shape[0])
    xb = x.reshape(kb, c, x.shape[1])[col.long()]  # (nnzb, C, N)
    out = torch.zeros(mb, r, x.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, brow, values @ xb).reshape(mb * r, x.shape[1])


def bsr_spmm_t(crow, col, values, d, num_cols, r, c):
    mb, kb = crow.numel() - 1, num_cols // c
    brow = _csr_rows(crow, values.shape[0])
    db = d.reshape(mb, r, d.shape[1])[brow]  # (nnzb, R, N)
    out = torch.zeros(kb, c, d.shape[1], dtype=d.dtype, device=d.device)
    return out.index_add(0, col.long(), values.transpose(1, 2) @ db).reshape(kb * c, d.shape[1])


def bsr_sddmm(crow, col, a, b, r, c):
    mb, kb, n = crow.numel() - 1, b.shape[0] // c, a.shape[1]
    brow = _csr_rows(crow, col.numel())
    ab = a.reshape(mb, r, n)[brow]
    bb = b.reshape(kb, c, n)[col.long()]
    return ab @ bb.transpose(1, 2)


# --- N:M ------------------------------------------------------------------------------------
def _nm_coo(metadata, rows, k, n, m):
    slots = num_groups(k, m) * n
    pos = unpack_positions(metadata, slots, m)
    cols = (torch.arange(slots, device=metadata.device) // n) * m + pos
    r = torch.arange(rows, device=metadata.device).repeat_interleave(slots)
    return r, cols.reshape(-1)


def nm_spmm(metadata, values, x, n, m):
    rows, cols = _nm_coo(metadata, values.shape[0], x.shape[0], n, m)
    return _coo_spmm(rows, cols, values.reshape(-1), x, values.shape[0])


def nm_spmm_t(metadata, values, d, num_cols, n, m):
    rows, cols = _nm_coo(metadata, values.shape[0], num_cols, n, m)
    return _coo_spmm(cols, rows, values.reshape(-1), d, num_cols)


def nm_sddmm(metadata, a, b, n, m):
    rows, cols = _nm_coo(metadata, a.shape[0], b.shape[0], n, m)
    return _coo_sddmm(rows, cols, a, b).reshape(a.shape[0], num_groups(b.shape[0], m) * n)


# --- bitmap ---------------------------------------------------------------------------------
def _bitmap_coo(bitmap, k):
    rows, cols = unpack_mask(bitmap, k).nonzero(as_tuple=True)
    return rows, cols


def bitmap_spmm(row_offsets, bitmap, values, x, nnz):
    rows, cols = _bitmap_coo(bitmap, x.shape[0])
    return _coo_spmm(rows, cols, values, x, bitmap.shape[0])


def bitmap_spmm_t(row_offsets, bitmap, values, d, num_cols, nnz):
    rows, cols = _bitmap_coo(bitmap, num_cols)
    return _coo_spmm(cols, rows, values, d, num_cols)


def bitmap_sddmm(row_offsets, bitmap, a, b, nnz):
    rows, cols = _bitmap_coo(bitmap, b.shape[0])
    return _coo_sddmm(rows, cols, a, b)
