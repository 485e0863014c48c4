"""The dense-panel path of the wide bitmap and N:M products ("load sparse, compute dense":
``csrc/panel_kernels.h``), forced on and off at every SIMD level the CPU has, against a float64
reference; the path each call took is asserted through ``_C._last_path()``.

Tolerances: relative error (max-abs over max-abs of the reference) 1e-5 for float32; 1e-2 for
bfloat16 / float16 inputs (the products sum in float32; the error is the output's rounding to
8 / 11 mantissa bits, 2^-8 = 3.9e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparse_ops as so
from sparse_ops import _C
from tests.csrc import ops as C
from tests.csrc.test_csrc_fuzz import nm_case, nm_valid
from tests.csrc.test_csrc_kernels import nm_dense, rel_err, unpack_positions
from tests.helpers import draw_seed

LEVELS = list(_C._supported_simd_levels())
LAYOUTS = [("bitmap", {}), ("nm", {"n": 2, "m": 4}), ("nm", {"n": 1, "m": 4}),
           ("nm", {"n": 2, "m": 3}), ("nm", {"n": 3, "m": 7}), ("nm", {"n": 5, "m": 16})]
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}


pytestmark = pytest.mark.usefixtures("restore_simd_and_panel")


def _case(layout, kw, shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    p = so.prune(w, "nm", **kw) if layout == "nm" else so.prune(w, "bitmap", density=0.5)
    return so.to_sparse(p.to(dtype), layout, **kw)


def _err(y: torch.Tensor, ref: torch.Tensor) -> float:
    assert torch.isfinite(y).all()
    return ((y.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("layout,kw", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
# odd sizes: K across several 256+-column panels and not a multiple of 64 or m; M across
# several 48-row panels with a partial one; N not a multiple of the micro-tile
@pytest.mark.parametrize("M,K,N", [(1, 1, 2), (53, 97, 17), (101, 700, 45), (7, 513, 130)])
def test_panel_matches_reference_and_the_sparse_path(level, layout, kw, dtype, M, K, N):
    seed = draw_seed()
    _C._set_simd_level(level)
    s = _case(layout, kw, (M, K), dtype, seed)
    x = torch.randn(K, N, generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    ref = s.to_dense().double() @ x.double()
    for mode, suffix in [("on", ".panel"), ("off", ".csr" if layout == "bitmap" else ".slots")]:
        _C._set_panel(mode)
        y = so.matmul(s, x)
        assert _C._last_path() == layout + suffix, (mode, _C._last_path())
        assert y.dtype == dtype and y.shape == (M, N)
        assert _err(y, ref) < TOL[dtype], (seed, mode)


@pytest.mark.parametrize("level", LEVELS)
def test_panel_linear_bias_and_grad_free_path(level):
    # As a model calls it: so.linear (x rows are tokens), with a bias, under no_grad.
    _C._set_simd_level(level)
    _C._set_panel("on")
    seed = draw_seed()
    s = _case("bitmap", {}, (67, 301), torch.float32, seed)
    x = torch.randn(33, 301, generator=torch.Generator().manual_seed(seed))
    b = torch.randn(67)
    with torch.no_grad():
        y = so.linear(x, s, b)
    assert _C._last_path() == "bitmap.panel"
    ref = x.double() @ s.to_dense().double().T + b.double()
    assert _err(y, ref) < 1e-5, seed


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("layout,kw", LAYOUTS[:3])
@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_x_takes_the_sparse_kernels(level, layout, kw, bad):
    # An unstored entry never meets x: with inf / NaN in x, the rows of S that store nothing in
    # that column stay finite (the panel alone would make them 0 * inf = NaN), even forced on.
    _C._set_simd_level(level)
    _C._set_panel("on")
    seed = draw_seed()
    s = _case(layout, kw, (40, 90), torch.float32, seed)
    x = torch.randn(90, 20, generator=torch.Generator().manual_seed(seed))
    x[5, 3] = bad
    y = so.matmul(s, x)
    assert _C._last_path() == layout + (".csr" if layout == "bitmap" else ".slots")
    dense = s.to_dense()
    stores = dense[:, 5] != 0
    assert stores.any() and (~stores).any(), seed
    ref = dense.double() @ torch.where(torch.isfinite(x), x, 0).double()
    other = torch.ones(20, dtype=torch.bool)
    other[3] = False
    assert torch.isfinite(y[~stores]).all(), seed
    assert _err(y[~stores], ref[~stores]) < 1e-5, seed
    assert not torch.isfinite(y[stores][:, 3]).any(), seed
    assert _err(y[stores][:, other], ref[stores][:, other]) < 1e-5, seed
    x[5, 3] = 1.0  # finite again: the panel serves it
    so.matmul(s, x)
    assert _C._last_path() == layout + ".panel"


def test_panel_never_serves_one_column():
    _C._set_panel("on")
    s = _case("bitmap", {}, (9, 130), torch.float32, 0)
    so.matmul(s, torch.randn(130, 1))
    assert _C._last_path() == "bitmap.spmv"


def test_auto_measures_once_and_keeps_its_choice():
    _C._set_panel("auto")  # forgets earlier choices
    s = _case("bitmap", {}, (200, 900), torch.float32, 3)
    x = torch.randn(900, 40)
    ref = s.to_dense().double() @ x.double()
    y = so.matmul(s, x)
    first = _C._last_path()
    assert first in ("bitmap.panel", "bitmap.csr")
    assert _err(y, ref) < 1e-5
    for _ in range(3):
        y = so.matmul(s, x)
        assert _C._last_path() == first
        assert _err(y, ref) < 1e-5
    # below density 0.25 the panel is never tried
    sparse = so.to_sparse(so.prune(torch.randn(200, 900), "bitmap", density=0.1), "bitmap")
    so.matmul(sparse, x)
    assert _C._last_path() == "bitmap.csr"


def test_set_panel_rejects_unknown_modes():
    with pytest.raises(ValueError, match="auto"):
        _C._set_panel("sometimes")


@pytest.mark.parametrize("level", LEVELS)
def test_panel_rejects_a_bad_bitmap_before_reading_through_it(level):
    _C._set_simd_level(level)
    _C._set_panel("on")
    s = _case("bitmap", {}, (60, 200), torch.float32, 5)
    bits = s.bitmap.clone()
    bits[37, 0] ^= 1  # row 37's popcount no longer matches its span of values
    bad = so.BitmapMatrix.from_parts(
        {"row_offsets": s.row_offsets, "bitmap": bits, "values": s.values}, s.shape, s.params(),
        validate=False)
    with pytest.raises(ValueError, match="row_offsets|bitmap"):
        so.matmul(bad, torch.randn(200, 20))


@pytest.mark.parametrize("level", LEVELS)
def test_panel_rejects_bad_nm_metadata(level):
    _C._set_simd_level(level)
    _C._set_panel("on")
    values = np.random.default_rng(0).standard_normal((5, 2 * 4)).astype(np.float32)
    meta = np.zeros((5, 2), np.uint8)  # m = 3: 2-bit positions, 4 groups x 2 slots = 16 bits
    meta[3, 1] = 0b11 << 2  # position 3 >= m
    out = np.full((5, 20), np.nan, np.float32)
    x = np.random.default_rng(1).standard_normal((12, 20)).astype(np.float32)
    with pytest.raises(ValueError, match="metadata"):
        C.nm_spmm(values, meta, x, out, 2, 3, 2)


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(nm_case(), st.sampled_from(LEVELS), st.integers(1, 3))
def test_fuzz_nm_panel(case, level, threads):
    # The fuzz cases of test_csrc_fuzz (malformed metadata, sizes and slot counts), float32,
    # on the panel: a clear error or the reference, never a read or write out of bounds.
    nn, m, rows, k, n, meta, vslots = case
    _C._set_simd_level(level)
    _C._set_panel("on")
    rng = np.random.default_rng(2)
    vals = rng.standard_normal((rows, vslots)).astype(np.float32)
    x = rng.standard_normal((k, n)).astype(np.float32)
    ok = nm_valid(nn, m, rows, k, meta, vslots)
    out = np.full((rows, n), np.nan, np.float32)
    try:
        C.nm_spmm(vals, meta, x, out, nn, m, threads)
    except (ValueError, TypeError):
        assert not ok
    else:
        assert ok
        pos = unpack_positions(meta, vslots, m) if vslots else np.zeros((rows, 0), np.int64)
        want = nm_dense(vals.astype(np.float64), pos, k, nn, m) @ x.astype(np.float64)
        assert rel_err(out, want) < 1e-5
