"""The integer bitmap SpMV (csrc/spmv_vnni_kernels.h: int8 values times a bfloat16 x, N = 1,
AVX-512 VBMI2 + VNNI): x in 24-bit block fixed point, vpdpbusd sums. Against float64 per
output (the bfloat16 output's rounding plus float32's accumulation bound), against the float
kernels, at K past the kernel's int32 chunk, with x spanning 2^60 in magnitude (the small ones
rounded), x not finite (the float kernels take it), bad rows. Skipped where the CPU lacks
VBMI2 or VNNI."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops import _C
from tests.helpers import draw_seed, random_sparse

pytestmark = [
    pytest.mark.skipif("avx512" not in _C._supported_simd_levels() or not _C._bitmap_vnni(),
                       reason="needs AVX-512 with VBMI2 and VNNI"),
    pytest.mark.usefixtures("restore_simd_and_panel"),
]

ops = torch.ops.sparse_ops


def _quantized(m: int, k: int, density: float, seed: int) -> so.SparseMatrix:
    return so.quantize(random_sparse("bitmap", (m, k), {}, density=density, seed=seed)[0])


def _check(q: so.SparseMatrix, x: torch.Tensor, y: torch.Tensor, ctx) -> None:
    """y (1, M) bfloat16 against float64 on the dequantized weight, output by output: within
    the output's bfloat16 rounding (2^-8 relative, both roundings) plus 1e-6 of the sum of
    |terms| (float32 accumulation; the integer sums are exact, only x's smallest entries are
    rounded, to 2^-23 of the largest)."""
    w = q.to_dense().double()
    want = x.double() @ w.T
    terms = x.double().abs() @ w.abs().T
    err = (y.double() - want).abs()
    bound = 2.0**-8 * want.abs() + 1e-6 * terms + 1e-300
    assert (err <= bound).all(), (ctx, float((err / bound).max()))


@pytest.mark.parametrize("k", [8, 63, 64, 65, 136, 701, 1030])
def test_vnni_spmv_matches_float64_and_the_float_kernels(k):
    _C._set_simd_level("avx512")
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    for density in (0.1, 0.5, 0.9, 1.0):
        q = _quantized(29, k, density, seed)
        for scale, dtype in ((1.0, torch.bfloat16), (1e-30, torch.bfloat16),
                             (2.0**60, torch.bfloat16), (2.0**-100, torch.bfloat16),
                             (1.0, torch.float16), (2.0**-10, torch.float16)):
            x = (torch.randn(1, k, generator=g) * scale).to(dtype)
            _C._set_bitmap_vnni(True)
            y = so.linear(x, q)
            _check(q, x, y, (k, density, scale, seed))
            _C._set_bitmap_vnni(False)
            y_float = so.linear(x, q)
            _check(q, x, y_float, (k, density, scale, seed, "float"))
            # the same sums, both accurate to float32 before the output's rounding: at most
            # one step of its dtype apart
            step = 2.0**-7 * torch.maximum(y.double().abs(), y_float.double().abs())
            assert ((y.double() - y_float.double()).abs() <= step + 1e-300).all(), (k, seed)


def test_vnni_spmv_x_of_wide_range_and_long_rows():
    """x entries from 2^-40 to 2^20 (those more than 2^14 below the largest rounded to its
    grid, 2^-23 of the largest) and
    K past 512 words (the int32 lanes reduced into int64 several times a row; odd words,
    a partial last word)."""
    _C._set_simd_level("avx512")
    _C._set_bitmap_vnni(True)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    for k in (32768 + 64 * 3 + 5, 70001):
        q = _quantized(7, k, 0.5, seed)
        x = torch.randn(1, k, generator=g) * 2.0 ** torch.randint(-40, 21, (1, k), generator=g)
        _check(q, x.bfloat16(), so.linear(x.bfloat16(), q), (k, seed))


def test_vnni_spmv_is_exact_on_integers():
    """Small integer x: every x on the kernel's grid, the integer sums exact, so the float32
    result before rounding is the exact dot product; outputs below 2^8 survive bfloat16."""
    _C._set_simd_level("avx512")
    _C._set_bitmap_vnni(True)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    s = random_sparse("bitmap", (40, 701), {}, density=0.02, seed=seed)[0]
    q = so.quantize(s)
    x = torch.randint(-2, 3, (701, 1), generator=g).bfloat16()
    y = ops.bitmap_spmm(q.row_offsets, q.bitmap, q.values, x, q.nnz)
    bits = (q.bitmap.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1
    w = torch.zeros(40, 701, dtype=torch.float64)
    w[bits.reshape(40, -1)[:, :701].bool()] = q.values.double()
    want = w @ x.double()
    small = want.abs() < 256
    assert small.any(), seed
    assert torch.equal(y.double()[small], want[small]), seed


def test_vnni_spmv_takes_inf_and_nan_to_the_float_kernels():
    _C._set_simd_level("avx512")
    seed = draw_seed()
    q = _quantized(29, 701, 0.5, seed)
    for bad in (float("inf"), float("nan")):
        x = torch.randn(1, 701).bfloat16()
        x[0, 100] = bad
        _C._set_bitmap_vnni(True)
        y = so.linear(x, q)
        _C._set_bitmap_vnni(False)
        y_float = so.linear(x, q)
        # the same float kernel ran both times
        assert torch.equal(torch.isnan(y), torch.isnan(y_float)), (bad, seed)
        keep = ~torch.isnan(y_float)
        assert torch.isinf(y_float).any() or bad != bad, seed
        assert torch.equal(y[keep], y_float[keep]), (bad, seed)


def test_vnni_spmv_zero_x_gives_zeros():
    _C._set_simd_level("avx512")
    _C._set_bitmap_vnni(True)
    q = _quantized(29, 136, 0.5, draw_seed())
    y = so.linear(torch.zeros(1, 136, dtype=torch.bfloat16), q)
    assert torch.equal(y, torch.zeros(1, 29, dtype=torch.bfloat16))


def test_vnni_spmv_reports_bad_rows():
    """A row whose bitmap holds one bit more or less than its span, or a bit past K, is a
    ValueError (the kernel checks each row as it goes), never a read past the values."""
    _C._set_simd_level("avx512")
    _C._set_bitmap_vnni(True)
    seed = draw_seed()
    q = _quantized(29, 701, 0.5, seed)
    x = torch.randn(701, 1).bfloat16()
    for row in (0, 14, 28):  # the last rows take the careful words
        for byte, bit in ((3, 1), (87, 1 << 6)):  # a column inside K; column 702 (past K)
            bad = q.bitmap.clone()
            bad[row, byte] ^= bit
            with pytest.raises(ValueError, match="bitmap"):
                ops.bitmap_spmm(q.row_offsets, bad, q.values, x, q.nnz)


@pytest.mark.parametrize("layout", ["bitmap", "nm"])
def test_one_token_per_row_scales_through_the_grouped_op(layout):
    """so.linear at one token with per-row scales calls the grouped product with one group a
    row (scales applied in C++ after the per-row product): float64 on the dequantized
    weight, with a bias, with the VNNI kernel on and off, K not a multiple of 64."""
    _C._set_simd_level("avx512")
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    kw = {"n": 2, "m": 4} if layout == "nm" else {}
    q = so.quantize(random_sparse(layout, (37, 700), kw, density=0.5, seed=seed)[0])
    bias = torch.randn(37, generator=g).bfloat16()
    x = torch.randn(1, 700, generator=g).bfloat16()
    want = x.double() @ q.to_dense().double().T + bias.double()
    for on in (True, False):
        _C._set_bitmap_vnni(on)
        y = so.linear(x, q, bias)
        assert y.dtype == torch.bfloat16 and y.shape == (1, 37)
        assert ((y.double() - want).abs() <= 2.0**-7 * want.abs() + 1e-2).all(), (on, seed)


@pytest.mark.parametrize("group_size", [None, 64])
@pytest.mark.parametrize("layout", ["bitmap", "nm"])
def test_one_token_fast_path_follows_the_weight_and_checks_x(layout, group_size):
    """so.linear binds the one-token op on its first call; later calls take it. Replacing
    the weight's values or scales drops it (the new ones are used), a copy or a pickle
    rebinds, and bad activations still get the slow path's errors."""
    import copy
    import pickle

    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    kw = {"n": 2, "m": 4} if layout == "nm" else {}
    q = so.quantize(random_sparse(layout, (37, 700), kw, density=0.5, seed=seed)[0],
                    group_size=group_size)
    x = torch.randn(1, 700, generator=g).bfloat16()

    def want(w):
        return x.double() @ w.to_dense().double().T

    def close(y, w):
        return bool(((y.double() - want(w)).abs() <= 2.0**-7 * want(w).abs() + 1e-3).all())

    assert close(so.linear(x, q), q) and "_one_token" in q.__dict__, seed
    assert close(so.linear(x, q), q), seed  # the bound op
    q.values = -q.values  # a new tensor: the bound op is dropped, the new values used
    assert "_one_token" not in q.__dict__
    assert close(so.linear(x, q), q), seed
    q.scales = q.scales * 2
    assert close(so.linear(x, q), q), seed
    x3 = x.reshape(1, 1, 700)  # a decoder's (batch, sequence, hidden)
    assert torch.equal(so.linear(x3, q), so.linear(x, q).reshape(1, 1, 37)), seed
    assert so.linear(x3, q).shape == (1, 1, 37)
    for c in (copy.deepcopy(q), pickle.loads(pickle.dumps(q))):
        assert "_one_token" not in c.__dict__
        assert close(so.linear(x, c), c), seed
    so.linear(x, q)
    with pytest.raises(TypeError, match="x"):
        so.linear(x.to(torch.int32), q)
    with pytest.raises(ValueError, match="x"):
        so.linear(torch.randn(1, 699).bfloat16(), q)
    with pytest.raises(RuntimeError, match="inference only"):
        so.linear(x.float().requires_grad_(), q)
    with pytest.raises(TypeError, match="x"):
        so.linear(x.to_sparse(), q)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_one_token_fast_path_under_compile():
    """An eager call binds the op; torch.compile(fullgraph) of a module calling so.linear
    then traces the bound call (the fake kernel) and agrees with eager."""
    seed = draw_seed()
    q = _quantized(37, 700, 0.5, seed)
    x = torch.randn(1, 700).bfloat16()
    eager = so.linear(x, q)
    assert "_one_token" in q.__dict__

    def f(t):
        return so.linear(t, q) * 2

    got = torch.compile(f, fullgraph=True)(x)
    assert torch.equal(got, eager * 2), seed


