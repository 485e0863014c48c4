"""Bytes of each storage format as formulas of the layouts sparse_ops stores (docs/formats.md);
claim 5 checks every formula against ``nbytes`` of real matrices.

All sizes in bytes for an ``R x C`` matrix with ``nnz`` nonzeros and ``vb``-byte values:

- dense:   ``vb R C``
- CSR:     ``4 (R + 1) + nnz (vb + ib)``, ``ib`` = 2 (int16 columns, ``C <= 32767``) or 4
- BSR r x c: ``4 (R/r + 1) + nnzb (4 + vb r c)``, ``nnzb`` stored blocks
- bitmap:  ``4 (R + 1) + R 8 ceil(C / 64) + nnz vb`` (int32 row offsets, one bit per
  position in rows padded to whole 64-bit words, then the values: ``so.BitmapMatrix``)
- N:M:     ``R G n vb + R ceil(G n b / 8)``, ``G = ceil(C / m)``, ``b`` bits per position

Setting a format's bytes equal to dense gives its break-even density (``breakeven_density``).
"""

from __future__ import annotations

from sparse_ops.nm import meta_bits

PTR = 4  # int32 row / block-row pointers and bitmap row offsets, int32 block columns
WORD = 8  # bytes of a bitmap word: each bitmap row is padded to whole 64-bit words


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


def bitmap_row_bytes(cols: int) -> int:
    """Bytes of one bitmap row of ``cols`` positions: ``8 ceil(cols / 64)`` (whole words)."""
    return WORD * -(-cols // (8 * WORD))


def bitmap_bytes(rows: int, cols: int, nnz: int, vb: int = 4) -> int:
    """Bytes of ``so.BitmapMatrix``: ``4 (rows + 1)`` int32 row offsets, ``rows`` bitmap rows
    of ``8 ceil(cols / 64)`` bytes (one bit per position, padded to 64-bit words) and
    ``nnz vb`` packed values."""
    return PTR * (rows + 1) + rows * bitmap_row_bytes(cols) + nnz * vb


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
        return (full - PTR * (rows + 1) - rows * bitmap_row_bytes(cols)) / full
    raise ValueError(f"fmt: expected csr, bsr or bitmap, got {fmt!r}")


def nm_breakeven_ratio(m: int, vb: int = 4) -> float:
    """n/m at which N:M storage equals dense: ``vb / (vb + b/8)`` (cols a multiple of m)."""
    return vb / (vb + meta_bits(m) / 8)
