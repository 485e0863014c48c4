"""compressed-tensors' bitmask tensors <-> this package's bitmap and 2:4 tensors, bit for bit.

compressed-tensors (0.14, the last release that writes sparse weights) stores a weight
``W (M, K)`` in two formats:

- ``sparse-bitmask``: ``compressed`` (the nonzeros, row-major, ``(nnz,)``), ``bitmask``
  (uint8 ``(M, ceil(K / 8))``: ``numpy.packbits(W != 0, axis=-1, bitorder="little")``, so
  bit ``j % 8`` of byte ``j // 8`` is column ``j``; the bits past ``K`` are 0),
  ``row_offsets`` (int64 ``(M,)``: where each row's values start) and ``shape`` (``[M, K]``).
- ``sparse-24-bitmask``: ``compressed`` (``(M, K / 2)``: the two kept values of each group
  of four, in column order), ``bitmask`` (as above, exactly two bits set per group of four)
  and ``shape`` (``[[M], [K]]``).

This package's bitmap layout has the same bit order with rows padded to whole 64-bit words
(``(M, 8 * ceil(K / 64))``) and ``M + 1`` row offsets; its 2:4 layout keeps the same values
in the same order, with two 2-bit positions per group: group ``g`` of a row is nibble
``g % 2`` of metadata byte ``g // 2``, exactly where the bitmask holds that group's four
bits. So a bitmask byte maps to a metadata byte through a 256-entry table, and neither
direction ever builds a dense weight. Every check runs on row chunks (``CHUNK_BYTES`` of
bitmask at a time), so temporaries stay a few MiB whatever the layer's size.

Errors are ``ValueError`` naming the tensor (``<prefix>.bitmask``, ...) and the row.
"""

from __future__ import annotations

import torch

CHUNK_BYTES = 1 << 18
FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)

# popcount of each byte value
POPCOUNT = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.int64)


def _nibble_code(v: int) -> int:
    """A 4-bit group with exactly two bits set -> ``p0 | p1 << 2`` (``p0 < p1``); else -1."""
    bits = [p for p in range(4) if v >> p & 1]
    return bits[0] | bits[1] << 2 if len(bits) == 2 else -1


def _byte_tables() -> tuple[torch.Tensor, torch.Tensor]:
    full, low = [], []
    for b in range(256):
        lo, hi = _nibble_code(b & 15), _nibble_code(b >> 4)
        full.append(lo | hi << 4 if lo >= 0 and hi >= 0 else -1)
        low.append(lo if lo >= 0 and b >> 4 == 0 else -1)
    return torch.tensor(full, dtype=torch.int16), torch.tensor(low, dtype=torch.int16)


# bitmask byte (two groups of four) -> 2:4 metadata byte, or -1 when a group is not 2 of 4;
# LOW_TO_META for a row's last byte when K % 8 == 4 (one group, the high nibble must be 0)
BITMASK_TO_META, LOW_TO_META = _byte_tables()


