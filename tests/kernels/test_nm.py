"""N:M kernels against a float64 dense reference, on odd shapes, under the interpreter or CUDA."""

import pytest
import torch
import triton

from sparse_ops.kernels import nm_sddmm, nm_spmm, nm_spmm_t
from sparse_ops.kernels.nm import _nm_sddmm_kernel, _nm_spmm_kernel, _nm_spmm_t_kernel
from tests.kernels.random_parts import (
    DEVICE,
    TOLERANCE,
    fresh_seed,
    nm_columns,
    nm_dense,
    randn,
    random_nm,
    rel_err,
    requires_triton_backend,
)

pytestmark = requires_triton_backend

M, K = 37, 53  # K is not a multiple of any m below: the last group is partial
# 1 bit (m = 2), 2 bits (m = 3, 4), 4 bits (m = 7, 16); m = 3 and 7 are padded to 4 and 8.
PATTERNS = [(2, 4), (1, 2), (1, 3), (3, 7), (5, 16)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def _case(n, m, dtype=torch.float32, rows=M, k=K):
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    values, meta = random_nm(g, rows, k, n, m, dtype)
    return seed, g, values, meta, nm_dense(values, meta, n, m, k)


def _sddmm_want(meta, d, x, n, m):
    full = d.double().cpu() @ x.double().cpu().T
    groups = -(-x.shape[0] // m)
    return full.gather(1, nm_columns(meta, n, m, groups))


@pytest.mark.parametrize("nm", PATTERNS, ids=lambda p: f"{p[0]}:{p[1]}")
@pytest.mark.parametrize("n_cols", [1, 5, 19])
def test_products_fp32(nm, n_cols):
    n, m = nm
    seed, g, values, meta, dense = _case(n, m)
    x = randn(g, K, n_cols)
    d = randn(g, M, n_cols)
    y = nm_spmm(meta, values, x, n, m)
    assert y.shape == (M, n_cols) and y.dtype == torch.float32
    assert rel_err(y, dense @ x.double().cpu()) < 1e-5, f"spmm, seed {seed}"
    z = nm_spmm_t(meta, values, d, K, n, m)
    assert z.shape == (K, n_cols)
    assert rel_err(z, dense.T @ d.double().cpu()) < 1e-5, f"spmm_t, seed {seed}"
    v = nm_sddmm(meta, d, x, n, m)
    assert v.shape == values.shape
    assert rel_err(v, _sddmm_want(meta, d, x, n, m)) < 1e-5, f"sddmm, seed {seed}"


@pytest.mark.parametrize("dtype", DTYPES[1:])
@pytest.mark.parametrize("nm", [(2, 4), (3, 7)], ids=["2:4", "3:7"])
def test_products_low_and_double_precision(nm, dtype):
    n, m = nm
    seed, g, values, meta, dense = _case(n, m, dtype)
    x = randn(g, K, 19, dtype=dtype)
    d = randn(g, M, 19, dtype=dtype)
    tol = TOLERANCE[dtype]
    y = nm_spmm(meta, values, x, n, m)
    z = nm_spmm_t(meta, values, d, K, n, m)
    v = nm_sddmm(meta, d, x, n, m)
    assert y.dtype == z.dtype == v.dtype == dtype
    assert rel_err(y, dense @ x.double().cpu()) < tol, f"spmm, seed {seed}"
    assert rel_err(z, dense.T @ d.double().cpu()) < tol, f"spmm_t, seed {seed}"
    assert rel_err(v, _sddmm_want(meta, d, x, n, m)) < tol, f"sddmm, seed {seed}"


def test_outputs_fully_written():
    n, m = 2, 4
    seed, g, values, meta, dense = _case(n, m)
    x, d = randn(g, K, 19), randn(g, M, 19)
    nan = float("nan")
    y = torch.full((19, M), nan, device=DEVICE).T
    assert nm_spmm(meta, values, x, n, m, out=y) is y
    assert not y.isnan().any() and rel_err(y, dense @ x.double().cpu()) < 1e-5, seed
    z = torch.full((19, K), nan, device=DEVICE).T
    nm_spmm_t(meta, values, d, K, n, m, out=z)
    assert not z.isnan().any() and rel_err(z, dense.T @ d.double().cpu()) < 1e-5, seed
    v = torch.full(values.shape[::-1], nan, device=DEVICE).T
    nm_sddmm(meta, d, x, n, m, out=v)
    assert not v.isnan().any() and rel_err(v, _sddmm_want(meta, d, x, n, m)) < 1e-5, seed


def test_strided_operands():
    n, m = 3, 7
    seed, g, values, meta, _ = _case(n, m)
    values = torch.stack([values, values], dim=2)[:, :, 0]  # row stride 2 * G * n, col stride 2
    dense = nm_dense(values, meta, n, m, K)
    x = randn(g, 6, K).T
    d = randn(g, M, 12)[:, ::2]
    assert rel_err(nm_spmm(meta, values, x, n, m), dense @ x.double().cpu()) < 1e-5, seed
    got = nm_spmm_t(meta, values, d, K, n, m)
    assert rel_err(got, dense.T @ d.double().cpu()) < 1e-5, seed


@pytest.mark.parametrize(
    "config",
    [
        {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 64},
        {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16},
    ],
)
def test_other_tilings(monkeypatch, config):
    cfg = [triton.Config(config)]
    for kernel in (_nm_spmm_kernel, _nm_spmm_t_kernel, _nm_sddmm_kernel):
        monkeypatch.setattr(kernel, "configs", cfg)
    n, m = 2, 4
    seed, g, values, meta, dense = _case(n, m, rows=45, k=77)
    x, d = randn(g, 77, 40), randn(g, 45, 40)
    assert rel_err(nm_spmm(meta, values, x, n, m), dense @ x.double().cpu()) < 1e-5, seed
    got = nm_spmm_t(meta, values, d, 77, n, m)
    assert rel_err(got, dense.T @ d.double().cpu()) < 1e-5, seed
    got = nm_sddmm(meta, d, x, n, m)
    assert rel_err(got, _sddmm_want(meta, d, x, n, m)) < 1e-5, seed


def test_empty_cases():
    n, m = 2, 4
    g = torch.Generator().manual_seed(fresh_seed())
    # M = 0
    v0 = torch.zeros(0, 14 * n, device=DEVICE)
    meta0 = torch.zeros(0, 7, dtype=torch.uint8, device=DEVICE)
    assert nm_spmm(meta0, v0, randn(g, K, 3), n, m).shape == (0, 3)
    assert torch.equal(nm_spmm_t(meta0, v0, randn(g, 0, 3), K, n, m).cpu(), torch.zeros(K, 3))
    assert nm_sddmm(meta0, randn(g, 0, 3), randn(g, K, 3), n, m).shape == (0, 14 * n)
    # K = 0: no groups
    v1 = torch.zeros(M, 0, device=DEVICE)
    meta1 = torch.zeros(M, 0, dtype=torch.uint8, device=DEVICE)
    out = torch.full((M, 3), float("nan"), device=DEVICE)
    assert torch.equal(nm_spmm(meta1, v1, randn(g, 0, 3), n, m, out=out).cpu(), torch.zeros(M, 3))
    assert nm_spmm_t(meta1, v1, randn(g, M, 3), 0, n, m).shape == (0, 3)
    assert nm_sddmm(meta1, randn(g, M, 3), randn(g, 0, 3), n, m).shape == (M, 0)
    # N = 0
    seed, g, values, meta, _ = _case(n, m)
    assert nm_spmm(meta, values, randn(g, K, 0), n, m).shape == (M, 0)
    assert nm_spmm_t(meta, values, randn(g, M, 0), K, n, m).shape == (K, 0)
    got = nm_sddmm(meta, randn(g, M, 0), randn(g, K, 0), n, m)
    assert torch.equal(got.cpu(), torch.zeros(values.shape)), seed


def test_bad_inputs_raise():
    n, m = 2, 4
    seed, g, values, meta, _ = _case(n, m)
    x = randn(g, K, 5)
    with pytest.raises(ValueError, match="n:m"):
        nm_spmm(meta, values, x, 4, 4)
    with pytest.raises(ValueError, match="n:m"):
        nm_spmm(meta, values, x, 2, 17)
    with pytest.raises(TypeError, match="m must be an int"):
        nm_spmm(meta, values, x, 2, 4.0)
    with pytest.raises(TypeError, match="metadata"):
        nm_spmm(meta.to(torch.int32), values, x, n, m)
    with pytest.raises(ValueError, match="metadata"):
        nm_spmm(meta[:, :-1], values, x, n, m)
    with pytest.raises(ValueError, match="values"):
        nm_spmm(meta, values[:, :-1], x, n, m)
    with pytest.raises(ValueError, match="metadata"):
        nm_spmm(meta, values, randn(g, K + 8, 5), n, m)  # K implies more groups
    with pytest.raises(TypeError, match="x"):
        nm_spmm(meta, values, x.to(torch.bfloat16), n, m)
    with pytest.raises(ValueError, match="d"):
        nm_spmm_t(meta, values, randn(g, M + 1, 5), K, n, m)
    with pytest.raises(ValueError, match="num_cols"):
        nm_spmm_t(meta, values, randn(g, M, 5), -1, n, m)
    with pytest.raises(ValueError, match="b"):
        nm_sddmm(meta, randn(g, M, 5), randn(g, K, 6), n, m)
    with pytest.raises(ValueError, match="metadata"):
        nm_sddmm(meta, randn(g, M - 1, 5), x, n, m)
