"""The base of the three storage formats: what every sparse matrix answers."""

from __future__ import annotations

from typing import Any

import torch


class SparseMatrix:
    """A sparse ``(M, K)`` matrix held as plain dense tensors (see docs/formats.md).

    Subclasses name their tensors in ``_tensor_names`` (structure first, values last-but-any),
    their integer parameters in ``params()``, and implement ``to_dense``.
    """

    layout: str = ""
    _tensor_names: tuple[str, ...] = ()
    _structure_names: tuple[str, ...] = ()
    values: torch.Tensor

    def __init__(self, shape: tuple[int, int]) -> None:
        self._shape = (int(shape[0]), int(shape[1]))

    # --- what every format answers ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(M, K)``: rows (out features) by columns (in features)."""
        return self._shape

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def nnz(self) -> int:
        """Stored values (explicit zeros in a stored slot or block count too)."""
        return self.values.numel()

    @property
    def density(self) -> float:
        """``nnz / (M * K)``; 0 for an empty matrix."""
        total = self._shape[0] * self._shape[1]
        return self.nnz / total if total else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes as stored: values plus indices / metadata."""
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, n) for n in self._tensor_names)

    def structure(self) -> tuple[torch.Tensor, ...]:
        """The index tensors, in the order the ops take them."""
        names = self._structure_names
        if len(names) == 2:
            return (getattr(self, names[0]), getattr(self, names[1]))
        return tuple(getattr(self, n) for n in names)

    def params(self) -> tuple[int, ...]:
        """The integer parameters the ops take after the dense operands."""
        return ()

    def _replace(self, **tensors: torch.Tensor) -> SparseMatrix:
        kw: dict[str, Any] = {n: getattr(self, n) for n in self._tensor_names}
        kw.update(tensors)
        return self._rebuild(kw)

    def _rebuild(self, tensors: dict[str, Any]) -> SparseMatrix:
        return type(self).from_parts(tensors, self._shape, self.params(), validate=False)

    @classmethod
    def from_parts(
        cls,
        tensors: dict[str, torch.Tensor],
        shape: tuple[int, int],
        params: tuple[int, ...] = (),
        validate: bool = True,
    ) -> SparseMatrix:
        """Build from the tensors named in ``_tensor_names`` and the ``params()`` of a matrix
        of this layout (e.g. a ``SparseLinear``'s buffers); ``validate=False`` trusts them."""
        raise NotImplementedError

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """A copy on ``device`` and/or with values cast to ``dtype`` (indices keep theirs)."""
        moved = {n: getattr(self, n).to(device) for n in self._tensor_names}
        if dtype is not None:
            moved["values"] = moved["values"].to(dtype)
        return self._rebuild(moved)

    def with_values(self, values: torch.Tensor) -> SparseMatrix:
        """Same structure, new values (same shape): no validation of the structure."""
        if values.shape != self.values.shape:
            raise ValueError(
                f"values: expected shape {tuple(self.values.shape)}, got {tuple(values.shape)}"
            )
        return self._replace(values=values)

    def to_dense(self) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, nnz={self.nnz}, "
            f"density={self.density:.4f}, dtype={self.dtype}, device={self.device})"
        )
