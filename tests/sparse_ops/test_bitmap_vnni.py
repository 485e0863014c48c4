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


def _subnormal_step(dtype: torch.dtype) -> float:
    """The spacing of the output dtype's subnormals: below its smallest normal, rounding is
    absolute (float16: 2^-24, about 6e-8), not relative."""
    fi = torch.finfo(dtype)
    return fi.smallest_normal * fi.eps


def _check(q: so.SparseMatrix, x: torch.Tensor, y: torch.Tensor, ctx) -> None:
    """y (1, M) bfloat16 / float16 against float64 on the dequantized weight, output by output:
    within the output's rounding (2^-8 relative, both roundings; one subnormal step where the
    output is that small) plus 1e-6 of the sum of |terms| (float32 accumulation; the integer
    sums are exact, only x's smallest entries are rounded, to 2^-23 of the largest)."""
    w = q.to_dense().double()
    want = x.double() @ w.T
    terms = x.double().abs() @ w.abs().T
    err = (y.double() - want).abs()
    bound = 2.0**-8 * want.abs() + 1e-6 * terms + _subnormal_step(y.dtype)
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
            # one step of its dtype apart (a subnormal step where the outputs are that small)
            step = 2.0**-7 * torch.maximum(y.double().abs(), y_float.double().abs())
            step = step + _subnormal_step(dtype)
            assert ((y.double() - y_float.double()).abs() <= step).all(), (k, seed)


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