def packed_row_bytes(k: int) -> int:
    """Bytes of one compressed-tensors bitmask row: ``ceil(k / 8)``."""
    return -(-k // 8)


def bitmap_row_bytes(k: int) -> int:
    """Bytes of one bitmap-layout row: ``8 * ceil(k / 64)`` (whole 64-bit words)."""
    return -(-k // 64) * 8


def _rows_per_chunk(row_bytes: int) -> int:
    return max(1, CHUNK_BYTES // max(1, row_bytes))


def check_shape_tensor(name: str, shape: torch.Tensor, want: tuple[int, int]) -> None:
    """``name`` (a stored ``shape``) must hold the two integers ``want`` (any 2-element form)."""
    if not isinstance(shape, torch.Tensor) or shape.dtype.is_floating_point \
            or shape.dtype == torch.bool or shape.numel() != 2:
        got = tuple(shape.shape) if isinstance(shape, torch.Tensor) else type(shape).__name__
        raise ValueError(f"{name}: expected two integers (rows, columns), got {got}")
    got = tuple(int(v) for v in shape.flatten().tolist())
    if got != tuple(want):
        raise ValueError(f"{name}: stores shape {list(got)}, the model's layer is {list(want)} "
                         f"(out_features, in_features)")


def _check_values(name: str, values: torch.Tensor) -> None:
    if values.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name}: dtype {values.dtype} is not a float type this package "
                         f"computes with ({', '.join(str(d) for d in FLOAT_DTYPES)})")


def _check_bitmask(name: str, bitmask: torch.Tensor, shape: tuple[int, int]) -> None:
    m, k = shape
    want = (m, packed_row_bytes(k))
    if bitmask.dtype != torch.uint8 or tuple(bitmask.shape) != want:
        raise ValueError(f"{name}: expected uint8 of shape {want} (rows of ceil(K/8) bytes) for "
                         f"a {m} x {k} weight, got {bitmask.dtype} {tuple(bitmask.shape)}")


def _check_padding_bits(name: str, bitmask: torch.Tensor, k: int) -> None:
    if k % 8 == 0 or bitmask.shape[0] == 0:
        return
    extra = bitmask[:, -1] & ((0xFF << (k % 8)) & 0xFF)
    bad = extra.nonzero()
    if bad.numel():
        r = int(bad[0])
        raise ValueError(f"{name}: row {r} sets a bit past the {k} columns (padding bits of "
                         f"the last byte must be 0)")


def row_counts(bitmask: torch.Tensor) -> torch.Tensor:
    """int64 ``(M,)``: the bits set in each row of a uint8 ``(M, B)`` bitmask (chunked)."""
    rows = bitmask.shape[0]
    out = torch.empty(rows, dtype=torch.int64)
    step = _rows_per_chunk(bitmask.shape[1])
    for r0 in range(0, rows, step):
        out[r0:r0 + step] = POPCOUNT[bitmask[r0:r0 + step].long()].sum(1)
    return out


def bitmap_from_bitmask(
    prefix: str,
    shape: tuple[int, int],
    compressed: torch.Tensor,
    bitmask: torch.Tensor,
    row_offsets: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """A ``sparse-bitmask`` weight as bitmap-layout tensors ``row_offsets``, ``bitmap``,
    ``values`` (``so.BitmapMatrix.from_parts``), checked in full.

    ``row_offsets`` may be ``None`` (a ``sparse-24-bitmask`` weight whose ``K`` is not a
    multiple of 4 is read this way: its offsets follow from the popcounts). ``compressed``
    is used as the values without a copy when it is contiguous.
    """
    m, k = shape
    _check_bitmask(f"{prefix}.bitmask", bitmask, shape)
    _check_padding_bits(f"{prefix}.bitmask", bitmask, k)
    _check_values(f"{prefix}.compressed", compressed)
    values = compressed.reshape(-1) if compressed.dim() != 1 else compressed
    nnz = values.numel()
    if nnz >= 2**31:
        raise ValueError(f"{prefix}.compressed: {nnz} values exceed 32-bit row offsets")
    counts = row_counts(bitmask)
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1]) if m else 0
    if total != nnz:
        raise ValueError(f"{prefix}.compressed: holds {nnz} values, {prefix}.bitmask sets "
                         f"{total} bits")
    if row_offsets is not None:
        name = f"{prefix}.row_offsets"
        if row_offsets.dtype.is_floating_point or row_offsets.dtype == torch.bool \
                or row_offsets.dim() != 1 or row_offsets.numel() != m:
            raise ValueError(f"{name}: expected {m} integers (each row's first value), got "
                             f"{row_offsets.dtype} {tuple(row_offsets.shape)}")
        bad = (row_offsets.long() != ends - counts).nonzero()
        if bad.numel():
            r = int(bad[0])
            raise ValueError(f"{name}: row {r} starts at {int(row_offsets[r])}, but the rows "
                             f"before it set {int(ends[r] - counts[r])} bits in "
                             f"{prefix}.bitmask")
    width = bitmap_row_bytes(k)
    bitmap = torch.zeros(m, width, dtype=torch.uint8)
    bitmap[:, :bitmask.shape[1]] = bitmask
    offsets = torch.zeros(m + 1, dtype=torch.int32)
    offsets[1:] = ends
    return {"row_offsets": offsets, "bitmap": bitmap, "values": values.contiguous()}


