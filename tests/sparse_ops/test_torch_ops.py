"""The C++ torch operators (``torch.ops.sparse_ops.*``): fuzzed with malformed structures,
row-strided operands, the per-structure validation cache, shape consistency and threads.

Every comparison is against a float64 reference on fresh random inputs of odd sizes, with
the output of the op never pre-zeroed (the op allocates it; NaN in it would show).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import sparse_ops as so
from sparse_ops import _C
from tests.csrc.test_csrc_fuzz import (
    SETTINGS,
    bsr_case,
    csr_case,
    csr_valid,
    nm_case,
    nm_valid,
)
from tests.csrc.test_csrc_kernels import bsr_dense, csr_dense, nm_dense, unpack_positions
from tests.helpers import draw_seed, rel_err

ops = torch.ops.sparse_ops
ERRORS = (ValueError, TypeError)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ----------------------------------------------------------------------------- fuzz
@SETTINGS
@given(csr_case(), st.booleans())
def test_fuzz_csr_ops(case, via_call):
    crow, col, vals, m, k, n, dtype = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((k, n)).astype(dtype)
    m_out = max(crow.shape[0] - 1, 0)
    ok = csr_valid(crow, col, vals, m_out, k) and crow.shape[0] >= 1
    spmm = ops.csr_spmm_call if via_call else ops.csr_spmm
    try:
        y = spmm(_t(crow), _t(col), _t(vals), _t(x))
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(y, torch.from_numpy(csr_dense(crow, col, vals, m_out, k) @ x)) < 1e-5
    d = rng.standard_normal((m_out, n)).astype(dtype)
    ok_t = ok
    try:
        z = ops.csr_spmm_t(_t(crow), _t(col), _t(vals), _t(d), k)
    except ERRORS:
        assert not ok_t
    else:
        assert ok_t
        assert rel_err(z, torch.from_numpy(csr_dense(crow, col, vals, m_out, k).T @ d)) < 1e-5
    ok_s = csr_valid(crow, col, None, m_out, k) and crow.shape[0] >= 1
    try:
        v = ops.csr_sddmm(_t(crow), _t(col), _t(d), _t(x))
    except ERRORS:
        assert not ok_s
    else:
        assert ok_s
        rows = np.repeat(np.arange(m_out), np.diff(crow))
        want = np.einsum("pn,pn->p", d[rows].astype(float), x[col.astype(int)].astype(float))
        assert rel_err(v, torch.from_numpy(want)) < 1e-5


@SETTINGS
@given(bsr_case())
def test_fuzz_bsr_ops(case):
    crow, col, nblocks, r, c, k_rows, n = case
    rng = np.random.default_rng(1)
    vals = rng.standard_normal((nblocks, r, c))
    x = rng.standard_normal((k_rows, n))
    mb = max(crow.shape[0] - 1, 0)
    kb = k_rows // c
    ok = (crow.shape[0] >= 1 and k_rows % c == 0 and nblocks == col.shape[0]
          and csr_valid(crow, col, None, mb, kb))
    try:
        y = ops.bsr_spmm(_t(crow), _t(col), _t(vals), _t(x), r, c)
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(y, torch.from_numpy(bsr_dense(crow, col, vals, mb, kb) @ x)) < 1e-12
    d = rng.standard_normal((mb * r, n))
    try:
        z = ops.bsr_spmm_t(_t(crow), _t(col), _t(vals), _t(d), k_rows, r, c)
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(z, torch.from_numpy(bsr_dense(crow, col, vals, mb, kb).T @ d)) < 1e-12


@SETTINGS
@given(nm_case())
def test_fuzz_nm_ops(case):
    nn, m, rows, k, n, meta, vslots = case
    rng = np.random.default_rng(2)
    vals = rng.standard_normal((rows, vslots))
    x = rng.standard_normal((k, n))
    ok = nm_valid(nn, m, rows, k, meta, vslots)
    dense = None
    if ok:
        pos = unpack_positions(meta, vslots, m) if vslots else np.zeros((rows, 0), np.int64)
        dense = nm_dense(vals, pos, k, nn, m)
    try:
        y = ops.nm_spmm(_t(meta), _t(vals), _t(x), nn, m)
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(y, torch.from_numpy(dense @ x)) < 1e-12
    xb = rng.standard_normal((3, k))
    try:
        yl = ops.nm_linear(_t(meta), _t(vals), _t(xb), None, nn, m)
    except ERRORS:
        assert not ok
    else:
        assert ok
        assert rel_err(yl, torch.from_numpy(xb @ dense.T)) < 1e-12


# ----------------------------------------------------------------------------- strides
CASES = [
    ("csr", (37, 53), {"density": 0.3}),
    ("bitmap", (37, 130), {"density": 0.5}),
    ("bsr", (36, 55), {"density": 0.4, "blocksize": (3, 5)}),
    ("nm", (37, 53), {"n": 2, "m": 4}),
    ("nm", (19, 61), {"n": 1, "m": 4}),
]


def _random(layout, shape, kw, dtype=torch.float32):
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g, dtype=dtype)
    p = so.prune(w, layout, kw.get("density"), blocksize=kw.get("blocksize"),
                 n=kw.get("n"), m=kw.get("m"))
    return so.to_sparse(p, layout, **{k: v for k, v in kw.items() if k != "density"}), p, g


@pytest.mark.parametrize("layout,shape,kw", CASES)
@pytest.mark.parametrize("n", [1, 5, 67])
def test_row_strided_operands(layout, shape, kw, n):
    """A row-strided x (a column slice of a wider tensor) gives the same answer."""
    s, p, g = _random(layout, shape, kw)
    wide = torch.randn(shape[1], 2 * n + 3, generator=g)
    x = wide[:, 1:n + 1]
    assert not x.is_contiguous()
    want = p.double() @ x.double()
    assert rel_err(so.matmul(s, x), want) < 1e-5
    xt = torch.randn(2 * n + 3, shape[1], generator=g)[1:n + 1]  # rows of a wider batch
    bias = torch.randn(shape[0], generator=g)
    assert rel_err(so.linear(xt, s, bias), xt.double() @ p.double().T + bias.double()) < 1e-5


@pytest.mark.parametrize("layout,shape,kw", CASES)
def test_negative_and_conjugate_views(layout, shape, kw):
    s, p, g = _random(layout, shape, kw)
    x = torch.randn(shape[1], 4, generator=g)
    neg = torch._neg_view(x)
    assert rel_err(so.matmul(s, neg), -(p.double() @ x.double())) < 1e-5


@pytest.mark.parametrize("layout,shape,kw", CASES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision(layout, shape, kw, dtype):
    s, p, g = _random(layout, shape, kw, dtype=dtype)
    x = torch.randn(shape[1], 7, generator=g).to(dtype)
    y = so.matmul(s, x)
    assert y.dtype == dtype
    assert rel_err(y, p.double() @ x.double()) < 1e-2


# ----------------------------------------------------------------------------- in-place changes
def test_in_place_change_is_checked_again():
    s, p, g = _random("csr", (37, 53), {"density": 0.3})
    x = torch.randn(53, 3, generator=g)
    so.matmul(s, x)
    s.col_indices[5] = 53  # in place: bumps the version counter
    with pytest.raises(ValueError, match="col_indices"):
        so.matmul(s, x)
    s.col_indices[5] = 0
    s.crow_indices[3] = 10_000  # row pointers beyond nnz: must not be read as valid
    with pytest.raises(ValueError, match="crow_indices"):
        so.matmul(s, x)


def test_transposed_product_checks_the_structure_again():
    s, p, g = _random("bsr", (36, 55), {"density": 0.4, "blocksize": (3, 5)})
    d = torch.randn(36, 4, generator=g)
    z = ops.bsr_spmm_t(*s.structure(), s.values, d, 55, 3, 5)
    assert rel_err(z, p.double().T @ d.double()) < 1e-5
    s.col_indices[0] = 11  # block columns are [0, 11)
    with pytest.raises(ValueError, match="col_indices"):
        ops.bsr_spmm_t(*s.structure(), s.values, d, 55, 3, 5)


def test_nm_metadata_is_checked_again():
    s, p, g = _random("nm", (19, 61), {"n": 1, "m": 4})
    x = torch.randn(61, 2, generator=g)
    so.matmul(s, x)
    s.metadata[-1, -1] = 255  # last group of 61 columns has one position: 3 is out of range
    with pytest.raises(ValueError, match="metadata"):
        so.matmul(s, x)


def test_replaced_structure_tensor_is_validated():
    s, p, g = _random("csr", (37, 53), {"density": 0.3})
    x = torch.randn(53, 3, generator=g)
    so.matmul(s, x)
    bad = s.col_indices.clone()
    bad[0] = -1
    s.col_indices = bad
    with pytest.raises(ValueError, match="col_indices"):
        so.matmul(s, x)


def test_cached_call_matches_first_call():
    s, p, g = _random("csr", (37, 53), {"density": 0.3})
    x = torch.randn(53, 9, generator=g)
    first = so.matmul(s, x)
    for _ in range(3):
        assert torch.equal(so.matmul(s, x), first)
    s.values.mul_(2)  # values are read on every call, never cached
    assert rel_err(so.matmul(s, x), 2 * (p.double() @ x.double())) < 1e-5


# ----------------------------------------------------------------------------- consistency
def test_replaced_bsr_values_raise():
    w = torch.randn(32, 64)
    b = so.to_sparse(so.prune(w, "bsr", density=0.5, blocksize=(8, 8)), "bsr", blocksize=(8, 8))
    b.values = torch.randn(b.values.shape[0], 4, 8)
    with pytest.raises(ValueError, match="crow_indices|values"):
        so.matmul(b, torch.randn(64, 5))
    b.values = torch.randn(b.values.shape[0], 64)
    with pytest.raises(ValueError, match="values"):
        so.matmul(b, torch.randn(64, 5))


def test_unvalidated_csr_with_wrong_row_count_raises():
    crow = torch.tensor([0, 1, 2], dtype=torch.int32)
    col = torch.tensor([0, 3], dtype=torch.int16)
    s = so.CSRMatrix(crow, col, torch.ones(2), (5, 8), validate=False)
    with pytest.raises(ValueError, match="crow_indices"):
        so.matmul(s, torch.randn(8, 2))
    with pytest.raises(ValueError, match="crow_indices"):
        so.linear(torch.randn(3, 8), s)


def test_nm_values_of_the_wrong_shape_raise():
    s, _, _ = _random("nm", (37, 53), {"n": 2, "m": 4})
    s.values = s.values[:, :-1]
    with pytest.raises(ValueError, match="values"):
        so.matmul(s, torch.randn(53, 2))


def test_dtype_mismatch_is_a_type_error():
    s, _, _ = _random("csr", (37, 53), {"density": 0.3})
    with pytest.raises(TypeError, match="x"):
        ops.csr_spmm(*s.structure(), s.values, torch.randn(53, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="x"):
        ops.csr_spmm(*s.structure(), s.values, torch.randn(53, 2).bfloat16())


# ----------------------------------------------------------------------------- threads
def test_concurrent_callers_get_correct_results():
    """Four Python threads share one weight; the pool serves one, the others run inline."""
    torch.set_num_threads(2)
    s, p, g = _random("csr", (301, 997), {"density": 0.2})
    xs = [torch.randn(997, 33, generator=g) for _ in range(4)]
    want = [p.double() @ x.double() for x in xs]
    errors: list[str] = []

    def work(i):
        for _ in range(25):
            if rel_err(so.matmul(s, xs[i]), want[i]) >= 1e-5:
                errors.append(f"thread {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors


@pytest.mark.parametrize("layout,kw", [
    ("csr", {"density": 0.2}),
    ("bitmap", {"density": 0.6}),
    ("bsr", {"density": 0.3, "blocksize": (7, 3)}),
    ("nm", {"n": 2, "m": 4}),
    ("nm", {"n": 1, "m": 4}),
])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("tile_bytes", [0, 4096])
@pytest.mark.parametrize("level", _C._supported_simd_levels())
def test_half_values_every_chunk_and_tile(layout, kw, dtype, tile_bytes, level):
    """Half values: read natively by the SpMV kernels of every SIMD level (N = 1), widened
    chunk by chunk otherwise; many row chunks, 2 threads, packed column tiles."""
    torch.set_num_threads(2)
    before = _C.simd_level()
    _C._set_simd_level(level)
    _C._set_tile_bytes(tile_bytes)
    try:
        s, p, g = _random(layout, (301, 999), kw, dtype=dtype)
        for n in (1, 3, 67):
            x = torch.randn(999, n, generator=g).to(dtype)
            want = p.double() @ x.double()
            got = so.matmul(s, x)
            assert got.dtype == dtype
            assert rel_err(got, want) < 8e-3, (n, rel_err(got, want))
    finally:
        _C._set_tile_bytes(0)
        _C._set_simd_level(before)


@pytest.mark.skipif("avx2" not in _C._supported_simd_levels(), reason="needs AVX2")
@pytest.mark.parametrize("how", ["gather", "loads"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_avx2_csr_spmv_variants(how, dtype):
    """Both AVX2 SpMV variants (the one measured faster is used): same answers, same checks."""
    before = _C.simd_level()
    _C._set_simd_level("avx2")
    _C._set_csr_spmv(how)
    try:
        for shape in [(37, 53), (301, 4099)]:
            s, p, g = _random("csr", shape, {"density": 0.3}, dtype=dtype)
            x = torch.randn(shape[1], 1, generator=g).to(dtype)
            tol = 1e-5 if dtype != torch.bfloat16 else 8e-3
            assert rel_err(so.matmul(s, x), p.double() @ x.double()) < tol
        bad = so.CSRMatrix(s.crow_indices, s.col_indices.clone(), s.values, s.shape,
                           validate=False)
        bad.col_indices[-1] = shape[1]
        with pytest.raises(ValueError, match="col_indices"):
            so.matmul(bad, x)
    finally:
        _C._set_csr_spmv("auto")
        _C._set_simd_level(before)


@pytest.mark.skipif("avx2" not in _C._supported_simd_levels(), reason="needs AVX2")
def test_avx2_csr_spmv_auto_choice_by_row_length():
    """The measured choice is a row-length bound: a matrix of short rows (loads where they
    won) above long ones (gathers where they won), split across threads, stays exact."""
    before = _C.simd_level()
    _C._set_simd_level("avx2")
    _C._set_csr_spmv("auto")
    try:
        g = torch.Generator().manual_seed(draw_seed())
        K = 2051
        keep = torch.rand(301, K, generator=g)
        keep[:150] = keep[:150] < 0.01   # ~20 a row: below the bound
        keep[150:] = keep[150:] < 0.4    # ~820 a row: above it
        dense = torch.randn(301, K, generator=g, dtype=torch.float64) * keep.double()
        s = so.to_sparse(dense.float(), "csr")
        for n_threads in (1, 2):
            prev = torch.get_num_threads()
            torch.set_num_threads(n_threads)
            try:
                x = torch.randn(K, 1, generator=g)
                out = so.matmul(s, x)
            finally:
                torch.set_num_threads(prev)
            assert rel_err(out, dense @ x.double()) < 1e-5
        assert _C._csr_spmv_choice() in ("gather", "loads", "loads below 128 a row")
    finally:
        _C._set_csr_spmv("auto")
        _C._set_simd_level(before)


def test_many_structures_stay_correct_and_checked():
    """Many live structures (more than a per-structure cache would hold): results stay right,
    and a weight seen again is checked again rather than trusted."""
    g = torch.Generator().manual_seed(draw_seed())
    mats = []
    for _ in range(4200):
        dense = torch.randn(3, 5, generator=g) * (torch.rand(3, 5, generator=g) < 0.5)
        dense[0, 0] = 1.0  # at least one stored entry
        mats.append((so.to_sparse(dense, "csr"), dense))
    x = torch.randn(5, 2, generator=g)
    for s, dense in mats:
        assert rel_err(so.matmul(s, x), dense.double() @ x.double()) < 1e-5
    s, dense = mats[0]
    s.col_indices[0] = 7  # out of range, after the entry may have been dropped
    with pytest.raises(ValueError, match="col_indices"):
        so.matmul(s, x)


# ----------------------------------------------------------------------------- BSR S^T @ d
@pytest.mark.parametrize("level", _C._supported_simd_levels())
@pytest.mark.parametrize("blocksize", [(3, 5), (8, 4), (32, 32)], ids=str)
@pytest.mark.parametrize("n", [2, 17, 70])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_bsr_spmm_t_reads_blocks_transposed(level, blocksize, n, dtype):
    """``bsr_spmm_t`` for N > 1 reads the stored blocks through the cached permutation,
    transposed in place: against float64 on odd block counts, at every SIMD level, 1 and 2
    threads, and again after the values change in place (no stale copy)."""
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    r, c = blocksize
    mb, kb = 7, 9
    dense = torch.randn(mb * r, kb * c, generator=g, dtype=torch.float64)
    keep = torch.rand(mb, kb, generator=g) < 0.45
    dense *= keep.repeat_interleave(r, 0).repeat_interleave(c, 1)
    s = so.to_sparse(dense.to(dtype), "bsr", blocksize=blocksize)
    d = torch.randn(mb * r, n, generator=g, dtype=torch.float64)
    before = (_C.simd_level(), torch.get_num_threads())
    try:
        _C._set_simd_level(level)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for step in range(2):
                got = ops.bsr_spmm_t(s.crow_indices, s.col_indices, s.values, d.to(dtype),
                                     kb * c, r, c)
                want = s.to_dense().double().T @ d.to(dtype).double()
                tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
                assert rel_err(got, want) < tol, f"seed {seed} threads {threads} step {step}"
                with torch.no_grad():
                    s.values.mul_(-0.5)
    finally:
        _C._set_simd_level(before[0])
        torch.set_num_threads(before[1])


@pytest.mark.parametrize("level", _C._supported_simd_levels())
@pytest.mark.parametrize("n", [2, 17, 70, 150, 300])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_csr_spmm_t_reads_values_through_the_permutation(level, n, dtype):
    """``csr_spmm_t`` for N > 1 runs the forward kernel over the cached transposed structure,
    reading values through the permutation (tiles of up to 8 vectors, several passes for
    wide N): against float64 at every SIMD level, 1 and 2 threads, after in-place changes."""
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    m, k = 93, 131
    dense = torch.randn(m, k, generator=g, dtype=torch.float64)
    dense *= torch.rand(m, k, generator=g, dtype=torch.float64) < 0.3
    s = so.to_sparse(dense.to(dtype), "csr")
    d = torch.randn(m, n, generator=g, dtype=torch.float64).to(dtype)
    before = (_C.simd_level(), torch.get_num_threads())
    try:
        _C._set_simd_level(level)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for step in range(2):
                got = ops.csr_spmm_t(s.crow_indices, s.col_indices, s.values, d, k)
                want = s.to_dense().double().T @ d.double()
                tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
                assert rel_err(got, want) < tol, f"seed {seed} threads {threads} step {step}"
                with torch.no_grad():
                    s.values.mul_(-0.5)
    finally:
        _C._set_simd_level(before[0])
        torch.set_num_threads(before[1])
