"""The bitmap layout: format, conversions, the C++ products at every SIMD level against float64,
and malformed structures (hypothesis) that must raise, never crash or read out of bounds."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sparse_ops as so
from sparse_ops import _C
from sparse_ops.bitmap import pack_mask, row_bytes
from tests.helpers import draw_seed, err_vs_magnitude, rel_err

ops = torch.ops.sparse_ops
LEVELS = _C._supported_simd_levels()


def _pruned(shape, density, dtype=torch.float32, seed=None):
    g = torch.Generator().manual_seed(draw_seed() if seed is None else seed)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    p = so.prune(w, "bitmap", density) if w.numel() else w
    return so.to_sparse(p.to(dtype), "bitmap"), p.to(dtype).double(), g


# ----------------------------------------------------------------------------- the format
@pytest.mark.parametrize("shape", [(37, 53), (19, 130), (5, 64), (3, 1), (0, 7), (4, 0)])
def test_round_trip_and_exact_bytes(shape):
    s, dense, _ = _pruned(shape, 0.5)
    assert isinstance(s, so.BitmapMatrix) and s.layout == "bitmap"
    assert torch.equal(s.to_dense().double(), dense)
    m, k = shape
    assert s.bitmap.shape == (m, row_bytes(k)) and s.bitmap.dtype == torch.uint8
    assert s.nbytes == 4 * (m + 1) + m * row_bytes(k) + 4 * s.nnz
    assert int(s.row_offsets[-1]) == s.nnz == int((dense != 0).sum())
    if m and k:
        t = s.to_torch()
        assert t.layout == torch.sparse_csr and torch.equal(t.to_dense().double(), dense)
        assert torch.equal(so.to_sparse(t, "bitmap").to_dense().double(), dense)


def test_prune_counts_and_from_torch_keeps_explicit_zeros():
    w = torch.randn(20, 70)
    p = so.prune(w, "bitmap", density=0.3)
    assert int((p != 0).sum()) == round(0.3 * 20 * 70)
    coo = torch.sparse_coo_tensor(torch.tensor([[0, 0, 2], [5, 1, 3]]),
                                  torch.tensor([1.0, 0.0, 2.0]), (3, 9))
    s = so.to_sparse(coo, "bitmap")
    assert s.nnz == 3 and s.values.tolist() == [0.0, 1.0, 2.0]  # row-major, column order


def test_validation_names_the_argument():
    s, _, _ = _pruned((9, 70), 0.5)
    off, bits, vals = s.row_offsets, s.bitmap, s.values
    with pytest.raises(ValueError, match="bitmap"):
        so.BitmapMatrix(off, bits[:, :8], vals, (9, 70))
    with pytest.raises(TypeError, match="bitmap"):
        so.BitmapMatrix(off, bits.to(torch.int16), vals, (9, 70))
    bad = bits.clone()
    bad[2, 15] |= 0x80  # column 127: past K = 70
    with pytest.raises(ValueError, match="bitmap"):
        so.BitmapMatrix(off, bad, vals, (9, 70))
    shifted = off.clone()
    shifted[3] += 1
    with pytest.raises(ValueError, match="row_offsets"):
        so.BitmapMatrix(shifted, bits, vals, (9, 70))
    with pytest.raises(ValueError, match="row_offsets"):
        so.BitmapMatrix(off[:-1], bits, vals, (9, 70))


# ----------------------------------------------------------------------------- C++ products
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("shape", [(37, 53), (61, 130), (33, 64), (8, 1), (17, 1000)])
@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_products_match_float64(level, shape, density, dtype):
    torch.set_num_threads(2)
    before = _C.simd_level()
    _C._set_simd_level(level)
    try:
        s, dense, g = _pruned(shape, density, dtype)
        m, k = shape
        for n in (1, 3, 19, 70):
            # Operands are views into NaN-poisoned buffers: a read past them shows up.
            xbuf = torch.full((k + 2, n + 5), float("nan"), dtype=dtype)
            xbuf[1:k + 1, 2:n + 2] = torch.randn(k, n, generator=g, dtype=dtype)
            x = xbuf[1:k + 1, 2:n + 2] if n > 1 else xbuf[1:k + 1, 2:3].contiguous()
            d = torch.randn(m, n, generator=g, dtype=dtype)
            y = so.matmul(s, x)
            assert rel_err(y, dense @ x.double()) < 1e-5, (n, rel_err(y, dense @ x.double()))
            z = ops.bitmap_spmm_t(s.row_offsets, s.bitmap, s.values, d, k, s.nnz)
            # against |S|^T |d|: a one-column result of a few terms may cancel to near zero
            assert err_vs_magnitude(z, dense.T @ d.double(),
                                    dense.abs().T @ d.double().abs()) < 1e-5
            v = ops.bitmap_sddmm(s.row_offsets, s.bitmap, d, x.contiguous(), s.nnz)
            want = (d.double() @ x.double().T)[s.mask()]
            assert rel_err(v, want) < 1e-5
            xt = torch.randn(n, k, generator=g, dtype=dtype)
            bias = torch.randn(m, generator=g, dtype=dtype)
            yl = so.linear(xt, s, bias)
            assert rel_err(yl, xt.double() @ dense.T + bias.double()) < 1e-5
    finally:
        _C._set_simd_level(before)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("density", [0.3, 1.0])
def test_wide_rows_decode_to_int32_columns(level, density):
    """K > 32767: the N > 1 products decode rows to int32 columns (int16 below) at every
    level (AVX-512 compress, AVX2 byte table, scalar bits)."""
    before = _C.simd_level()
    _C._set_simd_level(level)
    try:
        s, dense, g = _pruned((5, 40_003), density, torch.float32)
        for n in (3, 19):
            x = torch.randn(40_003, n, generator=g)
            assert rel_err(so.matmul(s, x), dense @ x.double()) < 1e-5, (level, n)
    finally:
        _C._set_simd_level(before)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_values_every_level(level, dtype):
    before = _C.simd_level()
    _C._set_simd_level(level)
    try:
        s, dense, g = _pruned((301, 999), 0.5, dtype)
        for n in (1, 3, 67):
            x = torch.randn(999, n, generator=g).to(dtype)
            y = so.matmul(s, x)
            assert y.dtype == dtype and rel_err(y, dense @ x.double()) < 8e-3
    finally:
        _C._set_simd_level(before)


def test_gradients_flow_through_values_and_input():
    s, dense, g = _pruned((13, 70), 0.5, torch.float64)
    vals = s.values.clone().requires_grad_()
    x = torch.randn(70, 4, generator=g, dtype=torch.float64, requires_grad=True)
    sw = s.with_values(vals)
    torch.autograd.gradcheck(lambda v, xx: so.matmul(s.with_values(v), xx), (vals, x))
    xt = torch.randn(5, 70, generator=g, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda v, xx: so.linear(xx, s.with_values(v)), (vals, xt))
    assert so.matmul(sw, x).requires_grad


def test_opcheck_every_product():
    s, _, g = _pruned((13, 70), 0.5)
    x = torch.randn(70, 3, generator=g)
    d = torch.randn(13, 3, generator=g)
    args = {
        "bitmap_spmm": (s.row_offsets, s.bitmap, s.values, x, s.nnz),
        "bitmap_spmm_t": (s.row_offsets, s.bitmap, s.values, d, 70, s.nnz),
        "bitmap_sddmm": (s.row_offsets, s.bitmap, d, x, s.nnz),
        "bitmap_linear": (s.row_offsets, s.bitmap, s.values, x.T.contiguous(), None, s.nnz),
    }
    for name, a in args.items():
        torch.library.opcheck(getattr(ops, name).default, a)


def test_cache_revalidates_after_in_place_change():
    s, _, g = _pruned((37, 130), 0.5)
    x = torch.randn(130, 3, generator=g)
    so.matmul(s, x)
    s.bitmap[4, 0] ^= 0x01  # one more (or one less) bit: popcount != the row's span
    with pytest.raises(ValueError, match="row_offsets"):
        so.matmul(s, x)
    s.bitmap[4, 0] ^= 0x01
    so.matmul(s, x)
    s.bitmap[4, 16] = 0x10  # column 132, past K = 130
    with pytest.raises(ValueError, match="bitmap|row_offsets"):
        so.matmul(s, x)


def test_nnz_parameter_is_checked():
    s, _, g = _pruned((7, 20), 0.5)
    x = torch.randn(20, 2, generator=g)
    with pytest.raises(ValueError, match="nnz"):
        ops.bitmap_sddmm(s.row_offsets, s.bitmap, torch.randn(7, 2), x, s.nnz + 1)
    with pytest.raises(ValueError, match="values|nnz"):
        ops.bitmap_spmm(s.row_offsets, s.bitmap, s.values, x, s.nnz - 1)


# ----------------------------------------------------------------------------- fuzzing
@st.composite
def bitmap_case(draw):
    m = draw(st.integers(0, 6))
    k = draw(st.integers(0, 140))
    rb = row_bytes(k)
    mask = torch.tensor(
        draw(st.lists(st.lists(st.booleans(), min_size=k, max_size=k), min_size=m, max_size=m)),
        dtype=torch.bool,
    ).reshape(m, k)
    bits = pack_mask(mask)
    off = torch.zeros(m + 1, dtype=torch.int32)
    off[1:] = torch.cumsum(mask.sum(1), 0)
    nnz = int(off[-1])
    how = draw(st.sampled_from(["ok", "offset", "padding", "width", "nnz", "values", "random"]))
    if how == "offset":
        off[draw(st.integers(0, m))] += draw(st.sampled_from([-3, -1, 1, 7, 2**30]))
    elif how == "padding" and m and rb * 8 > k:
        i = draw(st.integers(0, m - 1))
        j = draw(st.integers(k, rb * 8 - 1))
        bits[i, j // 8] |= 1 << (j % 8)
    elif how == "width" and m:
        bits = torch.zeros(m, rb + 8, dtype=torch.uint8)
    elif how == "random" and m and rb:
        bits = torch.randint(0, 256, (m, rb), dtype=torch.uint8)
        off = torch.randint(-5, 400, (m + 1,), dtype=torch.int32)
    n_vals = nnz + (draw(st.sampled_from([-1, 1, 5])) if how == "values" and nnz else 0)
    param = nnz + (draw(st.sampled_from([-1, 1])) if how == "nnz" else 0)
    return k, bits, off, n_vals, param, draw(st.integers(0, 5))


def _unpack(bits):
    bits_each = (bits.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1
    return bits_each.reshape(bits.shape[0], 8 * bits.shape[1])


def _structure_ok(bits, off, k, param):
    """The Python statement of what the C++ checks: the reference the fuzzing compares with."""
    m = off.numel() - 1
    if tuple(bits.shape) != (m, row_bytes(k)) or int(off[0]) != 0 or int(off[-1]) != param:
        return False
    unpacked = _unpack(bits)
    if bool(unpacked[:, k:].any()):
        return False
    return bool((off.long().diff() == unpacked.sum(1)).all())


@settings(max_examples=150, deadline=None)
@given(bitmap_case())
def test_fuzz_malformed_structures(case):
    """Any structure the Python statement rejects raises ValueError/TypeError in C++, any it
    accepts gives the float64 answer; nothing crashes or reads past a tensor."""
    k, bits, off, n_vals, param, n = case
    m = off.numel() - 1
    vals = torch.randn(n_vals)
    x = torch.randn(k, n)
    d = torch.randn(m, n)
    ok = _structure_ok(bits, off, k, param)
    mask = None
    if ok:
        mask = _unpack(bits)[:, :k].bool()
    # int8 values at N = 1 (the shuffle SpMV on AVX2) and with group scales (32: shuffles,
    # 7: bit by bit)
    qv = torch.randint(-127, 128, (n_vals,), dtype=torch.int8)
    x1 = x[:, :1].contiguous() if n else torch.randn(k, 1)
    gs = 32 if n % 2 else 7
    sc = torch.rand(m, max(-(-k // gs), 1)) + 0.5
    for name, call, takes_values in [
        ("spmm", lambda: ops.bitmap_spmm(off, bits, vals, x, param), True),
        ("spmm_t", lambda: ops.bitmap_spmm_t(off, bits, vals, d, k, param), True),
        ("sddmm", lambda: ops.bitmap_sddmm(off, bits, d, x, param), False),
        ("spmv_i8", lambda: ops.bitmap_spmm(off, bits, qv, x1, param), True),
        ("grouped", lambda: ops.bitmap_spmv_grouped(off, bits, qv, sc, x1, gs, param), True),
        # bfloat16 x (the integer SpMV on AVX-512 VNNI, x and out converted in C++), and the
        # grouped op with one group a row (the per-row product, rows scaled after)
        ("spmv_i8_bf16", lambda: ops.bitmap_spmm(off, bits, qv, x1.bfloat16(), param), True),
        ("rows", lambda: ops.bitmap_spmv_grouped(off, bits, qv, sc[:, :1].contiguous(),
                                                 x1.bfloat16(), max(k, 1), param), True),
    ]:
        valid = ok and (not takes_values or n_vals == param)
        try:
            got = call()
        except (ValueError, TypeError):
            assert not valid, name
            continue
        assert valid, name
        # float64 reference, and the sum of |terms| of each output: a few random terms may
        # cancel (one row, 26 values of up to 127: |y| 0.3 against terms of ~100), so each
        # output is held to 1e-5 of its terms' magnitude, the float32 accumulation bound
        if name == "sddmm":
            want = (d.double() @ x.double().T)[mask]
            scale = (d.double().abs() @ x.double().abs().T)[mask]
        elif name in ("spmv_i8", "grouped", "spmv_i8_bf16", "rows"):
            dense = torch.zeros(m, k, dtype=torch.float64)
            dense[mask] = qv.double()
            if name == "grouped":
                dense *= sc.double()[:, torch.arange(k) // gs]
            if name == "rows":
                dense *= sc.double()[:, :1]
            xr = x1.bfloat16().double() if name in ("spmv_i8_bf16", "rows") else x1.double()
            want = dense @ xr
            scale = dense.abs() @ xr.abs()
            if name in ("spmv_i8_bf16", "rows"):  # and the bfloat16 output's rounding
                scale = scale + 2.0**-8 / 1e-5 * want.abs()
        else:
            dense = torch.zeros(m, k, dtype=torch.float64)
            dense[mask] = vals.double()
            want = dense @ x.double() if name == "spmm" else dense.T @ d.double()
            scale = (dense.abs() @ x.double().abs() if name == "spmm"
                     else dense.abs().T @ d.double().abs())
        assert got.shape == want.shape, name
        assert ((got.double() - want).abs() <= 1e-5 * scale + 1e-30).all(), (
            name, rel_err(got, want))


@pytest.mark.parametrize("level", list(_C._supported_simd_levels()))
@pytest.mark.parametrize("vdtype", ["float32", "bfloat16", "int8"])
@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
@pytest.mark.usefixtures("restore_simd_and_panel")
def test_spmv_non_finite_x_reaches_only_rows_that_store_its_column(level, vdtype, bad):
    """N = 1: with an inf / NaN in x the rows that store nothing in that column stay exact, for
    every value dtype (the SpMV zeroes x in the lanes of unstored columns)."""
    _C._set_simd_level(level)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    w = so.prune(torch.randn(57, 200, generator=g), "bitmap", density=0.5)
    s = so.to_sparse(w, "bitmap")
    if vdtype == "int8":
        s = so.quantize(s)
    elif vdtype == "bfloat16":
        s = s.to(torch.bfloat16)
    dense = s.to_dense().double()
    x = torch.randn(200, 1, generator=g)
    xd = x.clone()
    x[71, 0] = bad
    y = so.matmul(s, x if vdtype != "bfloat16" else x.bfloat16()).double()
    stores = dense[:, 71] != 0
    assert stores.any() and (~stores).any(), seed
    ref = dense @ xd.double()
    tol = 1e-5 if vdtype != "bfloat16" else 1e-2
    assert torch.isfinite(y[~stores]).all(), seed
    assert ((y[~stores] - ref[~stores]).abs().max() / ref.abs().max()) < tol, seed
    assert not torch.isfinite(y[stores]).any(), seed
    y2 = so.matmul(s, xd if vdtype != "bfloat16" else xd.bfloat16()).double()
    assert ((y2 - ref).abs().max() / ref.abs().max()) < tol, seed