@pytest.mark.parametrize("layout", ["bitmap", "nm"])
def test_linear_grouped_ops_opcheck_shapes_and_bias(layout):
    """bitmap_linear_grouped / nm_linear_grouped: x (..., K) -> (..., M), the bias added in
    float32, group scales or one group a row; opcheck (fake kernel, schema, autograd
    registration) on 1-, 2- and 3-D x; float64 reference; the bias's errors."""
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    kw = {"n": 2, "m": 4} if layout == "nm" else {}
    op = (torch.ops.sparse_ops.nm_linear_grouped if layout == "nm"
          else torch.ops.sparse_ops.bitmap_linear_grouped)
    for group_size in (None, 64):
        q = so.quantize(random_sparse(layout, (37, 700), kw, density=0.5, seed=seed)[0],
                        group_size=group_size)
        gsize = group_size or 700
        args = (*q.structure(), q.values, q.scales.float())
        w = q.to_dense().double()
        for shape in ((700,), (1, 700), (3, 700), (2, 1, 700)):
            for dtype in (torch.float32, torch.bfloat16):
                x = torch.randn(shape, generator=g).to(dtype)
                bias = torch.randn(37, generator=g).to(dtype)
                y = op(*args, x, bias, gsize, *q.params())
                assert y.shape == (*shape[:-1], 37) and y.dtype == dtype, (shape, seed)
                want = x.double() @ w.T + bias.double()
                tol = 1e-5 if dtype == torch.float32 else 2.0**-7
                assert ((y.double() - want).abs() <= tol * (x.double().abs() @ w.abs().T
                                                           + bias.double().abs())).all(), seed
                torch.library.opcheck(op.default, (*args, x, bias, gsize, *q.params()))
        x = torch.randn(1, 700)
        with pytest.raises(TypeError, match="bias"):
            op(*args, x, torch.zeros(37, dtype=torch.bfloat16), gsize, *q.params())
        with pytest.raises(ValueError, match="bias"):
            op(*args, x, torch.zeros(36), gsize, *q.params())


