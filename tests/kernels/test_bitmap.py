"""Bitmap kernels against a float64 dense reference, on odd shapes, under the interpreter or CUDA.

K = 53 fits in one 64-bit word per row and is not a multiple of 8; K = 130 spans three words,
the last one nearly all padding. Every case has an empty row and a full row.
"""

import numpy as np
import pytest
import torch
import triton

from sparse_ops.kernels import bitmap_sddmm, bitmap_spmm, bitmap_spmm_t, bitmap_word_prefix
from sparse_ops.kernels.bitmap import (
    _bitmap_sddmm_kernel,
    _bitmap_spmm_kernel,
    _bitmap_spmm_t_kernel,
)
from tests.kernels.random_parts import (
    DEVICE,
    TOLERANCE,
    bitmap_columns,
    bitmap_dense,
    bitmap_pack,
    fresh_seed,
    randn,
    random_bitmap,
    rel_err,
    requires_triton_backend,
)

pytestmark = requires_triton_backend

M, K = 37, 53
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def _case(k=K, density=0.3, dtype=torch.float32, m=M):
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    parts = random_bitmap(g, m, k, density, dtype)
    return seed, g, parts, bitmap_dense(*parts, k)


def _sddmm_want(row_offsets, bitmap, a, b):
    rows, cols = bitmap_columns(row_offsets, bitmap, b.shape[0])
    return (a.double().cpu()[rows] * b.double().cpu()[cols]).sum(1)


def _all_products(parts, dense, x, d, tol, seed):
    """The three products of ``parts`` against the dense reference."""
    row_offsets, bitmap, values = parts
    k = x.shape[0]
    y = bitmap_spmm(row_offsets, bitmap, values, x)
    assert y.shape == (bitmap.shape[0], x.shape[1]) and y.dtype == x.dtype
    assert rel_err(y, dense @ x.double().cpu()) < tol, f"spmm, seed {seed}"
    z = bitmap_spmm_t(row_offsets, bitmap, values, d, k)
    assert z.shape == (k, d.shape[1]) and z.dtype == d.dtype
    assert rel_err(z, dense.T @ d.double().cpu()) < tol, f"spmm_t, seed {seed}"
    v = bitmap_sddmm(row_offsets, bitmap, d, x)
    assert v.shape == values.shape and v.dtype == d.dtype
    assert rel_err(v, _sddmm_want(row_offsets, bitmap, d, x)) < tol, f"sddmm, seed {seed}"


@pytest.mark.parametrize("n_cols", [1, 5, 19])
@pytest.mark.parametrize("density", [0.3, 0.7])
@pytest.mark.parametrize("k", [53, 130])
def test_products_fp32(k, density, n_cols):
    seed, g, parts, dense = _case(k, density)
    _all_products(parts, dense, randn(g, k, n_cols), randn(g, M, n_cols), 1e-5, seed)


@pytest.mark.parametrize("k", [53, 130])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_products_per_dtype(dtype, k):
    seed, g, parts, dense = _case(k, 0.5, dtype)
    x = randn(g, k, 19, dtype=dtype)
    d = randn(g, M, 19, dtype=dtype)
    _all_products(parts, dense, x, d, TOLERANCE[dtype], seed)


@pytest.mark.parametrize("k", [1, 5, 64, 65, 128])
def test_column_counts(k):
    """One byte, a partial byte, exactly one and two words, one column past a word."""
    seed, g, parts, dense = _case(k, 0.5, m=20)
    _all_products(parts, dense, randn(g, k, 7), randn(g, 20, 7), 1e-5, seed)


def test_mostly_empty_tiles():
    """Density 1%: most SDDMM tiles hold no stored entry and skip their products."""
    seed, g, parts, dense = _case(130, 0.01, m=70)
    v = torch.full((parts[2].numel(),), float("nan"), device=DEVICE)
    a, b = randn(g, 70, 9), randn(g, 130, 9)
    bitmap_sddmm(*parts[:2], a, b, out=v)
    assert not v.isnan().any() and rel_err(v, _sddmm_want(*parts[:2], a, b)) < 1e-5, seed
    y = bitmap_spmm(*parts, b)
    assert rel_err(y, dense @ b.double().cpu()) < 1e-5, seed


