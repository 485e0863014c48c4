"""BSR: block sparse rows, blocks of ``R x C`` that divide the matrix."""

from __future__ import annotations

import torch

from ._checks import check_blocksize, check_float, check_tensor
from .compressed import CompressedRows, check_compressed
from .coo import rows_of_pointers
from .format import expect_1d, fit_error
from .registry import register_layout


class BSRMatrix(CompressedRows):
    """An ``(M, K)`` matrix of ``R x C`` blocks.

    ``crow_indices``: int32 ``(M/R + 1,)``; ``col_indices``: int32 ``(nnzb,)`` block columns
    in ``[0, K/C)``; ``values``: ``(nnzb, R, C)``, each block row-major.
    ``crow_t``, ``col_t``, ``perm_t``: the transposed block structure, int32 ``(K/C + 1,)``,
    ``(nnzb,)``, ``(nnzb,)`` (``transposed()``; None until computed).
    """

    layout = "bsr"
    family = "block"
    param_names = ("r", "c")
    option_names = ("blocksize",)
    torch_layouts = (torch.sparse_bsr,)

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
    def options_of(cls, params: tuple[int, ...]) -> dict:
        return {"blocksize": (int(params[0]), int(params[1]))}

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

    def transposed_cols(self) -> int:
        return self.shape[1] // self.blocksize[1]

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

    def check_fit(self) -> None:
        m, k = self.shape
        crow = expect_1d("crow_indices", self.crow_indices)
        col = expect_1d("col_indices", self.col_indices)
        v = self.values
        if not isinstance(v, torch.Tensor) or v.dim() != 3:
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            fit_error("values", f"expected a 3-D (nnzb, R, C) tensor of blocks, got {shape}")
        r, c = int(v.shape[1]), int(v.shape[2])
        if r < 1 or c < 1 or m % r or k % c:
            fit_error("values", f"blocks of {r} x {c} do not tile the shape {self.shape}")
        if crow.numel() != m // r + 1:
            fit_error("crow_indices", f"has {crow.numel()} entries, shape {self.shape} with "
                                      f"{r} x {c} blocks needs M / R + 1 = {m // r + 1}")
        if col.numel() != v.shape[0]:
            fit_error("col_indices", f"{col.numel()} block column indices for {v.shape[0]} "
                                     "blocks")

    @staticmethod
    def rows_of(structure, values, params):
        return (structure[0].shape[0] - 1) * params[0]

    @staticmethod
    def sddmm_shape(structure, a, b, params):
        return (structure[1].shape[0], params[0], params[1])

    @staticmethod
    def reference_spmm(crow, col, values, x, r, c, *aux):
        mb, kb = crow.numel() - 1, x.shape[0] // c
        brow = rows_of_pointers(crow, values.shape[0])
        xb = x.reshape(kb, c, x.shape[1])[col.long()]  # (nnzb, C, N)
        out = torch.zeros(mb, r, x.shape[1], dtype=x.dtype, device=x.device)
        return out.index_add(0, brow, values @ xb).reshape(mb * r, x.shape[1])

    @staticmethod
    def reference_spmm_t(crow, col, values, d, num_cols, r, c, *aux):
        mb, kb = crow.numel() - 1, num_cols // c
        brow = rows_of_pointers(crow, values.shape[0])
        db = d.reshape(mb, r, d.shape[1])[brow]  # (nnzb, R, N)
        out = torch.zeros(kb, c, d.shape[1], dtype=d.dtype, device=d.device)
        return out.index_add(0, col.long(), values.transpose(1, 2) @ db).reshape(kb * c,
                                                                                  d.shape[1])

    @staticmethod
    def reference_sddmm(crow, col, a, b, r, c, *aux):
        mb, kb, n = crow.numel() - 1, b.shape[0] // c, a.shape[1]
        brow = rows_of_pointers(crow, col.numel())
        ab = a.reshape(mb, r, n)[brow]
        bb = b.reshape(kb, c, n)[col.long()]
        return ab @ bb.transpose(1, 2)


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


LAYOUT = register_layout(BSRMatrix)