@pytest.mark.parametrize("k,group_size", [(701, 64), (701, 128), (1030, 192), (70001, 65536)])
def test_vnni_spmv_with_group_scales(k, group_size):
    """Group scales of 64k columns at one token: each group's integer sums folded, times its
    scale, into float32 lanes (and every 512 words within a longer group: 65536), the offset
    taken off per group. float64 per output (plus the float fold's rounding: 2^-22 of the
    terms with the offset's 128), against the float kernels, with the kernel on and off."""
    _C._set_simd_level("avx512")
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    m = 7 if k > 10000 else 29
    q = so.quantize(random_sparse("bitmap", (m, k), {}, density=0.5, seed=seed)[0],
                    group_size=group_size)
    w = q.to_dense().double()
    for scale in (1.0, 2.0**40):
        x = (torch.randn(1, k, generator=g) * scale).bfloat16()
        want = x.double() @ w.T
        terms = x.double().abs() @ w.abs().T
        _C._set_bitmap_vnni(True)
        y = so.linear(x, q)
        _C._set_bitmap_vnni(False)
        y_float = so.linear(x, q)
        for got in (y, y_float):
            err = (got.double() - want).abs()
            assert (err <= 2.0**-8 * want.abs() + 1e-5 * terms).all(), (k, scale, seed)
        step = 2.0**-7 * torch.maximum(y.double().abs(), y_float.double().abs())
        assert ((y.double() - y_float.double()).abs() <= step + 1e-5 * terms).all(), seed
