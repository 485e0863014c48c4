"""Bytes of each storage format, from formulas and from real tensors (docs/formats.md).

All sizes in bytes for an ``R x C`` matrix with ``nnz`` nonzeros and ``vb``-byte values:

- dense:   ``vb R C``
- CSR:     ``4 (R + 1) + nnz (vb + ib)``, ``ib`` = 2 (int16 columns, ``C <= 32767``) or 4
- BSR r x c: ``4 (R/r + 1) + nnzb (4 + vb r c)``, ``nnzb`` stored blocks
- bitmap:  ``ceil(R C / 8) + nnz vb`` (one bit per position, then the values)
- N:M:     ``R G n vb + R ceil(G n b / 8)``, ``G = ceil(C / m)``, ``b`` bits per position

Setting a format's bytes equal to dense gives its break-even density (``breakeven_density``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sparse_ops.nm import meta_bits

PTR = 4  # int32 row / block-row pointers, int32 block columns


def index_bytes(cols: int) -> int:
    """Bytes per CSR column index sparse_ops stores: 2 when ``cols <= 32767``, else 4."""
    return 2 if cols <= 32767 else 4


def dense_bytes(rows: int, cols: int, vb: int = 4) -> int:
    """Bytes of the dense matrix."""
    return vb * rows * cols


def csr_bytes(rows: int, cols: int, nnz: int, vb: int = 4, ib: int | None = None) -> int:
    """Bytes of CSR with ``ib``-byte column indices (default: as sparse_ops stores them)."""
    ib = index_bytes(cols) if ib is None else ib
    return PTR * (rows + 1) + nnz * (vb + ib)


def bsr_bytes(rows: int, cols: int, nnzb: int, block: tuple[int, int], vb: int = 4) -> int:
    """Bytes of BSR with ``nnzb`` stored ``block`` blocks."""
    r, c = block
    return PTR * (rows // r + 1) + nnzb * (PTR + vb * r * c)


def bitmap_bytes(rows: int, cols: int, nnz: int, vb: int = 4) -> int:
    """Bytes of a bitmap (one bit per position) plus the values."""
    return math.ceil(rows * cols / 8) + nnz * vb


def nm_bytes(rows: int, cols: int, n: int, m: int, vb: int = 4) -> int:
    """Bytes of N:M values and packed positions (docs/formats.md)."""
    g = -(-cols // m)
    return rows * g * n * vb + rows * (-(-g * n * meta_bits(m) // 8))


def breakeven_density(fmt: str, rows: int, cols: int, vb: int = 4,
                      block: tuple[int, int] = (1, 1), ib: int | None = None) -> float:
    """Density at which ``fmt`` (``csr``, ``bsr``, ``bitmap``) takes as many bytes as dense.

    For N:M use ``nm_breakeven_ratio``: its density is fixed by n/m.
    """
    full = vb * rows * cols
    if fmt == "csr":
        ib = index_bytes(cols) if ib is None else ib
        return (full - PTR * (rows + 1)) / (rows * cols * (vb + ib))
    if fmt == "bsr":
        r, c = block
        return (full - PTR * (rows // r + 1)) / (rows * cols * (vb + PTR / (r * c)))
    if fmt == "bitmap":
        return (full - math.ceil(rows * cols / 8)) / full
    raise ValueError(f"fmt: expected csr, bsr or bitmap, got {fmt!r}")


def nm_breakeven_ratio(m: int, vb: int = 4) -> float:
    """n/m at which N:M storage equals dense: ``vb / (vb + b/8)`` (cols a multiple of m)."""
    return vb / (vb + meta_bits(m) / 8)


def bitmap_tensors(dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A real bitmap encoding of ``dense``: packed row-major bits (uint8) and the values."""
    mask = (dense != 0).cpu().numpy().reshape(-1)
    bits = torch.from_numpy(np.packbits(mask))
    return bits, dense[dense != 0].contiguous()


def tensors_nbytes(tensors: tuple[torch.Tensor, ...]) -> int:
    """Bytes of real tensors, as ``SparseMatrix.nbytes`` counts them."""
    return sum(t.numel() * t.element_size() for t in tensors)
