"""CSR: compressed sparse rows, for any pattern (unstructured sparsity)."""

from __future__ import annotations

import torch

from ._checks import check_float, check_tensor, index_dtype_for
from .compressed import CompressedRows, check_compressed
from .consistency import check_csr
from .fake import fakes_of
from .registry import Layout, register_layout


class CSRMatrix(CompressedRows):
    """An ``(M, K)`` matrix in CSR.

    ``crow_indices``: int32 ``(M + 1,)``, non-decreasing from 0 to nnz.
    ``col_indices``: int16 (``K <= 32767``) or int32 ``(nnz,)``, each in ``[0, K)``.
    ``values``: floating ``(nnz,)``, row by row.
    """

    layout = "csr"

    @staticmethod
    def validate(crow, col, values, shape):
        return validate_csr(crow, col, values, shape)

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
        return self._row_of_each()

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
    check_compressed(crow, col, values, shape, 1, shape[0], shape[1], "nnz")
    return (
        crow.to(torch.int32).contiguous(),
        col.to(index_dtype_for(shape[1])).contiguous(),
        values.contiguous(),
    )


LAYOUT = register_layout(Layout(
    "csr", CSRMatrix, "unstructured", (), fakes_of("csr"), check_csr,
    torch_layouts=(torch.sparse_csr,),
))