def test_word_prefix():
    seed, _, (row_offsets, bitmap, _), _ = _case(200, 0.5)
    got = bitmap_word_prefix(bitmap)
    assert got.dtype == torch.int32 and got.shape == (M, 4)
    bits = np.unpackbits(bitmap.cpu().numpy(), axis=1, bitorder="little").reshape(M, 4, 64)
    words = bits.sum(2)
    want = np.cumsum(words, 1) - words
    assert (got.cpu().numpy() == want).all(), seed
    lengths = np.diff(row_offsets.cpu().numpy())
    assert (got[:, -1].cpu().numpy() + words[:, -1] == lengths).all(), seed


def test_outputs_fully_written():
    """Results land in NaN-poisoned ``out`` tensors, strided ones included, with no NaN left."""
    seed, g, (row_offsets, bitmap, values), dense = _case(130)
    x, d = randn(g, 130, 19), randn(g, M, 19)
    nan = float("nan")
    y = torch.full((19, M), nan, device=DEVICE).T  # column-major (M, 19)
    assert bitmap_spmm(row_offsets, bitmap, values, x, out=y) is y
    assert not y.isnan().any() and rel_err(y, dense @ x.double().cpu()) < 1e-5, seed
    z = torch.full((19, 130), nan, device=DEVICE).T
    assert bitmap_spmm_t(row_offsets, bitmap, values, d, 130, out=z) is z
    assert not z.isnan().any() and rel_err(z, dense.T @ d.double().cpu()) < 1e-5, seed
    v = torch.full((2 * values.numel(),), nan, device=DEVICE)[::2]
    assert bitmap_sddmm(row_offsets, bitmap, d, x, out=v) is v
    assert not v.isnan().any(), seed
    assert rel_err(v, _sddmm_want(row_offsets, bitmap, d, x)) < 1e-5, seed


def test_poisoned_surroundings():
    """Every operand is a view into a larger buffer poisoned around it (NaN floats, 0xFF bitmap
    bytes, huge offsets): a kernel reading past any edge would show NaN or a wrong result."""
    seed, g, (row_offsets, bitmap, values), dense = _case(130, 0.5)
    k, n, nnz = 130, 11, values.numel()
    nan = float("nan")
    vbuf = torch.full((nnz + 40,), nan, device=DEVICE)
    vbuf[20 : 20 + nnz] = values
    values_v = vbuf[20 : 20 + nnz]
    w = bitmap.shape[1]
    bbuf = torch.full((M + 3, w + 8), 0xFF, dtype=torch.uint8, device=DEVICE)
    bbuf[:M, :w] = bitmap
    bitmap_v = bbuf[:M, :w]
    obuf = torch.full((M + 5,), 2**30, dtype=torch.int32, device=DEVICE)
    obuf[: M + 1] = row_offsets
    offsets_v = obuf[: M + 1]
    x, d = randn(g, k, n), randn(g, M, n)
    xbuf = torch.full((k + 9, n + 3), nan, device=DEVICE)
    xbuf[:k, :n] = x
    x_v = xbuf[:k, :n]
    dbuf = torch.full((M + 4, n + 2), nan, device=DEVICE)
    dbuf[:M, :n] = d
    d_v = dbuf[:M, :n]

    y = bitmap_spmm(offsets_v, bitmap_v, values_v, x_v)
    assert not y.isnan().any() and rel_err(y, dense @ x.double().cpu()) < 1e-5, seed
    z = bitmap_spmm_t(offsets_v, bitmap_v, values_v, d_v, k)
    assert not z.isnan().any() and rel_err(z, dense.T @ d.double().cpu()) < 1e-5, seed
    obuf_v = torch.full((nnz + 16,), 7.0, device=DEVICE)
    v = bitmap_sddmm(offsets_v, bitmap_v, d_v, x_v, out=obuf_v[8 : 8 + nnz])
    want = _sddmm_want(row_offsets, bitmap, d, x)
    assert not v.isnan().any() and rel_err(v, want) < 1e-5, seed
    assert (obuf_v[:8] == 7.0).all() and (obuf_v[8 + nnz :] == 7.0).all(), seed


