"""What CSR and BSR share: row pointers, column indices, values — and their checks."""

from __future__ import annotations

import torch

from ._checks import check_float, check_index, check_tensor
from .format import SparseMatrix


class CompressedRows(SparseMatrix):
    """A matrix stored as ``crow_indices``, ``col_indices`` and ``values`` (CSR or BSR).

    Subclasses implement ``validate(crow, col, values, shape)`` returning canonical tensors.
    """

    tensor_names = ("crow_indices", "col_indices", "values")
    structure_names = ("crow_indices", "col_indices")

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

    @staticmethod
    def validate(crow, col, values, shape):  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def from_parts(cls, tensors, shape, params=(), validate=True) -> CompressedRows:
        return cls(tensors["crow_indices"], tensors["col_indices"], tensors["values"], shape,
                   validate=validate)

    def _row_of_each(self) -> torch.Tensor:
        """int64: the (block) row of each stored entry, expanded from the row pointers."""
        counts = self.crow_indices.diff().long()
        rows = torch.arange(self.crow_indices.numel() - 1, device=self.device)
        return torch.repeat_interleave(rows, counts, output_size=self.values.shape[0])


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
