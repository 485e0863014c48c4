"""What CSR and BSR share: row pointers, column indices, values, the transposed structure
that ``S^T @ d`` reads — and their checks."""

from __future__ import annotations

import torch

from ._checks import check_float, check_index, check_tensor
from .format import SparseMatrix


class CompressedRows(SparseMatrix):
    """A matrix stored as ``crow_indices``, ``col_indices`` and ``values`` (CSR or BSR).

    The transposed structure (``crow_t``, ``col_t``, ``perm_t``: the structure of ``S^T`` and
    the position in ``S`` of each of its entries) is data of the matrix: ``transposed()``
    computes it once (``None`` until then), and the products take it after their parameters
    (``aux()``), so ``S^T @ d`` (the backward of a product) reads it instead of sorting the
    structure again. It describes the structure as it was when computed: ``transposed(True)``
    recomputes it after an in-place change of the structure.

    Subclasses implement ``validate(crow, col, values, shape)`` returning canonical tensors
    and ``transposed_cols()``, the (block) columns of ``S``.
    """

    tensor_names = ("crow_indices", "col_indices", "values")
    structure_names = ("crow_indices", "col_indices")
    aux_names = ("crow_t", "col_t", "perm_t")

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
            crow_indices, col_indices, values = self.validate(
                crow_indices, col_indices, values, self._shape
            )
        self.crow_indices = crow_indices
        self.col_indices = col_indices
        self.values = values
        self.crow_t: torch.Tensor | None = None
        self.col_t: torch.Tensor | None = None
        self.perm_t: torch.Tensor | None = None

    @staticmethod
    def validate(crow, col, values, shape):  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def from_parts(cls, tensors, shape, params=(), validate=True) -> CompressedRows:
        s = cls(tensors["crow_indices"], tensors["col_indices"], tensors["values"], shape,
                validate=validate)
        for name in cls.aux_names:
            setattr(s, name, tensors.get(name))
        return s

    def transposed_cols(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def transposed(self, refresh: bool = False) -> tuple[torch.Tensor, torch.Tensor,
                                                          torch.Tensor]:
        """``(crow_t, col_t, perm_t)``: int32 ``(K' + 1,)``, ``(nnz',)``, ``(nnz',)`` over the
        ``K'`` (block) columns and ``nnz'`` stored entries (blocks); computed once and kept."""
        if refresh or self.crow_t is None or self.col_t is None or self.perm_t is None:
            self.crow_t, self.col_t, self.perm_t = transpose_structure(
                self.crow_indices, self.col_indices, self.transposed_cols())
        return self.crow_t, self.col_t, self.perm_t

    def _row_of_each(self) -> torch.Tensor:
        """int64: the (block) row of each stored entry, expanded from the row pointers."""
        counts = self.crow_indices.diff().long()
        rows = torch.arange(self.crow_indices.numel() - 1, device=self.device)
        return torch.repeat_interleave(rows, counts, output_size=self.values.shape[0])


def transpose_structure(crow: torch.Tensor, col: torch.Tensor,
                        cols: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The transposed structure of a row-pointer structure over ``cols`` columns:
    ``(crow_t, col_t, perm_t)`` int32, entries in a stable column order (rows ascend within a
    transposed row). A counting sort in C++ on the CPU, a stable sort in torch elsewhere."""
    if crow.device.type == "cpu":
        return torch.ops.sparse_ops.csr_transpose(crow, col, cols)
    nnz = col.shape[0]
    rows = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=crow.device),
                                   crow.diff().long(), output_size=nnz)
    perm = torch.argsort(col.to(torch.int32), stable=True)
    crow_t = torch.zeros(cols + 1, dtype=torch.int32, device=crow.device)
    crow_t[1:] = torch.cumsum(torch.bincount(col.long(), minlength=cols), 0)
    return crow_t, rows[perm].to(torch.int32), perm.to(torch.int32)


def check_compressed(
    crow: torch.Tensor,
    col: torch.Tensor,
    values: torch.Tensor,
    shape: tuple[int, int],
    values_ndim: int,
    rows: int,
    cols: int,
    unit: str,
) -> None:
    """Common checks: types, devices, ``rows + 1`` non-decreasing pointers from 0 to the
    number of stored units, and every column index in ``[0, cols)``.

    ``unit`` names what a pointer counts ("nnz" or "nnzb") in the error messages.
    """
    if shape[0] < 0 or shape[1] < 0:
        raise ValueError(f"shape: dimensions must be >= 0, got {shape}")
    check_tensor("crow_indices", crow, 1)
    check_tensor("col_indices", col, 1)
    check_tensor("values", values, values_ndim)
    check_index("crow_indices", crow)
    check_index("col_indices", col)
    check_float("values", values)
    if not (crow.device == col.device == values.device):
        raise ValueError(
            f"crow_indices, col_indices, values: must share one device, got "
            f"{crow.device}, {col.device}, {values.device}"
        )
    if crow.numel() != rows + 1:
        raise ValueError(f"crow_indices: expected length {rows + 1}, got {crow.numel()}")
    count = values.shape[0]
    if col.numel() != count:
        raise ValueError(
            f"col_indices, values: {col.numel()} column indices for {count} stored {unit}"
        )
    if count >= 2**31:
        raise ValueError(f"values: {count} stored entries exceed 32-bit row pointers")
    c = crow.long()
    if int(c[0]) != 0:
        raise ValueError(f"crow_indices: must start at 0, got {int(c[0])}")
    steps = c.diff()
    if steps.numel() and bool((steps < 0).any()):
        raise ValueError(f"crow_indices: not non-decreasing at row {int((steps < 0).nonzero()[0])}")
    if int(c[-1]) != count:
        raise ValueError(f"crow_indices: last entry must equal {unit} = {count}, got {int(c[-1])}")
    if count:
        lo, hi = int(col.min()), int(col.max())
        if lo < 0 or hi >= cols:
            raise ValueError(
                f"col_indices: {'block column' if unit == 'nnzb' else 'value'} "
                f"{lo if lo < 0 else hi} out of range [0, {cols})"
            )
