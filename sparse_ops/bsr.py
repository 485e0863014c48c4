"""BSR: block sparse rows, blocks of ``R x C`` that divide the matrix."""

from __future__ import annotations

import torch

from ._checks import check_blocksize, check_float, check_tensor
from .compressed import CompressedRows, check_compressed
from .consistency import check_bsr
from .fake import fakes_of
from .registry import Layout, register_layout


class BSRMatrix(CompressedRows):
    """An ``(M, K)`` matrix of ``R x C`` blocks.

    ``crow_indices``: int32 ``(M/R + 1,)``; ``col_indices``: int32 ``(nnzb,)`` block columns
    in ``[0, K/C)``; ``values``: ``(nnzb, R, C)``, each block row-major.
    """

    layout = "bsr"

    @staticmethod
    def validate(crow, col, values, shape):
        return validate_bsr(crow, col, values, shape)

    @property
    def blocksize(self) -> tuple[int, int]:
        """``(R, C)``, read from ``values (nnzb, R, C)``.

        Raises ValueError when ``values`` was replaced by a tensor that is not 3-D (e.g.
        reshaped to ``(nnzb, R * C)``): the block shape can no longer be read from it.
        """
        v = self.values
        if v.dim() != 3:
            raise ValueError(
                f"values: a BSR matrix stores its blocks as a 3-D (nnzb, R, C) tensor, got shape "
                f"{tuple(v.shape)}; keep (or reshape) values to (nnzb, R, C)"
            )
        return (int(v.shape[1]), int(v.shape[2]))

    def params(self) -> tuple[int, ...]:
        return self.blocksize

    @classmethod
    def from_dense(cls, dense: torch.Tensor, blocksize: tuple[int, int]) -> BSRMatrix:
        """Keep every ``R x C`` block of ``dense`` that holds a nonzero."""
        check_tensor("dense", dense, 2)
        check_float("dense", dense)
        m, k = dense.shape
        r, c = check_blocksize(blocksize, (m, k))
        blocks = dense.reshape(m // r, r, k // c, c).transpose(1, 2)  # (Mb, Kb, R, C)
        keep = (blocks != 0).flatten(2).any(-1)
        brow, bcol = keep.nonzero(as_tuple=True)
        crow = torch.zeros(m // r + 1, dtype=torch.int32, device=dense.device)
        crow[1:] = torch.cumsum(torch.bincount(brow, minlength=m // r), 0)
        values = blocks[brow, bcol].contiguous()
        return cls(crow, bcol.to(torch.int32), values, (m, k), validate=False)

    @classmethod
    def from_torch(cls, t: torch.Tensor) -> BSRMatrix:
        """From a ``torch.sparse_bsr`` tensor, validating its indices."""
        if t.layout != torch.sparse_bsr:
            raise TypeError(f"t: expected a torch.sparse_bsr tensor, got layout {t.layout}")
        if t.dim() != 2:
            raise ValueError(f"t: expected a 2-D sparse_bsr tensor, got shape {tuple(t.shape)}")
        m, k = t.shape
        return cls(t.crow_indices(), t.col_indices(), t.values(), (m, k))

    def to_torch(self) -> torch.Tensor:
        """A ``torch.sparse_bsr`` tensor (int64 indices) with the same blocks."""
        return torch.sparse_bsr_tensor(
            self.crow_indices.long(), self.col_indices.long(), self.values, self.shape,
            check_invariants=False,  # validated on construction
        )

    def block_row_indices(self) -> torch.Tensor:
        """int64 ``(nnzb,)``: the block row of each stored block."""
        return self._row_of_each()

    def to_dense(self) -> torch.Tensor:
        m, k = self.shape
        r, c = self.blocksize
        out = torch.zeros(m // r, k // c, r, c, dtype=self.dtype, device=self.device)
        out.index_put_(
            (self.block_row_indices(), self.col_indices.long()), self.values, accumulate=True
        )
        return out.transpose(1, 2).reshape(m, k)


def validate_bsr(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a BSR triple against ``shape``; return it with canonical dtypes."""
    m, k = shape
    if m < 0 or k < 0:
        raise ValueError(f"shape: dimensions must be >= 0, got {shape}")
    check_tensor("values", values, 3)
    r, c = check_blocksize((int(values.shape[1]), int(values.shape[2])), (m, k))
    check_compressed(crow, col, values, shape, 3, m // r, k // c, "nnzb")
    return crow.to(torch.int32).contiguous(), col.to(torch.int32).contiguous(), values.contiguous()


LAYOUT = register_layout(Layout(
    "bsr", BSRMatrix, "block", ("blocksize",), fakes_of("bsr"), check_bsr,
    options_of=lambda p: {"blocksize": (int(p[0]), int(p[1]))},
    torch_layouts=(torch.sparse_bsr,),
))
