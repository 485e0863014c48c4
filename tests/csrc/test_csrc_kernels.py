"""The C++ kernels, through ``torch.ops.sparse_ops.*`` on ``torch.from_numpy`` tensors
(``tests/csrc/ops.py``), against float64 numpy references.

Every output is poisoned with NaN before the call, every case runs at each SIMD level the CPU
supports, and malformed arguments must raise ValueError / TypeError naming the argument.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.csrc import ops as C

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEVELS = C._supported_simd_levels()
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(params=LEVELS)
def level(request):
    before = C.simd_level()
    assert C._set_simd_level(request.param) == request.param
    yield request.param
    C._set_simd_level(before)


# ----------------------------------------------------------------------------- generators
def rel_err(got, want) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    assert np.all(np.isfinite(got)), "output not fully written (NaN poison left)"
    den = np.linalg.norm(want)
    return float(np.linalg.norm(got - want) / (den if den > 0 else 1.0))


def poisoned(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


def random_csr(rng, m, k, density, itype=np.int32, dtype=np.float32, skew=False, dup=False):
    """(crow, col, values): unsorted columns, optionally duplicates / one heavy row."""
    counts = rng.binomial(k, density, size=m) if k > 0 else np.zeros(m, dtype=np.int64)
    if skew and m > 2:
        counts[:] = 0
        counts[m // 3] = k * 3 if dup else k
        counts[m - 1] = max(1, k // 7)
    if k == 0:
        counts[:] = 0
    crow = np.zeros(m + 1, dtype=np.int32)
    crow[1:] = np.cumsum(counts)
    cols = []
    for c in counts:
        if dup:
            cols.append(rng.integers(0, k, size=c))
        else:
            cols.append(rng.permutation(k)[:c] if c <= k else rng.integers(0, k, size=c))
    col = (np.concatenate(cols) if cols else np.zeros(0)).astype(itype)
    values = rng.standard_normal(col.shape[0]).astype(dtype)
    return crow, col, values


def csr_dense(crow, col, values, m, k):
    s = np.zeros((m, k))
    rows = np.repeat(np.arange(m), np.diff(crow))
    np.add.at(s, (rows, col.astype(np.int64)), values.astype(np.float64))
    return s


def random_bsr(rng, mb, kb, r, c, density, dtype=np.float32):
    mask = rng.random((mb, kb)) < density
    crow = np.zeros(mb + 1, dtype=np.int32)
    crow[1:] = np.cumsum(mask.sum(1))
    col = np.concatenate([rng.permutation(np.flatnonzero(row)) for row in mask] or [[]])
    col = col.astype(np.int32)
    values = rng.standard_normal((col.shape[0], r, c)).astype(dtype)
    return crow, col, values


def bsr_dense(crow, col, values, mb, kb):
    nnzb, r, c = values.shape
    s = np.zeros((mb * r, kb * c))
    for i in range(mb):
        for p in range(crow[i], crow[i + 1]):
            s[i * r:(i + 1) * r, col[p] * c:(col[p] + 1) * c] += values[p]
    return s


def meta_bits(m):
    return 1 if m == 2 else (2 if m <= 4 else 4)


def pack_positions(pos, m):
    """(M, S) positions -> uint8 (M, ceil(S*b/8)) packed as docs/formats.md."""
    b = meta_bits(m)
    rows, slots = pos.shape
    out = np.zeros((rows, (slots * b + 7) // 8), dtype=np.uint8)
    for t in range(slots):
        o = t * b
        out[:, o // 8] |= (pos[:, t].astype(np.uint8) << (o % 8)).astype(np.uint8)
    return out


def unpack_positions(meta, slots, m):
    b = meta_bits(m)
    t = np.arange(slots)
    o = t * b
    return (meta[:, o // 8].astype(np.int64) >> (o % 8)) & ((1 << b) - 1)


def random_nm(rng, rows, k, n, m, dtype=np.float32):
    """(values (M, G*n), metadata, positions): distinct in-range positions per group."""
    g = -(-k // m)
    keys = rng.random((rows, g, m))
    valid = np.minimum(m, k - np.arange(g) * m)  # columns of each group inside K
    keys[:, np.arange(m)[None, :] >= valid[:, None]] = np.inf
    pos = np.argsort(keys, axis=-1)[..., :n]
    # a partial last group with fewer than n columns repeats an in-range position
    pos = np.where(pos < valid[None, :, None], pos, pos[..., :1]).reshape(rows, g * n)
    values = rng.standard_normal((rows, g * n)).astype(dtype)
    values[rng.random(values.shape) < 0.1] = 0
    return values, pack_positions(pos, m), pos


def nm_sddmm_ref(a, b, pos, n, m):
    cols = (np.arange(pos.shape[1]) // n) * m + pos
    return np.take_along_axis(a.astype(float) @ b.astype(float).T, cols, axis=1)


def nm_dense(values, pos, k, n, m):
    rows, slots = values.shape
    cols = (np.arange(slots) // n) * m + pos
    s = np.zeros((rows, k))
    np.add.at(s, (np.repeat(np.arange(rows), slots), cols.ravel()), values.ravel().astype(float))
    return s


# ----------------------------------------------------------------------------- CSR
DTYPES = [np.float32, np.float64]
NS = [1, 5, 17, 67]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("itype", [np.int16, np.int32])
@pytest.mark.parametrize("n", NS)
def test_csr_spmm(level, dtype, itype, n):
    rng = np.random.default_rng(n)
    m, k = 37, 53
    crow, col, val = random_csr(rng, m, k, 0.3, itype, dtype)
    x = rng.standard_normal((k, n)).astype(dtype)
    out = poisoned((m, n), dtype)
    C.csr_spmm(crow, col, val, x, out, 2)
    assert rel_err(out, csr_dense(crow, col, val, m, k) @ x) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("itype", [np.int16, np.int32])
@pytest.mark.parametrize("n", NS)
def test_csr_sddmm(level, dtype, itype, n):
    rng = np.random.default_rng(100 + n)
    m, k = 37, 53
    crow, col, _ = random_csr(rng, m, k, 0.3, itype, dtype)
    a = rng.standard_normal((m, n)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = poisoned(col.shape, dtype)
    C.csr_sddmm(crow, col, a, b, out, 2)
    rows = np.repeat(np.arange(m), np.diff(crow))
    want = np.einsum("pn,pn->p", a[rows].astype(float), b[col.astype(int)].astype(float))
    assert rel_err(out, want) < TOL[dtype]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("skew", [False, True])
def test_csr_large_tiled(level, threads, dtype, skew):
    """Several row chunks and column tiles (K large enough that x is tiled), skewed rows."""
    rng = np.random.default_rng(7)
    m, k, n = 301, 5003, 150
    crow, col, val = random_csr(rng, m, k, 0.02, np.int16, dtype, skew=skew, dup=skew)
    x = rng.standard_normal((k, n)).astype(dtype)
    s = csr_dense(crow, col, val, m, k)
    out = poisoned((m, n), dtype)
    C.csr_spmm(crow, col, val, x, out, threads)
    assert rel_err(out, s @ x) < TOL[dtype]
    a = rng.standard_normal((m, n)).astype(dtype)
    sd = poisoned(col.shape, dtype)
    C.csr_sddmm(crow, col, a, x, sd, threads)
    rows = np.repeat(np.arange(m), np.diff(crow))
    want = np.einsum("pn,pn->p", a[rows].astype(float), x[col.astype(int)].astype(float))
    assert rel_err(sd, want) < TOL[dtype]
    for nn in (1, 8):  # SpMV and narrow N on the same skewed structure
        xs = np.ascontiguousarray(x[:, :nn])
        o = poisoned((m, nn), dtype)
        C.csr_spmm(crow, col, val, xs, o, threads)
        assert rel_err(o, s @ xs) < TOL[dtype]


@pytest.mark.parametrize("itype", [np.int16, np.int32])
@pytest.mark.parametrize("skew", [False, True])
def test_csr_transpose(itype, skew):
    rng = np.random.default_rng(3)
    m, k = 41, 29
    crow, col, val = random_csr(rng, m, k, 0.3, itype, np.float64, skew=skew, dup=skew)
    crow_t, col_t, perm = C.csr_transpose(crow, col, k)
    assert crow_t.dtype == np.int32 and col_t.dtype == np.int32 and perm.dtype == np.int32
    rows = np.repeat(np.arange(m), np.diff(crow))
    want_perm = np.argsort(col.astype(np.int64), kind="stable")
    np.testing.assert_array_equal(perm, want_perm)
    np.testing.assert_array_equal(col_t, rows[want_perm])
    np.testing.assert_array_equal(crow_t, np.concatenate([[0], np.cumsum(np.bincount(
        col.astype(np.int64), minlength=k))]))
    st = csr_dense(crow_t, col_t, val[perm], k, m)
    np.testing.assert_allclose(st, csr_dense(crow, col, val, m, k).T)


def test_csr_transpose_large_parallel():
    rng = np.random.default_rng(4)
    m, k = 700, 3000
    crow, col, _ = random_csr(rng, m, k, 0.1, np.int16, np.float32)
    crow_t, col_t, perm = C.csr_transpose(crow, col, k)
    rows = np.repeat(np.arange(m), np.diff(crow))
    want_perm = np.argsort(col.astype(np.int64), kind="stable")
    np.testing.assert_array_equal(perm, want_perm)
    np.testing.assert_array_equal(col_t, rows[want_perm])


# ----------------------------------------------------------------------------- BSR
BSR_CASES = [(21, 35, 3, 5), (64, 96, 32, 32), (12, 10, 1, 1), (16, 12, 4, 2), (36, 40, 9, 20)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BSR_CASES, ids=lambda s: f"{s[0]}x{s[1]}b{s[2]}x{s[3]}")
@pytest.mark.parametrize("n", NS)
def test_bsr_spmm(level, dtype, shape, n):
    mm, kk, r, c = shape
    rng = np.random.default_rng(mm + n)
    mb, kb = mm // r, kk // c
    crow, col, val = random_bsr(rng, mb, kb, r, c, 0.4, dtype)
    x = rng.standard_normal((kk, n)).astype(dtype)
    out = poisoned((mm, n), dtype)
    C.bsr_spmm(crow, col, val, x, out, 2)
    assert rel_err(out, bsr_dense(crow, col, val, mb, kb) @ x) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BSR_CASES, ids=lambda s: f"{s[0]}x{s[1]}b{s[2]}x{s[3]}")
@pytest.mark.parametrize("n", NS)
def test_bsr_sddmm(level, dtype, shape, n):
    mm, kk, r, c = shape
    rng = np.random.default_rng(mm + 2 * n)
    mb, kb = mm // r, kk // c
    crow, col, val = random_bsr(rng, mb, kb, r, c, 0.4, dtype)
    a = rng.standard_normal((mm, n)).astype(dtype)
    b = rng.standard_normal((kk, n)).astype(dtype)
    out = poisoned(val.shape, dtype)
    C.bsr_sddmm(crow, col, a, b, out, 2)
    full = a.astype(float) @ b.astype(float).T
    want = np.zeros(val.shape)
    for i in range(mb):
        for p in range(crow[i], crow[i + 1]):
            want[p] = full[i * r:(i + 1) * r, col[p] * c:(col[p] + 1) * c]
    assert rel_err(out, want) < TOL[dtype]


@pytest.mark.parametrize("threads", [1, 2])
def test_bsr_large_tiled(level, threads):
    rng = np.random.default_rng(11)
    r = c = 32
    mb, kb, n = 12, 130, 150  # K = 4160: x is column-tiled
    crow, col, val = random_bsr(rng, mb, kb, r, c, 0.1, np.float32)
    crow[5:] = crow[4]  # some empty block rows
    crow[-1] = col.shape[0]
    crow[5:-1] = crow[4]
    s = bsr_dense(crow, col, val, mb, kb)
    for nn in (1, 8, n):
        x = rng.standard_normal((kb * c, nn)).astype(np.float32)
        out = poisoned((mb * r, nn), np.float32)
        C.bsr_spmm(crow, col, val, x, out, threads)
        assert rel_err(out, s @ x) < 1e-5


# ----------------------------------------------------------------------------- N:M
NM = [(1, 2), (2, 4), (1, 4), (3, 8), (5, 16), (2, 3), (4, 7)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nm", NM, ids=lambda t: f"{t[0]}of{t[1]}")
@pytest.mark.parametrize("n", NS)
def test_nm_products(level, dtype, nm, n):
    nn, m = nm
    rng = np.random.default_rng(10 * m + n)
    rows, k = 37, 53  # k not a multiple of m
    val, meta, pos = random_nm(rng, rows, k, nn, m, dtype)
    s = nm_dense(val, pos, k, nn, m)
    x = rng.standard_normal((k, n)).astype(dtype)
    out = poisoned((rows, n), dtype)
    C.nm_spmm(val, meta, x, out, nn, m, 2)
    assert rel_err(out, s @ x) < TOL[dtype]

    d = rng.standard_normal((rows, n)).astype(dtype)
    out_t = poisoned((k, n), dtype)
    C.nm_spmm_t(val, meta, d, out_t, nn, m, 2)
    assert rel_err(out_t, s.T @ d) < TOL[dtype]
    # a row-strided d (a column slice) is read in place, with its stride
    wide = rng.standard_normal((rows, n + 3)).astype(dtype)
    out_t = poisoned((k, n), dtype)
    C.nm_spmm_t(val, meta, wide[:, :n], out_t, nn, m, 2)
    assert rel_err(out_t, s.T @ wide[:, :n]) < TOL[dtype]

    a = rng.standard_normal((rows, n)).astype(dtype)
    sd = poisoned(val.shape, dtype)
    C.nm_sddmm(meta, a, x, sd, nn, m, 2)
    assert rel_err(sd, nm_sddmm_ref(a, x, pos, nn, m)) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nm", [(2, 4), (1, 2), (1, 4), (2, 8), (4, 16), (1, 3), (3, 8), (1, 16)],
                         ids=lambda t: f"{t[0]}of{t[1]}")
@pytest.mark.parametrize("k", [203, 1000])
def test_nm_spmv_long_rows(level, dtype, nm, k):
    """N = 1 with rows long enough for the unchecked blocks of the permute paths."""
    nn, m = nm
    rng = np.random.default_rng(k + m)
    rows = 13
    val, meta, pos = random_nm(rng, rows, k, nn, m, dtype)
    x = rng.standard_normal((k, 1)).astype(dtype)
    out = poisoned((rows, 1), dtype)
    C.nm_spmm(val, meta, x, out, nn, m, 2)
    assert rel_err(out, nm_dense(val, pos, k, nn, m) @ x) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nm", [(2, 4), (1, 2), (4, 8), (4, 7)], ids=lambda t: f"{t[0]}of{t[1]}")
@pytest.mark.parametrize("n", [2, 3, 4, 6, 7, 8, 16])
def test_nm_spmm_narrow(level, dtype, nm, n):
    """2 <= N <= 8 and 16: the transposed-x path (permutes) and the row-tile path."""
    nn, m = nm
    rng = np.random.default_rng(n + m)
    rows, k = 45, 203
    val, meta, pos = random_nm(rng, rows, k, nn, m, dtype)
    x = rng.standard_normal((k, n)).astype(dtype)
    out = poisoned((rows, n), dtype)
    C.nm_spmm(val, meta, x, out, nn, m, 2)
    assert rel_err(out, nm_dense(val, pos, k, nn, m) @ x) < TOL[dtype]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n", [4, 16])
def test_nm_narrow_new_x_each_call(level, threads, n):
    """The transposed x a thread builds once per call is rebuilt by the next call, even when
    that call's x lives at the same address (overwritten in place) and a product of another
    width ran in between; many row chunks per thread."""
    rng = np.random.default_rng(100 + n)
    rows, k = 517, 1029
    val, meta, pos = random_nm(rng, rows, k, 2, 4, np.float32)
    s = nm_dense(val, pos, k, 2, 4)
    x = np.empty((k, n), np.float32)
    for step in range(3):
        x[...] = rng.standard_normal((k, n))
        out = poisoned((rows, n), np.float32)
        C.nm_spmm(val, meta, x, out, 2, 4, threads)
        assert rel_err(out, s @ x) < 1e-5, f"call {step}"
        other = rng.standard_normal((k, 3)).astype(np.float32)
        out3 = poisoned((rows, 3), np.float32)
        C.nm_spmm(val, meta, other, out3, 2, 4, threads)
        assert rel_err(out3, s @ other) < 1e-5


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 8, 150, 300])
def test_nm_large(level, threads, n):
    """2:4 with many rows, x column-tiled; spmm_t through both parallel schemes."""
    rng = np.random.default_rng(n)
    rows, k = 203, 4099
    val, meta, pos = random_nm(rng, rows, k, 2, 4, np.float32)
    s = nm_dense(val, pos, k, 2, 4)
    x = rng.standard_normal((k, n)).astype(np.float32)
    out = poisoned((rows, n), np.float32)
    C.nm_spmm(val, meta, x, out, 2, 4, threads)
    assert rel_err(out, s @ x) < 1e-5
    d = rng.standard_normal((rows, n)).astype(np.float32)
    out_t = poisoned((k, n), np.float32)
    C.nm_spmm_t(val, meta, d, out_t, 2, 4, threads)
    assert rel_err(out_t, s.T @ d) < 1e-5
    sd = poisoned(val.shape, np.float32)
    C.nm_sddmm(meta, d, x, sd, 2, 4, threads)
    assert rel_err(sd, nm_sddmm_ref(d, x, pos, 2, 4)) < 1e-5


# ----------------------------------------------------------------------------- tiled paths
@pytest.fixture
def small_tiles():
    C._set_tile_bytes(1024)  # column tiles of 64 fp32 / 32 fp64 even for small K: packing
    yield
    C._set_tile_bytes(0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiled_packed_paths(level, small_tiles, dtype):
    rng = np.random.default_rng(5)
    m, k, n = 37, 53, 150
    x = rng.standard_normal((k, n)).astype(dtype)
    a = rng.standard_normal((m, n)).astype(dtype)
    crow, col, val = random_csr(rng, m, k, 0.3, np.int16, dtype)
    out = poisoned((m, n), dtype)
    C.csr_spmm(crow, col, val, x, out, 2)
    assert rel_err(out, csr_dense(crow, col, val, m, k) @ x) < TOL[dtype]
    sd = poisoned(col.shape, dtype)
    C.csr_sddmm(crow, col, a, x, sd, 2)
    rows = np.repeat(np.arange(m), np.diff(crow))
    want = np.einsum("pn,pn->p", a[rows].astype(float), x[col.astype(int)].astype(float))
    assert rel_err(sd, want) < TOL[dtype]
    bcrow, bcol, bval = random_bsr(rng, 7, 10, 3, 5, 0.4, dtype)
    xb = rng.standard_normal((50, n)).astype(dtype)
    out = poisoned((21, n), dtype)
    C.bsr_spmm(bcrow, bcol, bval, xb, out, 2)
    assert rel_err(out, bsr_dense(bcrow, bcol, bval, 7, 10) @ xb) < TOL[dtype]
    for nn, mm in ((2, 4), (3, 8)):
        v, meta, pos = random_nm(rng, m, k, nn, mm, dtype)
        s = nm_dense(v, pos, k, nn, mm)
        out = poisoned((m, n), dtype)
        C.nm_spmm(v, meta, x, out, nn, mm, 2)
        assert rel_err(out, s @ x) < TOL[dtype]
        sd = poisoned(v.shape, dtype)
        C.nm_sddmm(meta, a, x, sd, nn, mm, 2)
        assert rel_err(sd, nm_sddmm_ref(a, x, pos, nn, mm)) < TOL[dtype]


# ----------------------------------------------------------------------------- empty
@pytest.mark.parametrize("m,k,n", [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0), (3, 6, 1)])
def test_empty(level, m, k, n):
    f = np.float32
    # CSR with no nonzeros
    crow = np.zeros(m + 1, dtype=np.int32)
    col = np.zeros(0, dtype=np.int32)
    val = np.zeros(0, dtype=f)
    out = poisoned((m, n), f)
    C.csr_spmm(crow, col, val, np.ones((k, n), f), out, 2)
    np.testing.assert_array_equal(out, 0)
    C.csr_sddmm(crow, col, np.ones((m, n), f), np.ones((k, n), f), poisoned(0, f), 2)
    ct, colt, perm = C.csr_transpose(crow, col, k)
    np.testing.assert_array_equal(ct, np.zeros(k + 1))
    assert colt.shape == (0,) and perm.shape == (0,)
    # BSR 2x3 blocks with no blocks
    out = poisoned((m * 2, n), f)
    C.bsr_spmm(crow, col, np.zeros((0, 2, 3), f), np.ones((k * 3, n), f), out, 2)
    np.testing.assert_array_equal(out, 0)
    C.bsr_sddmm(crow, col, np.ones((m * 2, n), f), np.ones((k * 3, n), f),
                poisoned((0, 2, 3), f), 2)
    # N:M 2:4
    g = -(-k // 4)
    val = np.zeros((m, g * 2), f)
    meta = np.zeros((m, (g * 2 * 2 + 7) // 8), np.uint8)
    out = poisoned((m, n), f)
    C.nm_spmm(val, meta, np.ones((k, n), f), out, 2, 4, 2)
    np.testing.assert_array_equal(out, 0)
    out = poisoned((k, n), f)
    C.nm_spmm_t(val, meta, np.ones((m, n), f), out, 2, 4, 2)
    np.testing.assert_array_equal(out, 0)
    sd = poisoned((m, g * 2), f)
    C.nm_sddmm(meta, np.ones((m, n), f), np.ones((k, n), f), sd, 2, 4, 2)
    np.testing.assert_array_equal(sd, n)  # dot products of ones (positions 0 < K)


def test_sddmm_n0_writes_zeros():
    """N = 0 with stored entries: every SDDMM product is an empty dot product, 0."""
    f = np.float64
    crow = np.array([0, 2, 3], np.int32)
    col = np.array([1, 0, 2], np.int32)
    out = poisoned(3, f)
    C.csr_sddmm(crow, col, np.ones((2, 0), f), np.ones((3, 0), f), out, 1)
    np.testing.assert_array_equal(out, 0)
    out = poisoned((3, 2, 2), f)
    C.bsr_sddmm(crow, col, np.ones((4, 0), f), np.ones((6, 0), f), out, 1)
    np.testing.assert_array_equal(out, 0)


# ----------------------------------------------------------------------------- SIMD level
def test_simd_level_reported():
    assert C.simd_level() in ("scalar", "avx2", "avx512")
    assert LEVELS[0] == "scalar"
    with pytest.raises(ValueError, match="level"):
        C._set_simd_level("sse9")


def test_simd_env_var_forces_lower_level():
    code = ("import torch, importlib.util, glob, sys; p = glob.glob(sys.argv[1])[0]; "
            "s = importlib.util.spec_from_file_location('sparse_ops._C', p); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "print(m.simd_level())")
    env = dict(os.environ, SPARSE_OPS_SIMD="scalar")
    res = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "sparse_ops", "_C*.so")],
                         env=env, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "scalar"


# ----------------------------------------------------------------------------- bad input
def _csr_ok():
    crow = np.array([0, 2, 3, 5], np.int32)
    col = np.array([0, 3, 1, 2, 3], np.int16)
    val = np.ones(5, np.float32)
    x = np.ones((4, 6), np.float32)
    out = np.zeros((3, 6), np.float32)
    return crow, col, val, x, out


def _raises(exc, name, fn, *args):
    with pytest.raises(exc) as info:
        fn(*args)
    assert name in str(info.value), str(info.value)


def test_csr_bad_inputs():
    crow, col, val, x, out = _csr_ok()
    C.csr_spmm(crow, col, val, x, out, 2)  # the valid baseline
    bad_crow = crow.copy()
    bad_crow[1] = 4
    _raises(ValueError, "crow_indices", C.csr_spmm, bad_crow, col, val, x, out, 2)
    _raises(ValueError, "crow_indices", C.csr_spmm, crow[:3], col, val, x, out[:2], 2)
    c0 = crow.copy()
    c0[0] = 1
    _raises(ValueError, "crow_indices", C.csr_spmm, c0, col, val, x, out, 2)
    c_last = crow.copy()
    c_last[-1] = 4
    _raises(ValueError, "crow_indices", C.csr_spmm, c_last, col, val, x, out, 2)
    _raises(TypeError, "crow_indices", C.csr_spmm, crow.astype(np.int64), col, val, x, out, 2)
    _raises(ValueError, "crow_indices", C.csr_spmm, np.zeros(0, np.int32), col, val, x, out, 2)
    big = col.copy()
    big[3] = 4
    _raises(ValueError, "col_indices: value 4 at position 3", C.csr_spmm, crow, big, val, x,
            out, 2)
    neg = col.copy()
    neg[0] = -1
    _raises(ValueError, "col_indices", C.csr_spmm, crow, neg, val, x, out, 2)
    _raises(TypeError, "col_indices", C.csr_spmm, crow, col.astype(np.uint16), val, x, out, 2)
    _raises(ValueError, "values", C.csr_spmm, crow, col, val[:4], x, out, 2)
    _raises(TypeError, "values", C.csr_spmm, crow, col, val.astype(np.int32), x, out, 2)
    _raises(TypeError, "x", C.csr_spmm, crow, col, val, x.astype(np.float64), out, 2)
    _raises(TypeError, "x", C.csr_spmm, crow, col, val, x.astype(">f4"), out, 2)  # byte order
    _raises(TypeError, "col_indices", C.csr_spmm, crow, col.astype(">i2"), val, x, out, 2)
    _raises(ValueError, "x", C.csr_spmm, crow, col, val, x[0], out, 2)
    # a strided x (a transposed view) is read as it is, no error
    xs = np.ascontiguousarray(x.T).T
    o2 = poisoned(out.shape, np.float32)
    C.csr_spmm(crow, col, val, xs, o2, 2)
    np.testing.assert_allclose(o2, csr_dense(crow, col, val, 3, 4) @ x, rtol=1e-6)
    _raises(ValueError, "out", C.csr_spmm, crow, col, val, x, out[:, :5], 2)
    _raises(TypeError, "out", C.csr_spmm, crow, col, val, x, out.astype(np.float64), 2)
    ro = out.copy()
    ro.flags.writeable = False
    _raises(ValueError, "out", C.csr_spmm, crow, col, val, x, ro, 2)
    # Not a tensor at all: torch's dispatcher refuses it before the kernel, naming the argument.
    _raises(RuntimeError, "'x'", C.csr_spmm, crow, col, val, x.tolist(), out, 2)
    _raises(ValueError, "num_threads", C.csr_spmm, crow, col, val, x, out, 0)
    # sddmm
    a = np.ones((3, 6), np.float32)
    sd = np.zeros(5, np.float32)
    C.csr_sddmm(crow, col, a, x, sd, 2)
    _raises(ValueError, "col_indices", C.csr_sddmm, crow, big, a, x, sd, 2)
    _raises(ValueError, "a", C.csr_sddmm, crow, col, a[:2], x, sd, 2)
    _raises(ValueError, "b", C.csr_sddmm, crow, col, a, x[:, :5], sd, 2)
    _raises(TypeError, "b", C.csr_sddmm, crow, col, a, x.astype(np.float64), sd, 2)
    _raises(ValueError, "out", C.csr_sddmm, crow, col, a, x, sd[:4], 2)
    # transpose
    _raises(ValueError, "col_indices", C.csr_transpose, crow, big, 4)
    _raises(ValueError, "num_cols", C.csr_transpose, crow, col, -1)
    _raises(ValueError, "col_indices", C.csr_transpose, crow, col, 3)
    _raises(ValueError, "crow_indices", C.csr_transpose, bad_crow, col, 4)


@pytest.mark.parametrize("n", [0, 1, 5, 67])
@pytest.mark.parametrize("where", ["first", "vector", "tail"])
@pytest.mark.parametrize("bad_value", [-1, 90, 32767])
def test_csr_bad_col_every_path(level, small_tiles, n, where, bad_value):
    """A bad column in a long row (unrolled vector loops), in a row tail, any N, tiled."""
    rng = np.random.default_rng(9)
    m, k = 5, 90
    crow, col, val = random_csr(rng, m, k, 0.9, np.int16, np.float32)
    row = 2
    p = {"first": crow[row], "vector": crow[row] + 37, "tail": crow[row + 1] - 1}[where]
    col[p] = bad_value if bad_value != 90 else k
    x = rng.standard_normal((k, n)).astype(np.float32)
    msg = f"col_indices: value {int(col[p])} at position {p} out of range [0, {k})"
    _raises(ValueError, msg, C.csr_spmm, crow, col, val, x, poisoned((m, n), np.float32), 2)
    a = rng.standard_normal((m, n)).astype(np.float32)
    _raises(ValueError, msg, C.csr_sddmm, crow, col, a, x, poisoned(col.shape, np.float32), 2)
    _raises(ValueError, msg, C.csr_transpose, crow, col, k)


def test_bsr_bad_inputs():
    crow = np.array([0, 1, 2], np.int32)
    col = np.array([0, 1], np.int32)
    val = np.ones((2, 2, 3), np.float32)
    x = np.ones((6, 4), np.float32)
    out = np.zeros((4, 4), np.float32)
    C.bsr_spmm(crow, col, val, x, out, 2)
    _raises(ValueError, "col_indices", C.bsr_spmm, crow, np.array([0, 2], np.int32), val, x,
            out, 2)
    _raises(TypeError, "col_indices", C.bsr_spmm, crow, col.astype(np.int16), val, x, out, 2)
    _raises(ValueError, "crow_indices", C.bsr_spmm, np.array([0, 2, 1], np.int32), col, val, x,
            out, 2)
    _raises(ValueError, "c", C.bsr_spmm, crow, col, val[:, :, :0], x, out, 2)
    _raises(ValueError, "values", C.bsr_spmm, crow, col, val.reshape(2, 6), x, out, 2)
    _raises(ValueError, "x", C.bsr_spmm, crow, col, val, np.ones((7, 4), np.float32), out, 2)
    _raises(ValueError, "out", C.bsr_spmm, crow, col, val, x, np.zeros((5, 4), np.float32), 2)
    a = np.ones((4, 4), np.float32)
    sd = np.zeros((2, 2, 3), np.float32)
    C.bsr_sddmm(crow, col, a, x, sd, 2)
    _raises(ValueError, "col_indices", C.bsr_sddmm, crow, np.array([5, 0], np.int32), a, x, sd, 2)
    _raises(ValueError, "a", C.bsr_sddmm, crow, col, a[:3], x, sd, 2)
    _raises(ValueError, "b", C.bsr_sddmm, crow, col, a, np.ones((5, 4), np.float32), sd, 2)
    _raises(TypeError, "out", C.bsr_sddmm, crow, col, a, x, sd.astype(np.float64), 2)
    _raises(ValueError, "out", C.bsr_sddmm, crow, col, a, x, sd[:1], 2)


def test_nm_bad_inputs():
    rng = np.random.default_rng(0)
    val, meta, pos = random_nm(rng, 3, 9, 2, 4, np.float32)  # K = 9: last group has 1 column
    x = np.ones((9, 5), np.float32)
    out = np.zeros((3, 5), np.float32)
    C.nm_spmm(val, meta, x, out, 2, 4, 2)
    bad = pos.copy()
    bad[2, 4] = 3  # row 2, group 2 (columns 8..11, only 8 < K): column 11
    bmeta = pack_positions(bad, 4)
    _raises(ValueError, "metadata: position 3 of slot 0 (row 2, group 2) gives column 11 >= K=9",
            C.nm_spmm, val, bmeta, x, out, 2, 4, 2)
    _raises(ValueError, "metadata", C.nm_spmm_t, val, bmeta, np.ones((3, 5), np.float32),
            np.zeros((9, 5), np.float32), 2, 4, 2)
    _raises(ValueError, "metadata", C.nm_sddmm, bmeta, np.ones((3, 5), np.float32), x,
            np.zeros(val.shape, np.float32), 2, 4, 2)
    _raises(ValueError, "metadata", C.nm_spmm, val, meta[:, :1], x, out, 2, 4, 2)
    _raises(TypeError, "metadata", C.nm_spmm, val, meta.astype(np.int8), x, out, 2, 4, 2)
    _raises(ValueError, "values", C.nm_spmm, val[:, :5], meta, x, out, 2, 4, 2)
    _raises(ValueError, "n: need 1 <= n < m <= 16", C.nm_spmm, val, meta, x, out, 4, 4, 2)
    _raises(ValueError, "n:", C.nm_spmm, val, meta, x, out, 0, 4, 2)
    _raises(ValueError, "m:", C.nm_spmm, val, meta, x, out, 2, 17, 2)
    _raises(ValueError, "x", C.nm_spmm, val, meta, np.ones((13, 5), np.float32), out, 2, 4, 2)
    _raises(ValueError, "out", C.nm_spmm, val, meta, x, np.zeros((3, 4), np.float32), 2, 4, 2)
    _raises(ValueError, "d", C.nm_spmm_t, val, meta, np.ones((3, 4), np.float32),
            np.zeros((9, 5), np.float32), 2, 4, 2)
    _raises(ValueError, "b", C.nm_sddmm, meta, np.ones((3, 5), np.float32),
            np.ones((9, 4), np.float32), np.zeros(val.shape, np.float32), 2, 4, 2)
    # m = 3 uses 2 bits: position 3 is out of its group
    v3, m3, p3 = random_nm(rng, 2, 9, 2, 3, np.float32)
    p3 = p3.copy()
    p3[1, 3] = 3
    _raises(ValueError, "metadata: position 3 of slot 1 (row 1, group 1) is not < m=3",
            C.nm_spmm, v3, pack_positions(p3, 3), x, out[:2], 2, 3, 2)