@pytest.mark.parametrize("corrupt", ["shift+7", "shift-5", "garbage", "all-bits"])
def test_inconsistent_structure_stays_in_bounds(corrupt):
    """Offsets or bits that disagree (left unchecked by the launchers) give wrong numbers, but no
    read outside ``values`` (surrounded by NaN) and no write outside the output."""
    seed, g, (row_offsets, bitmap, values), _ = _case(130, 0.5)
    k, n, nnz = 130, 6, values.numel()
    if corrupt == "shift+7":
        row_offsets = row_offsets + 7
    elif corrupt == "shift-5":
        row_offsets = row_offsets - 5
    elif corrupt == "garbage":
        row_offsets = (
            torch.randint(-(2**31), 2**31 - 1, (M + 1,), generator=g, dtype=torch.int64)
            .to(torch.int32)
            .to(DEVICE)
        )
    else:
        bitmap = torch.full_like(bitmap, 0xFF)  # more bits than offsets (padding bits too)
    vbuf = torch.full((nnz + 64,), float("nan"), device=DEVICE)
    vbuf[32 : 32 + nnz] = values
    values_v = vbuf[32 : 32 + nnz]
    x, d = randn(g, k, n), randn(g, M, n)
    assert bitmap_spmm(row_offsets, bitmap, values_v, x).isfinite().all(), seed
    assert bitmap_spmm_t(row_offsets, bitmap, values_v, d, k).isfinite().all(), seed
    obuf = torch.full((nnz + 64,), 7.0, device=DEVICE)
    bitmap_sddmm(row_offsets, bitmap, d, x, nnz=nnz, out=obuf[32 : 32 + nnz])
    assert (obuf[:32] == 7.0).all() and (obuf[32 + nnz :] == 7.0).all(), seed


