"""CSR: compressed sparse rows, for any pattern (unstructured sparsity)."""

from __future__ import annotations

from typing import Any

import torch

from ._checks import check_float, check_index, check_tensor, index_dtype_for
from .format import SparseMatrix


class CSRMatrix(SparseMatrix):
    """An ``(M, K)`` matrix in CSR.

    ``crow_indices``: int32 ``(M + 1,)``, non-decreasing from 0 to nnz.
    ``col_indices``: int16 (``K <= 32767``) or int32 ``(nnz,)``, each in ``[0, K)``.
    ``values``: floating ``(nnz,)``, row by row.
    """

    layout = "csr"
    _tensor_names = ("crow_indices", "col_indices", "values")
    _structure_names = ("crow_indices", "col_indices")

    def __init__(
        self,
        crow_indices: torch.Tensor,
        col_indices: torch.Tensor,
        values: torch.Tensor,
        shape: tuple[int, int],
        validate: bool = True,
    ) -> None:
        super().__init__(shape)
        if validate:
            crow_indices, col_indices, values = validate_csr(
                crow_indices, col_indices, values, self._shape
            )
        self.crow_indices = crow_indices
        self.col_indices = col_indices
        self.values = values

    def _rebuild(self, tensors: dict[str, Any]) -> CSRMatrix:
        return CSRMatrix(
            tensors["crow_indices"], tensors["col_indices"], tensors["values"], self.shape,
            validate=False,
        )

    @classmethod
    def from_dense(cls, dense: torch.Tensor) -> CSRMatrix:
        """Keep the nonzeros of a 2-D dense tensor (row-major order)."""
        check_tensor("dense", dense, 2)
        check_float("dense", dense)
        m, k = dense.shape
        rows, cols = (dense != 0).nonzero(as_tuple=True)
        counts = torch.bincount(rows, minlength=m)
        crow = torch.zeros(m + 1, dtype=torch.int32, device=dense.device)
        crow[1:] = torch.cumsum(counts, 0)
        return cls(
            crow, cols.to(index_dtype_for(k)), dense[rows, cols].contiguous(), (m, k),
            validate=False,
        )

    @classmethod
    def from_torch(cls, t: torch.Tensor) -> CSRMatrix:
        """From a ``torch.sparse_csr`` tensor, validating its indices."""
        if t.layout != torch.sparse_csr:
            raise TypeError(f"t: expected a torch.sparse_csr tensor, got layout {t.layout}")
        if t.dim() != 2:
            raise ValueError(f"t: expected a 2-D sparse_csr tensor, got shape {tuple(t.shape)}")
        m, k = t.shape
        return cls(
            t.crow_indices(), t.col_indices(), t.values(), (m, k)
        )

    def to_torch(self) -> torch.Tensor:
        """A ``torch.sparse_csr`` tensor (int64 indices) with the same values."""
        return torch.sparse_csr_tensor(
            self.crow_indices.long(), self.col_indices.long(), self.values, self.shape,
            check_invariants=False,  # validated on construction
        )

    def row_indices(self) -> torch.Tensor:
        """int64 ``(nnz,)``: the row of each stored value."""
        counts = self.crow_indices.diff().long()
        return torch.repeat_interleave(
            torch.arange(self.shape[0], device=self.device), counts, output_size=self.nnz
        )

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        out.index_put_(
            (self.row_indices(), self.col_indices.long()), self.values, accumulate=True
        )
        return out


def validate_csr(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a CSR triple against ``shape`` and return it with canonical dtypes.

    Raises ValueError/TypeError naming the argument at fault.
    """
    m, k = shape
    if m < 0 or k < 0:
        raise ValueError(f"shape: dimensions must be >= 0, got {shape}")
    check_tensor("crow_indices", crow, 1)
    check_tensor("col_indices", col, 1)
    check_tensor("values", values, 1)
    check_index("crow_indices", crow)
    check_index("col_indices", col)
    check_float("values", values)
    if not (crow.device == col.device == values.device):
        raise ValueError(
            f"crow_indices, col_indices, values: must share one device, got "
            f"{crow.device}, {col.device}, {values.device}"
        )
    if crow.numel() != m + 1:
        raise ValueError(f"crow_indices: expected length M + 1 = {m + 1}, got {crow.numel()}")
    if col.numel() != values.numel():
        raise ValueError(
            f"col_indices, values: lengths differ ({col.numel()} vs {values.numel()})"
        )
    nnz = col.numel()
    if nnz >= 2**31:
        raise ValueError(f"values: {nnz} nonzeros exceed 32-bit row pointers")
    c = crow.long()
    if int(c[0]) != 0:
        raise ValueError(f"crow_indices: must start at 0, got {int(c[0])}")
    steps = c.diff()
    if steps.numel() and bool((steps < 0).any()):
        row = int((steps < 0).nonzero()[0])
        raise ValueError(f"crow_indices: not non-decreasing at row {row}")
    if int(c[-1]) != nnz:
        raise ValueError(
            f"crow_indices: last entry must equal nnz = {nnz}, got {int(c[-1])}"
        )
    if nnz:
        lo, hi = int(col.min()), int(col.max())
        if lo < 0 or hi >= k:
            bad = lo if lo < 0 else hi
            raise ValueError(f"col_indices: value {bad} out of range [0, {k})")
    return (
        crow.to(torch.int32).contiguous(),
        col.to(index_dtype_for(k)).contiguous(),
        values.contiguous(),
    )
