"""O(1) checks, before every product, that a matrix's tensors still fit its ``shape``.

A matrix's tensors are plain attributes: they can be replaced after construction
(``B.values = ...``) or built with ``validate=False``. The kernels take the row count from
the row pointers and the block shape from ``values``; these checks make sure those agree with
``S.shape`` (and the layout's invariants) so a product never returns a silently wrong shape.
The O(nnz) checks of the indices themselves run in C++, once per structure (cached on the
tensors' version counters).
"""

from __future__ import annotations

import torch

from .format import SparseMatrix
from .registry import layout_of


def _fail(name: str, msg: str) -> None:
    raise ValueError(f"{name}: {msg}")


def _expect_1d(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 1:
        _fail(name, f"expected a 1-D tensor, got shape {tuple(t.shape)}")
    return t


def check_csr(s: SparseMatrix) -> None:
    m = s._shape[0]
    crow, col, values = s.crow_indices, s.col_indices, s.values
    if (
        type(crow) is torch.Tensor
        and type(values) is torch.Tensor
        and crow.shape == (m + 1,)
        and values.dim() == 1
        and col.shape == values.shape
    ):
        return
    _csr_explain(s)


def _csr_explain(s: SparseMatrix) -> None:
    m, _ = s.shape
    crow = _expect_1d("crow_indices", s.crow_indices)
    col = _expect_1d("col_indices", s.col_indices)
    values = _expect_1d("values", s.values)
    if crow.numel() != m + 1:
        _fail("crow_indices", f"has {crow.numel()} entries, shape {s.shape} needs M + 1 = {m + 1}")
    if col.numel() != values.numel():
        _fail("col_indices", f"{col.numel()} column indices for {values.numel()} values")


def check_bsr(s: SparseMatrix) -> None:
    m, k = s.shape
    crow = _expect_1d("crow_indices", s.crow_indices)
    col = _expect_1d("col_indices", s.col_indices)
    v = s.values
    if not isinstance(v, torch.Tensor) or v.dim() != 3:
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        _fail("values", f"expected a 3-D (nnzb, R, C) tensor of blocks, got {shape}")
    r, c = int(v.shape[1]), int(v.shape[2])
    if r < 1 or c < 1 or m % r or k % c:
        _fail("values", f"blocks of {r} x {c} do not tile the shape {s.shape}")
    if crow.numel() != m // r + 1:
        _fail(
            "crow_indices",
            f"has {crow.numel()} entries, shape {s.shape} with {r} x {c} blocks needs "
            f"M / R + 1 = {m // r + 1}",
        )
    if col.numel() != v.shape[0]:
        _fail("col_indices", f"{col.numel()} block column indices for {v.shape[0]} blocks")


def check_nm(s: SparseMatrix) -> None:
    from .nm import meta_bytes, num_groups

    m_rows, k = s.shape
    n, m = s.params()
    slots = num_groups(k, m) * n
    v, meta = s.values, s.metadata
    if not isinstance(v, torch.Tensor) or tuple(v.shape) != (m_rows, slots):
        got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        _fail("values", f"expected shape {(m_rows, slots)} for {s.shape} at {n}:{m}, got {got}")
    width = meta_bytes(slots, m)
    if not isinstance(meta, torch.Tensor) or tuple(meta.shape) != (m_rows, width):
        got = tuple(meta.shape) if isinstance(meta, torch.Tensor) else type(meta).__name__
        _fail("metadata", f"expected shape {(m_rows, width)} for {s.shape} at {n}:{m}, got {got}")


def check_bitmap(s: SparseMatrix) -> None:
    from .bitmap import row_bytes

    m, k = s._shape
    offs, bits, v = s.row_offsets, s.bitmap, s.values
    if (
        type(offs) is torch.Tensor
        and type(bits) is torch.Tensor
        and type(v) is torch.Tensor
        and offs.shape == (m + 1,)
        and bits.shape == (m, row_bytes(k))
        and v.dim() == 1
    ):
        return
    _expect_1d("row_offsets", offs)
    _expect_1d("values", v)
    if offs.numel() != m + 1:
        _fail("row_offsets", f"has {offs.numel()} entries, shape {s.shape} needs M + 1 = {m + 1}")
    if not isinstance(bits, torch.Tensor) or tuple(bits.shape) != (m, row_bytes(k)):
        got = tuple(bits.shape) if isinstance(bits, torch.Tensor) else type(bits).__name__
        _fail("bitmap", f"expected shape {(m, row_bytes(k))} for {s.shape}, got {got}")


def check_consistent(s: SparseMatrix) -> None:
    """Raise ValueError naming the tensor if ``s``'s tensors do not fit ``s.shape``."""
    layout_of(s).check(s)
