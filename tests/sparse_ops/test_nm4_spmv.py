"""The 2:4 and 1:4 SpMV (N = 1) with int8 and bfloat16 values at every SIMD level, with the
AVX2 kernels that gather x by in-lane permutes (``_C._set_nm4_perm(True)``, the default) and
the kernels they replaced (False): K of every remainder (whole blocks of 4 chunks, single
chunks, a tail of slots), 2:4 rows that repeat a position in a group (each slot reads its own
column: the reference sums both), per-row and group scales, against float64."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops import _C
from tests.helpers import dense_of_slots, draw_seed, random_sparse, rel_err, repeat_nm24_positions

pytestmark = pytest.mark.usefixtures("restore_simd_and_panel")
LEVELS = list(_C._supported_simd_levels())
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


@pytest.mark.parametrize("perm", [True, False])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("k", [16, 33, 70, 203, 1000, 4099])
@pytest.mark.parametrize("n", [1, 2])
def test_nm4_spmv(level, k, n, perm):
    _C._set_simd_level(level)
    _C._set_nm4_perm(perm)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    for dtype in (torch.bfloat16, torch.float32):
        s, dense = random_sparse("nm", (37, k), {"n": n, "m": 4}, dtype=dtype, seed=seed)
        x = torch.randn(1, k, generator=g).to(dtype)
        assert rel_err(so.linear(x, s), x.double() @ dense.T) < TOL[dtype], (dtype, seed)
        for gs in (None, 32, 128):  # int8 values, per row and in groups
            qg = so.quantize(s, group_size=gs)
            yq = so.linear(x, qg)
            assert rel_err(yq, x.double() @ qg.to_dense().double().T) < TOL[dtype], (gs, seed)
        if n == 1:
            continue
        r, cols = repeat_nm24_positions(s, g, torch.arange(0, 37, 4))
        w = dense_of_slots(cols, r.values, s.shape)
        assert rel_err(so.linear(x, r), x.double() @ w.T) < TOL[dtype], (dtype, seed)
        rq = so.quantize(r)  # int8 with the repeated positions, one scale a row
        wq = dense_of_slots(cols, rq.values.double() * rq.scales.double(), s.shape)
        assert rel_err(so.linear(x, rq), x.double() @ wq.T) < TOL[dtype], (dtype, seed)