@pytest.mark.parametrize("k", [53, 130])
def test_padding_bits_ignored(k):
    """Bits of columns >= K (zero by the layout) are never read as stored entries (an SDDMM
    that took them would write over the next row's first entries)."""
    seed, g, (row_offsets, bitmap, values), dense = _case(k, 0.5)
    padded = bitmap.clone()
    for j in range(k, padded.shape[1] * 8):
        padded[:, j // 8] |= 1 << (j % 8)
    x, d = randn(g, k, 5), randn(g, M, 5)
    got = bitmap_spmm(row_offsets, padded, values, x)
    assert rel_err(got, dense @ x.double().cpu()) < 1e-5, seed
    got = bitmap_spmm_t(row_offsets, padded, values, d, k)
    assert rel_err(got, dense.T @ d.double().cpu()) < 1e-5, seed
    got = bitmap_sddmm(row_offsets, padded, d, x)
    assert rel_err(got, _sddmm_want(row_offsets, bitmap, d, x)) < 1e-5, seed


def test_strided_operands():
    """``x`` as a transposed view (what ``linear`` passes), a sliced ``d``, a column-major
    bitmap and strided values."""
    seed, g, (row_offsets, bitmap, values), dense = _case(130)
    x = randn(g, 7, 130).T
    d = randn(g, M, 14)[:, ::2]
    bitmap_t = bitmap.T.contiguous().T  # strides (1, M)
    values_s = torch.stack([values, values], dim=1)[:, 0]  # stride 2
    y = bitmap_spmm(row_offsets, bitmap_t, values_s, x)
    assert rel_err(y, dense @ x.double().cpu()) < 1e-5, seed
    z = bitmap_spmm_t(row_offsets, bitmap_t, values_s, d, 130)
    assert rel_err(z, dense.T @ d.double().cpu()) < 1e-5, seed
    v = bitmap_sddmm(row_offsets, bitmap_t, d, x)
    assert rel_err(v, _sddmm_want(row_offsets, bitmap, d, x)) < 1e-5, seed


@pytest.mark.parametrize(
    "spmm_config, config",
    [
        (
            {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16},
            {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 128},
        ),
        (
            {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 128},
            {"BLOCK_M": 64, "BLOCK_N": 16, "BLOCK_K": 64},
        ),
    ],
)
def test_other_tilings(monkeypatch, spmm_config, config):
    """Tilings other than the interpreter's default (rows, columns of X, columns of S)."""
    monkeypatch.setattr(_bitmap_spmm_kernel, "configs", [triton.Config(spmm_config)])
    for kernel in (_bitmap_spmm_t_kernel, _bitmap_sddmm_kernel):
        monkeypatch.setattr(kernel, "configs", [triton.Config(config)])
    seed, g, parts, dense = _case(200, 0.4, m=45)
    x, d = randn(g, 200, 40), randn(g, 45, 40)
    _all_products(parts, dense, x, d, 1e-5, seed)


def test_sddmm_nnz_argument():
    seed, g, (row_offsets, bitmap, values), _ = _case()
    a, b = randn(g, M, 5), randn(g, K, 5)
    want = _sddmm_want(row_offsets, bitmap, a, b)
    got = bitmap_sddmm(row_offsets, bitmap, a, b, nnz=values.numel())
    assert got.shape == values.shape and rel_err(got, want) < 1e-5, seed
    out = torch.empty_like(values)
    assert bitmap_sddmm(row_offsets, bitmap, a, b, nnz=values.numel(), out=out) is out


def test_empty_cases():
    g = torch.Generator().manual_seed(fresh_seed())
    w = 8  # K = 53
    nan = float("nan")
    # M = 0
    ro0 = torch.zeros(1, dtype=torch.int32, device=DEVICE)
    bm0 = torch.zeros(0, w, dtype=torch.uint8, device=DEVICE)
    val0 = torch.zeros(0, device=DEVICE)
    assert bitmap_spmm(ro0, bm0, val0, randn(g, K, 3)).shape == (0, 3)
    assert torch.equal(bitmap_spmm_t(ro0, bm0, val0, randn(g, 0, 3), K).cpu(), torch.zeros(K, 3))
    assert bitmap_sddmm(ro0, bm0, randn(g, 0, 3), randn(g, K, 3)).shape == (0,)
    # nnz = 0 with rows: zeros, even in a poisoned out
    ro = torch.zeros(M + 1, dtype=torch.int32, device=DEVICE)
    bm = torch.zeros(M, w, dtype=torch.uint8, device=DEVICE)
    out = torch.full((M, 3), nan, device=DEVICE)
    assert torch.equal(bitmap_spmm(ro, bm, val0, randn(g, K, 3), out=out).cpu(), torch.zeros(M, 3))
    out = torch.full((K, 3), nan, device=DEVICE)
    got = bitmap_spmm_t(ro, bm, val0, randn(g, M, 3), K, out=out)
    assert torch.equal(got.cpu(), torch.zeros(K, 3))
    assert bitmap_sddmm(ro, bm, randn(g, M, 3), randn(g, K, 3)).shape == (0,)
    # N = 0
    _, g, (r, b, v), _ = _case()
    assert bitmap_spmm(r, b, v, randn(g, K, 0)).shape == (M, 0)
    assert bitmap_spmm_t(r, b, v, randn(g, M, 0), K).shape == (K, 0)
    got = bitmap_sddmm(r, b, randn(g, M, 0), randn(g, K, 0))
    assert torch.equal(got.cpu(), torch.zeros(v.numel()))
    # K = 0 (then W = 0 and nnz = 0)
    bm_k0 = torch.zeros(M, 0, dtype=torch.uint8, device=DEVICE)
    out = torch.full((M, 4), nan, device=DEVICE)
    got = bitmap_spmm(ro, bm_k0, val0, randn(g, 0, 4), out=out)
    assert torch.equal(got.cpu(), torch.zeros(M, 4))
    assert bitmap_spmm_t(ro, bm_k0, val0, randn(g, M, 4), 0).shape == (0, 4)
    assert bitmap_sddmm(ro, bm_k0, randn(g, M, 4), randn(g, 0, 4)).shape == (0,)


def test_pack_matches_layout():
    """The test's packer against the layout's definition, bit by bit."""
    seed = fresh_seed()
    mask = torch.rand(5, 70, generator=torch.Generator().manual_seed(seed)) < 0.5
    packed = bitmap_pack(mask)
    assert packed.shape == (5, 16) and packed.dtype == torch.uint8
    for i in range(5):
        for j in range(128):
            bit = (int(packed[i, j // 8]) >> (j % 8)) & 1
            assert bit == (j < 70 and bool(mask[i, j])), f"row {i}, column {j}, seed {seed}"


def test_bad_inputs_raise():
    g = torch.Generator().manual_seed(fresh_seed())
    row_offsets, bitmap, values = random_bitmap(g, M, K)
    x, d = randn(g, K, 5), randn(g, M, 5)
    with pytest.raises(TypeError, match="row_offsets"):
        bitmap_spmm(row_offsets.long(), bitmap, values, x)
    with pytest.raises(ValueError, match="row_offsets"):
        bitmap_spmm(row_offsets[:-1], bitmap, values, x)
    with pytest.raises(ValueError, match="row_offsets"):
        bitmap_spmm_t(torch.cat([row_offsets, row_offsets[-1:]]), bitmap, values, d, K)
    with pytest.raises(TypeError, match="bitmap"):
        bitmap_spmm(row_offsets, bitmap.to(torch.int8), values, x)
    with pytest.raises(TypeError, match="bitmap"):
        bitmap_sddmm(row_offsets, bitmap.to(torch.int32), d, x)
    with pytest.raises(ValueError, match="bitmap"):
        bitmap_spmm(row_offsets, bitmap[:, :7], values, x)
    with pytest.raises(ValueError, match="bitmap"):
        bitmap_spmm(row_offsets, bitmap, values, randn(g, 65, 5))  # K = 65 needs 16 bytes
    with pytest.raises(ValueError, match="bitmap"):
        bitmap_spmm_t(row_offsets, bitmap, values, d, 130)
    with pytest.raises(ValueError, match="bitmap"):
        bitmap_sddmm(row_offsets, torch.cat([bitmap, bitmap], 1), d, x)
    with pytest.raises(ValueError, match="bitmap"):
        bitmap_spmm(row_offsets, bitmap.flatten(), values, x)
    with pytest.raises(TypeError, match="x"):
        bitmap_spmm(row_offsets, bitmap, values, x.double())
    with pytest.raises(TypeError, match="values"):
        bitmap_spmm(row_offsets, bitmap, values.long(), x)
    with pytest.raises(TypeError, match="d"):
        bitmap_spmm_t(row_offsets, bitmap, values, d.half(), K)
    with pytest.raises(TypeError, match="b"):
        bitmap_sddmm(row_offsets, bitmap, d, x.to(torch.bfloat16))
    with pytest.raises(ValueError, match="x"):
        bitmap_spmm(row_offsets, bitmap, values, x[0])
    with pytest.raises(ValueError, match="d"):
        bitmap_spmm_t(row_offsets, bitmap, values, randn(g, M + 1, 5), K)
    with pytest.raises(ValueError, match="num_cols"):
        bitmap_spmm_t(row_offsets, bitmap, values, d, -1)
    with pytest.raises(TypeError, match="num_cols"):
        bitmap_spmm_t(row_offsets, bitmap, values, d, float(K))
    with pytest.raises(ValueError, match="a"):
        bitmap_sddmm(row_offsets, bitmap, randn(g, M - 1, 5), x)
    with pytest.raises(ValueError, match="b"):
        bitmap_sddmm(row_offsets, bitmap, d, randn(g, K, 4))
    with pytest.raises(ValueError, match="nnz"):
        bitmap_sddmm(row_offsets, bitmap, d, x, nnz=-1)
    with pytest.raises(ValueError, match="row_offsets"):
        bitmap_sddmm(row_offsets - row_offsets[-1] - 1, bitmap, d, x)
    with pytest.raises(ValueError, match="out"):
        bitmap_spmm(row_offsets, bitmap, values, x, out=torch.empty(M, 4, device=DEVICE))
    with pytest.raises(TypeError, match="out"):
        bitmap_sddmm(row_offsets, bitmap, d, x, out=torch.empty_like(values, dtype=torch.half))
    with pytest.raises(ValueError, match="meta"):
        bitmap_spmm(row_offsets, bitmap, values, torch.empty(K, 5, device="meta"))
