"""Hypothesis fuzz of the raw ``sparse_ops._C`` entry points with malformed index arrays.

Each call must either raise ValueError / TypeError — exactly when a Python model of the
documented validity rules says the input is invalid — or, for valid input, match the float64
reference. A crash (or an out-of-bounds access that corrupts memory) fails the whole run.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.csrc.test_csrc_kernels import (
    LEVELS,
    C,
    bsr_dense,
    csr_dense,
    meta_bits,
    nm_dense,
    rel_err,
    unpack_positions,
)

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
ERRORS = (ValueError, TypeError)


@pytest.fixture(autouse=True, scope="module")
def _restore_defaults():
    level = C.simd_level()
    yield
    C._set_simd_level(level)
    C._set_tile_bytes(0)
BIG = [2**15 - 1, 2**31 - 1, -(2**31), -1, 40000, 70000]


def ints(draw, n, lo, hi):
    """n integers, mostly in [lo, hi], sometimes extreme."""
    return [draw(st.one_of(st.integers(lo, hi), st.sampled_from(BIG)))
            if draw(st.integers(0, 9)) == 0 else draw(st.integers(lo, hi)) for _ in range(n)]


SIZES_N = st.one_of(st.integers(0, 5), st.sampled_from([16, 33, 67, 130]))


@st.composite
def csr_case(draw):
    big = draw(st.integers(0, 3)) == 0  # rows long enough for the unrolled vector loops
    m = draw(st.integers(0, 6))
    k = draw(st.integers(40, 70)) if big else draw(st.integers(0, 7))
    n = draw(SIZES_N)
    itype = draw(st.sampled_from([np.int16, np.int32]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    if draw(st.booleans()):  # a well-formed structure, then maybe one corruption
        counts = [draw(st.integers(0, max(k, 1) + 1)) for _ in range(m)]
        crow = [0] + list(np.cumsum(counts))
        col = [draw(st.integers(-1, k)) for _ in range(crow[-1])]
    else:
        crow = ints(draw, m + 1 + draw(st.sampled_from([0, 0, 0, -1, 1])), -2, 2 * m + 2)
        col = ints(draw, draw(st.integers(0, 12)), -2, k + 2)
    col = [int(np.clip(c, np.iinfo(itype).min, np.iinfo(itype).max)) for c in col]
    crow = [int(np.clip(c, -(2**31), 2**31 - 1)) for c in crow]
    nvals = len(col) + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
    return (np.array(crow, np.int32), np.array(col, itype),
            np.random.default_rng(len(col)).standard_normal(max(nvals, 0)).astype(dtype),
            m, k, n, dtype)


def csr_valid(crow, col, vals, m, k):
    if crow.shape[0] < 1 or crow.shape[0] != m + 1 or crow[0] != 0:
        return False
    if np.any(np.diff(crow.astype(np.int64)) < 0) or crow[-1] != col.shape[0]:
        return False
    if vals is not None and vals.shape[0] != col.shape[0]:
        return False
    return bool(np.all((col.astype(np.int64) >= 0) & (col.astype(np.int64) < k)))


@SETTINGS
@given(csr_case(), st.sampled_from(LEVELS), st.integers(1, 3), st.sampled_from([0, 1024]))
def test_fuzz_csr(case, level, threads, tile_bytes):
    crow, col, vals, m, k, n, dtype = case
    C._set_simd_level(level)
    C._set_tile_bytes(tile_bytes)  # 1 KiB: several packed column tiles even for small K
    rng = np.random.default_rng(0)
    x = rng.standard_normal((k, n)).astype(dtype)
    m_out = max(crow.shape[0] - 1, 0)
    ok = csr_valid(crow, col, vals, m_out, k) and crow.shape[0] >= 1
    event("valid" if ok else "invalid")
    out = np.full((m_out, n), np.nan, dtype)
    try:
        C.csr_spmm(crow, col, vals, x, out, threads)
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(out, csr_dense(crow, col, vals, m_out, k) @ x) < 1e-5
    a = rng.standard_normal((m_out, n)).astype(dtype)
    sd = np.full(col.shape, np.nan, dtype)
    ok = csr_valid(crow, col, None, m_out, k)
    try:
        C.csr_sddmm(crow, col, a, x, sd, threads)
    except ERRORS:
        assert not ok
    else:
        assert ok
        rows = np.repeat(np.arange(m_out), np.diff(crow))
        want = np.einsum("pn,pn->p", a[rows].astype(float), x[col.astype(int)].astype(float))
        assert rel_err(sd, want) < 1e-5
    try:
        crow_t, col_t, perm = C.csr_transpose(crow, col, k)
    except ERRORS:
        assert not ok
    else:
        assert ok
        np.testing.assert_array_equal(perm, np.argsort(col.astype(np.int64), kind="stable"))


@st.composite
def bsr_case(draw):
    mb = draw(st.integers(0, 4))
    kb = draw(st.integers(0, 4))
    r = draw(st.integers(1, 4))
    c = draw(st.integers(1, 4)) if draw(st.booleans()) else draw(st.sampled_from([16, 17, 33]))
    n = draw(SIZES_N)
    if draw(st.booleans()):
        counts = [draw(st.integers(0, kb + 1)) for _ in range(mb)]
        crow = [0] + list(np.cumsum(counts))
        col = [draw(st.integers(-1, kb)) for _ in range(crow[-1])]
    else:
        crow = ints(draw, mb + 1 + draw(st.sampled_from([0, 0, -1, 1])), -2, 2 * mb + 2)
        col = ints(draw, draw(st.integers(0, 8)), -2, kb + 2)
    crow = [int(np.clip(v, -(2**31), 2**31 - 1)) for v in crow]
    col = [int(np.clip(v, -(2**31), 2**31 - 1)) for v in col]
    nblocks = len(col) + draw(st.sampled_from([0, 0, 0, -1, 1]))
    k_rows = kb * c + draw(st.sampled_from([0, 0, 0, 1]))  # sometimes not a multiple of C
    return np.array(crow, np.int32), np.array(col, np.int32), max(nblocks, 0), r, c, k_rows, n


@SETTINGS
@given(bsr_case(), st.sampled_from(LEVELS), st.integers(1, 3), st.sampled_from([0, 1024]))
def test_fuzz_bsr(case, level, threads, tile_bytes):
    crow, col, nblocks, r, c, k_rows, n = case
    C._set_simd_level(level)
    C._set_tile_bytes(tile_bytes)
    rng = np.random.default_rng(1)
    mb = max(crow.shape[0] - 1, 0)
    vals = rng.standard_normal((nblocks, r, c)).astype(np.float32)
    x = rng.standard_normal((k_rows, n)).astype(np.float32)
    kb = k_rows // c
    ok = (k_rows % c == 0 and csr_valid(crow, col, None, mb, kb) and nblocks == col.shape[0])
    event("valid" if ok else "invalid")
    out = np.full((mb * r, n), np.nan, np.float32)
    try:
        C.bsr_spmm(crow, col, vals, x, out, threads)
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(out, bsr_dense(crow, col, vals, mb, kb) @ x) < 1e-5
    a = rng.standard_normal((mb * r, n)).astype(np.float32)
    sd = np.full((nblocks, r, c), np.nan, np.float32)
    try:
        C.bsr_sddmm(crow, col, a, x, sd, threads)
    except ERRORS:
        assert not ok
    else:
        assert ok
        full = a.astype(float) @ x.astype(float).T
        for i in range(mb):
            for p in range(crow[i], crow[i + 1]):
                want = full[i * r:(i + 1) * r, col[p] * c:(col[p] + 1) * c]
                assert rel_err(sd[p], want) < 1e-5


NM = [(1, 2), (2, 4), (1, 4), (3, 8), (5, 16), (2, 3), (4, 7), (2, 2), (0, 4), (3, 17)]


@st.composite
def nm_case(draw):
    nn, m = draw(st.sampled_from(NM))
    rows = draw(st.integers(0, 5))
    k = draw(st.integers(0, 19)) if draw(st.booleans()) else draw(st.integers(60, 140))
    n = draw(SIZES_N)
    good = 1 <= nn < m <= 16
    b = meta_bits(m) if good else 2
    g = -(-k // m) if m > 0 else 0
    slots = g * nn if good else 3
    mbytes = (slots * b + 7) // 8
    mbytes += draw(st.sampled_from([0, 0, 0, 0, -1, 1])) if mbytes > 0 else 0
    meta = np.array([[draw(st.integers(0, 255)) for _ in range(max(mbytes, 0))]
                     for _ in range(rows)], np.uint8).reshape(rows, max(mbytes, 0))
    vslots = slots + draw(st.sampled_from([0, 0, 0, 0, 1]))
    return nn, m, rows, k, n, meta, vslots


def nm_valid(nn, m, rows, k, meta, vslots):
    if not 1 <= nn < m <= 16:
        return False
    b = meta_bits(m)
    g = -(-k // m)
    slots = g * nn
    if vslots != slots or meta.shape != (rows, (slots * b + 7) // 8):
        return False
    if slots == 0 or rows == 0:
        return True
    pos = unpack_positions(meta, slots, m)
    cols = (np.arange(slots) // nn) * m + pos
    return bool(np.all(pos < m) and np.all(cols < k))


@SETTINGS
@given(nm_case(), st.sampled_from(LEVELS), st.integers(1, 3), st.sampled_from([0, 1024]))
def test_fuzz_nm(case, level, threads, tile_bytes):
    nn, m, rows, k, n, meta, vslots = case
    C._set_simd_level(level)
    C._set_tile_bytes(tile_bytes)
    rng = np.random.default_rng(2)
    vals = rng.standard_normal((rows, vslots)).astype(np.float64)
    x = rng.standard_normal((k, n))
    ok = nm_valid(nn, m, rows, k, meta, vslots)
    event("valid" if ok else "invalid")
    dense = None
    if ok:
        pos = unpack_positions(meta, vslots, m) if vslots else np.zeros((rows, 0), np.int64)
        dense = nm_dense(vals, pos, k, nn, m)
    out = np.full((rows, n), np.nan)
    try:
        C.nm_spmm(vals, meta, x, out, nn, m, threads)
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(out, dense @ x) < 1e-12
    d = rng.standard_normal((rows, n))
    out_t = np.full((k, n), np.nan)
    try:
        C.nm_spmm_t(vals, meta, d, out_t, nn, m, threads)
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(out_t, dense.T @ d) < 1e-12
    sd = np.full((rows, vslots), np.nan)
    try:
        C.nm_sddmm(meta, d, x, sd, nn, m, threads)
    except ERRORS:
        assert not ok
    else:
        assert ok
        cols = (np.arange(vslots) // nn) * m + unpack_positions(meta, vslots, m)
        want = np.take_along_axis(d @ x.T, cols, axis=1) if vslots else np.zeros((rows, 0))
        assert rel_err(sd, want) < 1e-12


@SETTINGS
@given(st.sampled_from(["csr_spmm", "csr_sddmm", "bsr_spmm", "nm_spmm"]),
       st.sampled_from(["list", "f_order", "strided", "int8", "none", "0d"]))
def test_fuzz_wrong_array_kinds(fn, kind):
    """Non-tensors, wrong dtypes and 0-d arrays in every position raise; strided operands
    (Fortran order, row steps) are read as they are and give the contiguous call's answer, and
    so do int8 values of an S @ x (the integers of a quantized matrix: here all ones)."""
    f = np.float32
    crow = np.array([0, 1, 2], np.int32)
    col = np.array([0, 1], np.int32)
    args = {
        "csr_spmm": [crow, col, np.ones(2, f), np.ones((2, 3), f), np.zeros((2, 3), f), 1],
        "csr_sddmm": [crow, col, np.ones((2, 3), f), np.ones((2, 3), f), np.zeros(2, f), 1],
        "bsr_spmm": [crow, col, np.ones((2, 2, 2), f), np.ones((4, 3), f), np.zeros((4, 3), f),
                     1],
        "nm_spmm": [np.ones((2, 2), f), np.zeros((2, 1), np.uint8), np.ones((4, 3), f),
                    np.zeros((2, 3), f), 2, 4, 1],
    }[fn]
    out_pos = 3 if fn == "nm_spmm" else len(args) - 2
    getattr(C, fn)(*args)  # the baseline is valid
    want = args[out_pos].copy()
    n_arrays = sum(isinstance(a, np.ndarray) for a in args)
    for i in range(n_arrays):
        if i == out_pos:
            continue  # the test layer's output buffer, not an argument of the operator
        bad = list(args)
        a = bad[i]
        strided = False
        if kind == "list":
            bad[i] = a.tolist()
        elif kind == "f_order":
            if a.ndim < 2:
                continue
            bad[i] = np.asfortranarray(np.concatenate([a, a], axis=-1))[..., ::2]
            strided = True
        elif kind == "strided":
            bad[i] = np.repeat(a, 2, axis=0)[::2]
            strided = True
        elif kind == "int8":
            bad[i] = a.astype(np.int8)
            # int8 values are taken by S @ x: same answer (the values are ones)
            strided = fn.endswith("_spmm") and i == (0 if fn == "nm_spmm" else 2)
        elif kind == "none":
            bad[i] = None
        else:
            bad[i] = np.array(1.0, a.dtype)
        bad[out_pos] = np.full_like(args[out_pos], np.nan)
        try:
            getattr(C, fn)(*bad)
        except (*ERRORS, RuntimeError) as e:
            if strided:
                raise AssertionError(f"{fn}: strided argument {i} refused: {e}") from e
            if isinstance(e, RuntimeError):  # torch's dispatcher: not a tensor at all
                assert kind in ("list", "none"), (fn, i, kind, e)
        else:
            if not strided:
                raise AssertionError(f"{fn}: argument {i} as {kind} was accepted")
            np.testing.assert_allclose(bad[out_pos], want, rtol=1e-6)