def nm24_from_bitmask(
    prefix: str, shape: tuple[int, int], compressed: torch.Tensor, bitmask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """A ``sparse-24-bitmask`` weight (``K % 4 == 0``) as 2:4 tensors ``values`` ``(M, K / 2)``
    and ``metadata`` (``so.NMMatrix.from_parts(..., params=(2, 4))``), checked in full."""
    m, k = shape
    if k % 4:
        raise ValueError(f"{prefix}: K = {k} is not a multiple of 4: not a 2:4 weight")
    _check_bitmask(f"{prefix}.bitmask", bitmask, shape)
    _check_values(f"{prefix}.compressed", compressed)
    if compressed.numel() != m * (k // 2) or compressed.dim() not in (1, 2) or (
            compressed.dim() == 2 and tuple(compressed.shape) != (m, k // 2)):
        raise ValueError(f"{prefix}.compressed: expected shape {(m, k // 2)} (two values per "
                         f"group of four), got {tuple(compressed.shape)}")
    width = bitmask.shape[1]
    meta = torch.empty(m, width, dtype=torch.uint8)
    step = _rows_per_chunk(width)
    half = k % 8 == 4
    for r0 in range(0, m, step):
        chunk = bitmask[r0:r0 + step].long()
        codes = BITMASK_TO_META[chunk]
        if half:
            codes[:, -1] = LOW_TO_META[chunk[:, -1]]
        bad = (codes < 0).nonzero()
        if bad.numel():
            r, byte = (int(v) for v in bad[0])
            raise ValueError(f"{prefix}.bitmask: row {r0 + r}, columns {byte * 8}.."
                             f"{min(byte * 8 + 8, k) - 1}: every group of four must set exactly "
                             f"two bits (a 2:4 weight), got byte {int(chunk[r, byte]):#04x}")
        meta[r0:r0 + step] = codes.to(torch.uint8)
    return {"values": compressed.reshape(m, k // 2).contiguous(), "metadata": meta}


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """bool ``(M, K)`` -> uint8 ``(M, ceil(K / 8))``, little bit order (compressed-tensors')."""
    rows, k = mask.shape
    width = packed_row_bytes(k)
    padded = torch.zeros(rows, width * 8, dtype=torch.uint8)
    padded[:, :k] = mask
    shifts = torch.arange(8, dtype=torch.uint8)
    return (padded.view(rows, width, 8) << shifts).sum(-1, dtype=torch.uint8)


def bitmask_from_dense(dense: torch.Tensor) -> dict[str, torch.Tensor]:
    """``sparse-bitmask`` tensors of a dense ``(M, K)`` weight: its nonzeros (as the
    writer's ``bitmask_compress``): ``compressed``, ``bitmask``, ``row_offsets``, ``shape``."""
    mask = dense != 0
    counts = mask.sum(1)
    return {"shape": torch.tensor(list(dense.shape), dtype=torch.int64),
            "compressed": dense[mask].contiguous(), "bitmask": pack_mask(mask),
            "row_offsets": (torch.cumsum(counts, 0) - counts).to(torch.int64)}


def bitmask_from_bitmap(row_offsets: torch.Tensor, bitmap: torch.Tensor, values: torch.Tensor,
                        shape: tuple[int, int]) -> dict[str, torch.Tensor]:
    """``sparse-bitmask`` tensors of a bitmap-layout weight, without a dense weight: the
    bitmap's rows cut to ``ceil(K / 8)`` bytes, the offsets without their last entry."""
    m, k = shape
    return {"shape": torch.tensor([m, k], dtype=torch.int64),
            "compressed": values.detach().contiguous(),
            "bitmask": bitmap[:, :packed_row_bytes(k)].contiguous(),
            "row_offsets": row_offsets[:m].to(torch.int64)}


def bitmask24_from_nm(values: torch.Tensor, metadata: torch.Tensor, shape: tuple[int, int]
                      ) -> dict[str, torch.Tensor]:
    """``sparse-24-bitmask`` tensors of a 2:4 weight (``K % 4 == 0``), without a dense weight.

    The two slots of a group become its two bits, values in column order (slots stored in
    the other order are swapped). Two slots at one position (a group that held fewer than
    two nonzeros, built elsewhere) are summed at that position, as ``to_dense`` does, and
    the second slot moves to a free position with value 0.
    """
    m, k = shape
    if k % 4:
        raise ValueError(f"shape: K = {k} is not a multiple of 4, no sparse-24-bitmask form")
    g = k // 4
    meta = metadata.to(torch.int64)
    shifts = torch.arange(0, 8, 2, dtype=torch.int64)
    pos = ((meta.unsqueeze(-1) >> shifts) & 3).reshape(m, -1)[:, :2 * g].reshape(m, g, 2)
    vals = values.detach().reshape(m, g, 2).clone()
    p0, p1 = pos[..., 0].clone(), pos[..., 1].clone()
    same = p0 == p1
    if bool(same.any()):
        vals[..., 0] = torch.where(same, vals[..., 0] + vals[..., 1], vals[..., 0])
        vals[..., 1] = torch.where(same, torch.zeros_like(vals[..., 1]), vals[..., 1])
        p1 = torch.where(same, (p0 == 0).long(), p1)
    swap = p0 > p1
    if bool(swap.any()):
        v0 = torch.where(swap, vals[..., 1], vals[..., 0])
        v1 = torch.where(swap, vals[..., 0], vals[..., 1])
        vals = torch.stack([v0, v1], -1)
        p0, p1 = torch.minimum(p0, p1), torch.maximum(p0, p1)
    nibbles = (1 << p0) | (1 << p1)  # (m, g)
    if g % 2:
        nibbles = torch.cat([nibbles, torch.zeros(m, 1, dtype=torch.int64)], 1)
    pairs = nibbles.reshape(m, -1, 2)
    bitmask = (pairs[..., 0] | pairs[..., 1] << 4).to(torch.uint8)
    return {"shape": torch.tensor([[m], [k]], dtype=torch.int64),
            "compressed": vals.reshape(m, k // 2).contiguous(), "bitmask": bitmask}
