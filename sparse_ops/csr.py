"""CSR: compressed sparse rows, for any pattern (unstructured sparsity)."""

from __future__ import annotations

import torch

from ._checks import check_float, check_tensor, index_dtype_for
from .compressed import CompressedRows, check_compressed
from .coo import coo_sddmm, coo_spmm, rows_of_pointers
from .format import expect_1d, fit_error
from .registry import register_layout


class CSRMatrix(CompressedRows):
    """An ``(M, K)`` matrix in CSR.

    ``crow_indices``: int32 ``(M + 1,)``, non-decreasing from 0 to nnz.
    ``col_indices``: int16 (``K <= 32767``) or int32 ``(nnz,)``, each in ``[0, K)``.
    ``values``: floating ``(nnz,)``, row by row.
    ``crow_t``, ``col_t``, ``perm_t``: the transposed structure, int32 ``(K + 1,)``,
    ``(nnz,)``, ``(nnz,)`` (``transposed()``; None until computed).
    """

    layout = "csr"
    family = "unstructured"
    torch_layouts = (torch.sparse_csr,)

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

    def transposed_cols(self) -> int:
        return self.shape[1]

    def row_indices(self) -> torch.Tensor:
        """int64 ``(nnz,)``: the row of each stored value."""
        return self._row_of_each()

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        out.index_put_(
            (self.row_indices(), self.col_indices.long()), self.values, accumulate=True
        )
        return out

    def check_fit(self) -> None:
        m = self._shape[0]
        crow, col, values = self.crow_indices, self.col_indices, self.values
        if (
            type(crow) is torch.Tensor
            and type(values) is torch.Tensor
            and crow.shape == (m + 1,)
            and values.dim() == 1
            and col.shape == values.shape
        ):
            return
        crow = expect_1d("crow_indices", crow)
        col = expect_1d("col_indices", col)
        values = expect_1d("values", values)
        if crow.numel() != m + 1:
            fit_error("crow_indices", f"has {crow.numel()} entries, shape {self.shape} needs "
                                      f"M + 1 = {m + 1}")
        if col.numel() != values.numel():
            fit_error("col_indices", f"{col.numel()} column indices for {values.numel()} values")

    @staticmethod
    def rows_of(structure, values, params):
        return structure[0].shape[0] - 1

    @staticmethod
    def sddmm_shape(structure, a, b, params):
        return (structure[1].shape[0],)

    # The reference products ignore the transposed structure (trailing ``*aux``).
    @staticmethod
    def reference_spmm(crow, col, values, x, *aux):
        rows = rows_of_pointers(crow, values.numel())
        return coo_spmm(rows, col.long(), values, x, crow.numel() - 1)

    @staticmethod
    def reference_spmm_t(crow, col, values, d, num_cols, *aux):
        rows = rows_of_pointers(crow, values.numel())
        return coo_spmm(col.long(), rows, values, d, num_cols)

    @staticmethod
    def reference_sddmm(crow, col, a, b, *aux):
        return coo_sddmm(rows_of_pointers(crow, col.numel()), col.long(), a, b)


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


LAYOUT = register_layout(CSRMatrix)
