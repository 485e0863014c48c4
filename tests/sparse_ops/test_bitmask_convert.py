"""compressed-tensors bitmask tensors <-> bitmap / 2:4 tensors, against the real package's own
compressors and decompressors (compressed-tensors 0.14.0.1), on odd shapes, bit for bit."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops import bitmask_convert as bc
from tests.helpers import draw_seed

pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors.sparse_compressors.sparse_24_bitmask import (  # noqa: E402
    sparse24_bitmask_compress,
    sparse24_bitmask_decompress,
)
from compressed_tensors.compressors.sparse_compressors.sparse_bitmask import (  # noqa: E402
    bitmask_compress,
    bitmask_decompress,
)

SHAPES = [(7, 13), (5, 64), (9, 130), (3, 1), (4, 65), (1, 8), (16, 200)]
SHAPES_24 = [(7, 12), (5, 64), (9, 132), (3, 4), (11, 68), (1, 8)]


def pruned(shape, layout, seed, dtype=torch.float32, **kw):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    return so.prune(w, layout, **kw).to(dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sparse_bitmask_to_bitmap_bit_exact(shape, dtype, monkeypatch):
    monkeypatch.setattr(bc, "CHUNK_BYTES", 8)  # many row chunks, even on small layers
    w = pruned(shape, "bitmap", draw_seed(), dtype, density=0.4)
    values, bitmask, row_offsets = bitmask_compress(w)  # the real writer
    parts = bc.bitmap_from_bitmask("x", shape, values, bitmask, row_offsets)
    s = so.BitmapMatrix.from_parts(parts, shape, (values.numel(),), validate=True)
    ref = so.to_sparse(w, "bitmap")
    assert torch.equal(s.bitmap, ref.bitmap) and torch.equal(s.row_offsets, ref.row_offsets)
    assert torch.equal(s.values, ref.values) and torch.equal(s.to_dense(), w)
    assert parts["values"].data_ptr() == values.data_ptr()  # no copy of the values
    back = bc.bitmask_from_bitmap(s.row_offsets, s.bitmap, s.values, shape)
    assert torch.equal(back["bitmask"], bitmask) and torch.equal(back["compressed"], values)
    assert torch.equal(back["row_offsets"], row_offsets)
    assert torch.equal(bitmask_decompress(back["compressed"], back["bitmask"], list(shape)), w)
    dense = bc.bitmask_from_dense(w)
    assert torch.equal(dense["bitmask"], bitmask) and torch.equal(dense["compressed"], values)


@pytest.mark.parametrize("shape", SHAPES_24)
def test_sparse_24_bitmask_to_nm_bit_exact(shape, monkeypatch):
    monkeypatch.setattr(bc, "CHUNK_BYTES", 8)
    w = pruned(shape, "nm", draw_seed(), n=2, m=4)
    values, bitmask = sparse24_bitmask_compress(w)
    parts = bc.nm24_from_bitmask("x", shape, values, bitmask)
    s = so.NMMatrix.from_parts(parts, shape, (2, 4), validate=True)
    ref = so.to_sparse(w, "nm", n=2, m=4)
    assert torch.equal(s.metadata, ref.metadata) and torch.equal(s.values, ref.values)
    assert torch.equal(s.to_dense(), w)
    back = bc.bitmask24_from_nm(s.values, s.metadata, shape)
    assert torch.equal(back["bitmask"], bitmask) and torch.equal(back["compressed"], values)
    assert torch.equal(sparse24_bitmask_decompress(back["compressed"], back["bitmask"],
                                                   list(shape)), w)


def test_24_from_slots_out_of_order_or_at_one_position():
    """A 2:4 matrix built elsewhere may store a group's slots in the other order, or both at
    one position (to_dense sums them): the written bitmask still decompresses to to_dense."""
    shape = (3, 8)
    vals = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [0.5, 0.0, 9.0, 1.5]])
    pos = torch.tensor([[3, 1, 0, 2], [2, 2, 1, 3], [0, 0, 3, 3]])  # (g0 s0, g0 s1, g1 s0, ..)
    meta = (pos[:, 0] | pos[:, 1] << 2 | pos[:, 2] << 4 | pos[:, 3] << 6).to(torch.uint8)
    s = so.NMMatrix.from_parts({"values": vals, "metadata": meta[:, None]}, shape, (2, 4))
    back = bc.bitmask24_from_nm(s.values, s.metadata, shape)
    got = sparse24_bitmask_decompress(back["compressed"], back["bitmask"], list(shape))
    assert torch.equal(got, s.to_dense())
    again = so.NMMatrix.from_parts(bc.nm24_from_bitmask("x", shape, back["compressed"],
                                                        back["bitmask"]), shape, (2, 4))
    assert torch.equal(again.to_dense(), s.to_dense())


def test_bitmap_errors_name_the_tensor_and_row():
    shape = (4, 20)
    w = pruned(shape, "bitmap", draw_seed(), density=0.5)
    v, b, ro = bitmask_compress(w)
    bad = b.clone()
    bad[2, 0] ^= 1  # one more (or one fewer) bit than values
    with pytest.raises(ValueError, match=r"layer\.compressed: holds \d+ values, layer\.bitmask"):
        bc.bitmap_from_bitmask("layer", shape, v, bad, ro)
    bad = b.clone()
    bad[1, -1] |= 0x80  # column 23 of 20
    with pytest.raises(ValueError, match=r"layer\.bitmask: row 1 sets a bit past"):
        bc.bitmap_from_bitmask("layer", shape, v, bad, ro)
    wrong = ro.clone()
    wrong[2] += 1
    with pytest.raises(ValueError, match=r"layer\.row_offsets: row 2 starts at"):
        bc.bitmap_from_bitmask("layer", shape, v, b, wrong)
    with pytest.raises(ValueError, match=r"layer\.bitmask: expected uint8 of shape \(4, 3\)"):
        bc.bitmap_from_bitmask("layer", shape, v, b[:, :2], ro)
    with pytest.raises(ValueError, match=r"layer\.row_offsets: expected 4 integers"):
        bc.bitmap_from_bitmask("layer", shape, v, b, ro.float())
    with pytest.raises(ValueError, match=r"layer\.compressed: dtype torch\.int32"):
        bc.bitmap_from_bitmask("layer", shape, v.int(), b, ro)


def test_24_errors_name_the_tensor_and_row():
    shape = (3, 16)
    w = pruned(shape, "nm", draw_seed(), n=2, m=4)
    v, b = sparse24_bitmask_compress(w)
    bad = b.clone()
    bad[2, 1] = 0b00010111  # a group of four with three bits
    with pytest.raises(ValueError, match=r"L\.bitmask: row 2, columns 8\.\.15: every group"):
        bc.nm24_from_bitmask("L", shape, v, bad)
    with pytest.raises(ValueError, match=r"L\.compressed: expected shape \(3, 8\)"):
        bc.nm24_from_bitmask("L", shape, v[:, :7], b)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        bc.nm24_from_bitmask("L", (3, 14), v, b)
    # K % 8 == 4: the last byte holds one group, its high nibble must be 0
    w12 = pruned((2, 12), "nm", draw_seed(), n=2, m=4)
    v12, b12 = sparse24_bitmask_compress(w12)
    bad = b12.clone()
    bad[0, -1] |= 0x30
    with pytest.raises(ValueError, match=r"L\.bitmask: row 0, columns 8\.\.11"):
        bc.nm24_from_bitmask("L", (2, 12), v12, bad)


def test_shape_tensor_check():
    bc.check_shape_tensor("x.shape", torch.tensor([[3], [4]]), (3, 4))
    with pytest.raises(ValueError, match=r"x\.shape: stores shape \[4, 3\]"):
        bc.check_shape_tensor("x.shape", torch.tensor([4, 3]), (3, 4))
    with pytest.raises(ValueError, match=r"x\.shape: expected two integers"):
        bc.check_shape_tensor("x.shape", torch.tensor([3.0, 4.0]), (3, 4))
