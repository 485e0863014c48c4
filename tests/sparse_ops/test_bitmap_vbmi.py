"""The AVX-512 VBMI2 bitmap SpMV (csrc/spmv_vbmi_kernels.h: int8 and bfloat16 values, N = 1)
against float64 and against the same calls with it switched off: rows of every tail length,
rows near the end of the values (its careful words), x at and past its range guard, bad rows.
Skipped where the CPU lacks AVX-512 VBMI / VBMI2."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops import _C
from tests.helpers import draw_seed, random_sparse, rel_err

pytestmark = [
    pytest.mark.skipif("avx512" not in _C._supported_simd_levels() or not _C._bitmap_vbmi(),
                       reason="needs AVX-512 with VBMI and VBMI2"),
    pytest.mark.usefixtures("restore_simd_and_panel"),
]


def _matrix(k: int, density: float, values: str, seed: int) -> so.SparseMatrix:
    s = random_sparse("bitmap", (29, k), {}, density=density, seed=seed)[0]
    return so.quantize(s) if values == "int8" else s.to(torch.bfloat16)


@pytest.mark.parametrize("values", ["int8", "bfloat16"])
@pytest.mark.parametrize("k", [8, 63, 64, 65, 136, 701, 1030])
def test_vbmi_spmv_matches_float64_and_the_other_path(k, values):
    _C._set_simd_level("avx512")
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    for density in (0.1, 0.5, 0.9, 1.0):
        s = _matrix(k, density, values, seed)
        ref_w = s.to_dense().double()
        for scale, dtype in [(1.0, torch.float32), (1.0, torch.bfloat16), (1e-30, torch.float32),
                             (2.0**60, torch.float32), (2.0**70, torch.float32)]:
            if values == "bfloat16":  # bf16 weights take bf16 activations
                dtype = torch.bfloat16
            x = (torch.randn(1, k, generator=g) * scale).to(dtype)
            want = x.double() @ ref_w.T
            tol = 1e-5 if values == "int8" and dtype == torch.float32 else 1e-2
            _C._set_bitmap_vbmi(True)
            y = so.linear(x, s)
            _C._set_bitmap_vbmi(False)
            y_off = so.linear(x, s)
            assert torch.isfinite(y).all(), (k, density, scale, seed)
            assert rel_err(y, want) < tol, (k, density, scale, seed)
            # the same sums in float32, another order: equal to float32 rounding
            assert rel_err(y.double(), y_off.double()) < (1e-5 if dtype == torch.float32
                                                          else 1e-2), (k, density, seed)


@pytest.mark.parametrize("values", ["int8", "bfloat16"])
def test_vbmi_spmv_reports_bad_rows(values):
    """A row whose bitmap holds one bit more or less than its span (checked per weight, then
    by the kernel itself on the raw op) is a ValueError, never a read past the values."""
    _C._set_simd_level("avx512")
    _C._set_bitmap_vbmi(True)
    seed = draw_seed()
    s = _matrix(701, 0.5, values, seed)
    x = torch.randn(701, 1).to(torch.float32 if values == "int8" else torch.bfloat16)
    for row in (0, 14, 28):  # the last rows take the careful words
        bad = s.bitmap.clone()
        bad[row, 3] ^= 1
        with pytest.raises(ValueError, match="bitmap"):
            torch.ops.sparse_ops.bitmap_spmm(s.row_offsets, bad, s.values, x, s.nnz)
