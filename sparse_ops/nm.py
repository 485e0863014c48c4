"""N:M: at most n nonzeros in every group of m along the last dim, with packed metadata."""

from __future__ import annotations

import torch

from ._checks import check_float, check_nm, check_tensor
from .coo import coo_sddmm, coo_spmm
from .format import SparseMatrix, fit_error
from .registry import register_layout


def meta_bits(m: int) -> int:
    """Bits per stored position: 1 for m = 2, 2 for m <= 4, 4 for m <= 16."""
    return 1 if m == 2 else 2 if m <= 4 else 4


def num_groups(k: int, m: int) -> int:
    return -(-k // m)


def meta_bytes(slots: int, m: int) -> int:
    """Metadata bytes of one row holding ``slots`` stored positions."""
    return -(-slots * meta_bits(m) // 8)


def pack_positions(pos: torch.Tensor, m: int) -> torch.Tensor:
    """Pack ``(M, S)`` positions in ``[0, m)`` into uint8 ``(M, ceil(S * b / 8))``."""
    b = meta_bits(m)
    per = 8 // b
    rows, slots = pos.shape
    width = meta_bytes(slots, m)
    padded = torch.zeros(rows, width * per, dtype=torch.int32, device=pos.device)
    padded[:, :slots] = pos.to(torch.int32)
    shifts = torch.arange(per, device=pos.device, dtype=torch.int32) * b
    packed = (padded.view(rows, width, per) << shifts).sum(-1)
    return packed.to(torch.uint8)


def unpack_positions(meta: torch.Tensor, slots: int, m: int) -> torch.Tensor:
    """Inverse of ``pack_positions``: int64 ``(M, slots)`` positions in ``[0, 2**b)``."""
    b = meta_bits(m)
    per = 8 // b
    shifts = torch.arange(per, device=meta.device, dtype=torch.int32) * b
    pos = (meta.to(torch.int32).unsqueeze(-1) >> shifts) & ((1 << b) - 1)
    return pos.reshape(meta.shape[0], -1)[:, :slots].long()


class NMMatrix(SparseMatrix):
    """An ``(M, K)`` matrix with at most ``n`` nonzeros per ``m`` consecutive columns.

    ``values``: ``(M, G * n)`` with ``G = ceil(K / m)``; ``metadata``: uint8
    ``(M, ceil(G * n * b / 8))`` of packed in-group positions (docs/formats.md).
    """

    layout = "nm"
    family = "nm"
    tensor_names = ("metadata", "values")
    structure_names = ("metadata",)
    param_names = ("n", "m")
    option_names = ("n", "m")

    def __init__(
        self,
        values: torch.Tensor,
        metadata: torch.Tensor,
        shape: tuple[int, int],
        n: int,
        m: int,
        validate: bool = True,
    ) -> None:
        super().__init__(shape)
        self.n, self.m = check_nm(n, m)
        if validate:
            values, metadata = validate_nm(values, metadata, self._shape, self.n, self.m)
        self.values = values
        self.metadata = metadata

    def params(self) -> tuple[int, ...]:
        return (self.n, self.m)

    @classmethod
    def options_of(cls, params: tuple[int, ...]) -> dict:
        return {"n": int(params[0]), "m": int(params[1])}

    @classmethod
    def from_parts(cls, tensors, shape, params=(), validate=True) -> NMMatrix:
        n, m = params
        return cls(tensors["values"], tensors["metadata"], shape, int(n), int(m),
                   validate=validate)

    @classmethod
    def from_dense(cls, dense: torch.Tensor, n: int, m: int) -> NMMatrix:
        """Compress a dense tensor that already has at most ``n`` nonzeros per group of ``m``.

        Raises ValueError naming the first offending group otherwise (prune it first:
        ``so.prune(W, "nm", n=n, m=m)``).
        """
        n, m = check_nm(n, m)
        check_tensor("dense", dense, 2)
        check_float("dense", dense)
        rows, k = dense.shape
        g = num_groups(k, m)
        padded = torch.zeros(rows, g * m, dtype=dense.dtype, device=dense.device)
        padded[:, :k] = dense
        groups = padded.view(rows, g, m)
        nz = groups != 0
        counts = nz.sum(-1)
        if rows and g and bool((counts > n).any()):
            r, gi = (counts > n).nonzero()[0].tolist()
            raise ValueError(
                f"dense: group {gi} of row {r} (columns {gi * m}..{min(gi * m + m, k) - 1}) "
                f"holds {int(counts[r, gi])} nonzeros, more than n={n}; prune it first with "
                f"so.prune(W, 'nm', n={n}, m={m})"
            )
        col = torch.arange(g * m, device=dense.device).view(g, m)
        in_range = col < k
        # Nonzeros first, then in-range zeros, then padding; position breaks ties.
        earlier = m - 1 - torch.arange(m, device=dense.device)
        score = nz.long() * 2 * m + in_range.long() * m + earlier
        pos = score.topk(n, dim=-1).indices.sort(-1).values  # (rows, g, n)
        valid = (col.expand(rows, g, m).gather(-1, pos)) < k
        pos = torch.where(valid, pos, torch.zeros_like(pos))
        vals = torch.where(valid, groups.gather(-1, pos), torch.zeros((), dtype=dense.dtype,
                                                                     device=dense.device))
        return cls(
            vals.reshape(rows, g * n).contiguous(),
            pack_positions(pos.reshape(rows, g * n), m),
            (rows, k), n, m, validate=False,
        )

    def positions(self) -> torch.Tensor:
        """int64 ``(M, G * n)``: the in-group position of each slot."""
        return unpack_positions(self.metadata, self.values.shape[1], self.m)

    def columns(self) -> torch.Tensor:
        """int64 ``(M, G * n)``: the column of each slot (``g * m + position``)."""
        slots = self.values.shape[1]
        group = torch.arange(slots, device=self.device) // self.n
        return group * self.m + self.positions()

    def to_dense(self) -> torch.Tensor:
        rows, k = self.shape
        out = torch.zeros(rows, k, dtype=self.dtype, device=self.device)
        return out.scatter_add_(1, self.columns(), self.values)

    def check_fit(self) -> None:
        m_rows, k = self.shape
        n, m = self.params()
        slots = num_groups(k, m) * n
        v, meta = self.values, self.metadata
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != (m_rows, slots):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            fit_error("values", f"expected shape {(m_rows, slots)} for {self.shape} at {n}:{m}, "
                                f"got {got}")
        width = meta_bytes(slots, m)
        if not isinstance(meta, torch.Tensor) or tuple(meta.shape) != (m_rows, width):
            got = tuple(meta.shape) if isinstance(meta, torch.Tensor) else type(meta).__name__
            fit_error("metadata", f"expected shape {(m_rows, width)} for {self.shape} at "
                                  f"{n}:{m}, got {got}")

    @staticmethod
    def rows_of(structure, values, params):
        return values.shape[0]

    @staticmethod
    def sddmm_shape(structure, a, b, params):
        n, m = params
        return (a.shape[0], (b.shape[0] + m - 1) // m * n)

    @staticmethod
    def reference_spmm(metadata, values, x, n, m):
        rows, cols = _nm_coo(metadata, values.shape[0], x.shape[0], n, m)
        return coo_spmm(rows, cols, values.reshape(-1), x, values.shape[0])

    @staticmethod
    def reference_spmm_t(metadata, values, d, num_cols, n, m):
        rows, cols = _nm_coo(metadata, values.shape[0], num_cols, n, m)
        return coo_spmm(cols, rows, values.reshape(-1), d, num_cols)

    @staticmethod
    def reference_sddmm(metadata, a, b, n, m):
        rows, cols = _nm_coo(metadata, a.shape[0], b.shape[0], n, m)
        return coo_sddmm(rows, cols, a, b).reshape(a.shape[0], num_groups(b.shape[0], m) * n)


def _nm_coo(metadata: torch.Tensor, rows: int, k: int, n: int, m: int):
    """Row and column of every slot of an N:M structure (``rows`` x ``ceil(k/m) * n``)."""
    slots = num_groups(k, m) * n
    pos = unpack_positions(metadata, slots, m)
    cols = (torch.arange(slots, device=metadata.device) // n) * m + pos
    r = torch.arange(rows, device=metadata.device).repeat_interleave(slots)
    return r, cols.reshape(-1)


def validate_nm(
    values: torch.Tensor, metadata: torch.Tensor, shape: tuple[int, int], n: int, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check N:M values and metadata against ``shape``; every decoded column must be < K."""
    rows, k = shape
    if rows < 0 or k < 0:
        raise ValueError(f"shape: dimensions must be >= 0, got {shape}")
    check_tensor("values", values, 2)
    check_tensor("metadata", metadata, 2)
    check_float("values", values)
    if metadata.dtype != torch.uint8:
        raise TypeError(f"metadata: expected uint8 packed positions, got {metadata.dtype}")
    if values.device != metadata.device:
        raise ValueError(
            f"values, metadata: must share one device, got {values.device}, {metadata.device}"
        )
    slots = num_groups(k, m) * n
    if tuple(values.shape) != (rows, slots):
        raise ValueError(
            f"values: expected shape (M, ceil(K/m)*n) = {(rows, slots)}, got {tuple(values.shape)}"
        )
    width = meta_bytes(slots, m)
    if tuple(metadata.shape) != (rows, width):
        raise ValueError(
            f"metadata: expected shape {(rows, width)} for {slots} slots of {meta_bits(m)} bits, "
            f"got {tuple(metadata.shape)}"
        )
    if rows and slots:
        pos = unpack_positions(metadata, slots, m)
        group = torch.arange(slots, device=values.device) // n
        cols = group * m + pos
        bad = (pos >= m) | (cols >= k)
        if bool(bad.any()):
            r, s = bad.nonzero()[0].tolist()
            raise ValueError(
                f"metadata: slot {s % n} of group {s // n} in row {r} has position "
                f"{int(pos[r, s])}, column {int(cols[r, s])}: needs position < m={m} and "
                f"column < K={k}"
            )
    return values.contiguous(), metadata.contiguous()


LAYOUT = register_layout(NMMatrix)
