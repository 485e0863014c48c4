"""Bitmap: one bit per weight position plus the packed kept values, for 30-70 % density.

At density ``d`` a bitmap costs ``d * vb + 1/8`` bytes per position (``vb`` bytes a value),
against ``d * (vb + ib)`` for CSR with ``ib``-byte column indices: cheaper than CSR above
``d = 1 / (8 * ib)`` (6 % with int16 columns) and than dense below ``1 - 1 / (8 * vb)``
(97 % in fp32). SparAMX (arXiv 2502.12444) uses it for LLM decode on CPUs.
"""

from __future__ import annotations

import torch

from ._checks import check_float, check_tensor
from .coo import coo_sddmm, coo_spmm
from .format import SparseMatrix, expect_1d, fit_error
from .registry import register_layout

WORD_BITS = 64


def row_bytes(k: int) -> int:
    """Bytes of one bitmap row of ``k`` columns: whole 64-bit words, ``ceil(k / 64) * 8``."""
    return -(-k // WORD_BITS) * (WORD_BITS // 8)


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """bool ``(M, K)`` → uint8 ``(M, row_bytes(K))``: bit ``j % 8`` of byte ``j // 8`` is
    column ``j`` (least significant bit first; padding bits are 0)."""
    rows, k = mask.shape
    width = row_bytes(k)
    padded = torch.zeros(rows, width * 8, dtype=torch.uint8, device=mask.device)
    padded[:, :k] = mask
    shifts = torch.arange(8, dtype=torch.uint8, device=mask.device)
    return (padded.view(rows, width, 8) << shifts).sum(-1, dtype=torch.uint8)


def unpack_mask(bitmap: torch.Tensor, k: int) -> torch.Tensor:
    """uint8 ``(M, W)`` → bool ``(M, k)``: ``pack_mask`` inverted (bits past ``k`` dropped)."""
    shifts = torch.arange(8, dtype=torch.uint8, device=bitmap.device)
    bits = (bitmap.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(bitmap.shape[0], bitmap.shape[1] * 8)[:, :k].bool()


class BitmapMatrix(SparseMatrix):
    """An ``(M, K)`` matrix as a bitmap of its stored positions plus their values.

    ``row_offsets``: int32 ``(M + 1,)``: row ``i``'s values are
    ``values[row_offsets[i]:row_offsets[i + 1]]``, so ``row_offsets[i + 1] - row_offsets[i]``
    is the popcount of bitmap row ``i`` and ``row_offsets[M] = nnz``.
    ``bitmap``: uint8 ``(M, ceil(K / 64) * 8)``, rows padded to whole 64-bit words: column
    ``j`` of row ``i`` is stored iff bit ``j % 8`` of ``bitmap[i, j // 8]`` is set (LSB first,
    so 64-bit little-endian word ``w`` holds columns ``64 w .. 64 w + 63`` in bit order);
    bits past ``K`` are 0.
    ``values``: floating ``(nnz,)``, row by row, increasing column order within a row.

    The products take ``(row_offsets, bitmap)`` as structure and ``nnz`` as their one
    parameter (so fake kernels know the shape of a sampled product without reading data).
    """

    layout = "bitmap"
    family = "unstructured"
    tensor_names = ("row_offsets", "bitmap", "values")
    structure_names = ("row_offsets", "bitmap")
    param_names = ("nnz",)
    torch_layouts = (torch.sparse_csr, torch.sparse_coo)

    def __init__(
        self,
        row_offsets: torch.Tensor,
        bitmap: torch.Tensor,
        values: torch.Tensor,
        shape: tuple[int, int],
        validate: bool = True,
    ) -> None:
        super().__init__(shape)
        if validate:
            row_offsets, bitmap, values = validate_bitmap(row_offsets, bitmap, values, self._shape)
        self.row_offsets = row_offsets
        self.bitmap = bitmap
        self.values = values

    def params(self) -> tuple[int, ...]:
        return (int(self.values.shape[0]),)

    @classmethod
    def from_parts(
        cls,
        tensors: dict[str, torch.Tensor],
        shape: tuple[int, int],
        params: tuple[int, ...] = (),
        validate: bool = True,
    ) -> BitmapMatrix:
        """From its named tensors (``row_offsets``, ``bitmap``, ``values``)."""
        return cls(tensors["row_offsets"], tensors["bitmap"], tensors["values"], shape,
                   validate=validate)

    @classmethod
    def from_dense(cls, dense: torch.Tensor) -> BitmapMatrix:
        """Keep the nonzeros of a 2-D dense tensor."""
        check_tensor("dense", dense, 2)
        check_float("dense", dense)
        mask = dense != 0
        return cls._from_mask(mask, dense[mask].contiguous(), tuple(dense.shape))

    @classmethod
    def _from_mask(cls, mask: torch.Tensor, values: torch.Tensor, shape) -> BitmapMatrix:
        m = mask.shape[0]
        offsets = torch.zeros(m + 1, dtype=torch.int32, device=mask.device)
        offsets[1:] = torch.cumsum(mask.sum(1), 0)
        return cls(offsets, pack_mask(mask), values, shape, validate=False)

    @classmethod
    def from_torch(cls, t: torch.Tensor) -> BitmapMatrix:
        """From a ``torch.sparse_csr`` (or COO) tensor, keeping explicitly stored zeros.

        Duplicate entries are summed; columns need not be sorted.
        """
        if t.layout not in (torch.sparse_csr, torch.sparse_coo):
            raise TypeError(
                f"t: expected a torch.sparse_csr or sparse_coo tensor, got layout {t.layout}"
            )
        if t.dim() != 2:
            raise ValueError(f"t: expected a 2-D sparse tensor, got shape {tuple(t.shape)}")
        coo = (t.to_sparse_coo() if t.layout != torch.sparse_coo else t).coalesce()
        rows, cols = coo.indices()
        check_float("t", coo.values())
        mask = torch.zeros(t.shape, dtype=torch.bool, device=t.device)
        mask[rows, cols] = True
        return cls._from_mask(mask, coo.values().contiguous(), tuple(t.shape))

    def mask(self) -> torch.Tensor:
        """bool ``(M, K)``: the stored positions."""
        return unpack_mask(self.bitmap, self.shape[1])

    def to_torch(self) -> torch.Tensor:
        """A ``torch.sparse_csr`` tensor (int64 indices) with the same values."""
        cols = self.mask().nonzero()[:, 1]
        return torch.sparse_csr_tensor(
            self.row_offsets.long(), cols, self.values, self.shape, check_invariants=False
        )

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        out[self.mask()] = self.values
        return out

    def check_fit(self) -> None:
        m, k = self._shape
        offs, bits, v = self.row_offsets, self.bitmap, self.values
        if (
            type(offs) is torch.Tensor
            and type(bits) is torch.Tensor
            and type(v) is torch.Tensor
            and offs.shape == (m + 1,)
            and bits.shape == (m, row_bytes(k))
            and v.dim() == 1
        ):
            return
        expect_1d("row_offsets", offs)
        expect_1d("values", v)
        if offs.numel() != m + 1:
            fit_error("row_offsets", f"has {offs.numel()} entries, shape {self.shape} needs "
                                     f"M + 1 = {m + 1}")
        if not isinstance(bits, torch.Tensor) or tuple(bits.shape) != (m, row_bytes(k)):
            got = tuple(bits.shape) if isinstance(bits, torch.Tensor) else type(bits).__name__
            fit_error("bitmap", f"expected shape {(m, row_bytes(k))} for {self.shape}, got {got}")

    @staticmethod
    def rows_of(structure, values, params):
        return structure[0].shape[0] - 1

    @staticmethod
    def sddmm_shape(structure, a, b, params):
        return (params[0],)

    @staticmethod
    def reference_spmm(row_offsets, bitmap, values, x, nnz):
        rows, cols = unpack_mask(bitmap, x.shape[0]).nonzero(as_tuple=True)
        return coo_spmm(rows, cols, values, x, bitmap.shape[0])

    @staticmethod
    def reference_spmm_t(row_offsets, bitmap, values, d, num_cols, nnz):
        rows, cols = unpack_mask(bitmap, num_cols).nonzero(as_tuple=True)
        return coo_spmm(cols, rows, values, d, num_cols)

    @staticmethod
    def reference_sddmm(row_offsets, bitmap, a, b, nnz):
        rows, cols = unpack_mask(bitmap, b.shape[0]).nonzero(as_tuple=True)
        return coo_sddmm(rows, cols, a, b)


def validate_bitmap(
    row_offsets: torch.Tensor, bitmap: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a bitmap triple against ``shape``; return it with canonical dtypes.

    Checks: ``row_offsets`` integer ``(M + 1,)`` from 0, each step the popcount of its bitmap
    row, ending at ``nnz``; ``bitmap`` uint8 ``(M, ceil(K / 64) * 8)`` with no bit past ``K``;
    ``values`` floating ``(nnz,)``. Raises ValueError/TypeError naming the argument.
    """
    m, k = shape
    if m < 0 or k < 0:
        raise ValueError(f"shape: dimensions must be >= 0, got {shape}")
    check_tensor("row_offsets", row_offsets, 1)
    check_tensor("bitmap", bitmap, 2)
    check_tensor("values", values, 1)
    if row_offsets.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"row_offsets: expected int32 or int64, got {row_offsets.dtype}")
    if bitmap.dtype != torch.uint8:
        raise TypeError(f"bitmap: expected uint8 packed bits, got {bitmap.dtype}")
    check_float("values", values)
    if not (row_offsets.device == bitmap.device == values.device):
        raise ValueError(
            f"row_offsets, bitmap, values: must share one device, got {row_offsets.device}, "
            f"{bitmap.device}, {values.device}"
        )
    if row_offsets.numel() != m + 1:
        raise ValueError(f"row_offsets: expected length {m + 1}, got {row_offsets.numel()}")
    width = row_bytes(k)
    if tuple(bitmap.shape) != (m, width):
        raise ValueError(
            f"bitmap: expected shape {(m, width)} (rows of ceil(K/64) 64-bit words), got "
            f"{tuple(bitmap.shape)}"
        )
    nnz = values.numel()
    if nnz >= 2**31:
        raise ValueError(f"values: {nnz} stored entries exceed 32-bit row offsets")
    offs = row_offsets.long()
    if int(offs[0]) != 0:
        raise ValueError(f"row_offsets: must start at 0, got {int(offs[0])}")
    if int(offs[-1]) != nnz:
        raise ValueError(f"row_offsets: last entry must equal nnz = {nnz}, got {int(offs[-1])}")
    if m:
        bits = unpack_mask(bitmap, width * 8)  # every bit, padding included
        padded = bits[:, k:]
        if bool(padded.any()):
            r, c = padded.nonzero()[0].tolist()
            raise ValueError(
                f"bitmap: row {r} sets bit {k + c}, past the K = {k} columns (padding bits "
                f"must be 0)"
            )
        counts = bits.sum(1)
        bad = (offs.diff() != counts).nonzero()
        if bad.numel():
            r = int(bad[0])
            raise ValueError(
                f"row_offsets: row {r} spans {int(offs[r + 1] - offs[r])} values, its bitmap row "
                f"sets {int(counts[r])} bits"
            )
    return row_offsets.to(torch.int32).contiguous(), bitmap.contiguous(), values.contiguous()


LAYOUT = register_layout(BitmapMatrix)
