"""CSR kernels against a float64 dense reference, on odd shapes, under the interpreter or CUDA."""

import pytest
import torch
import triton

from sparse_ops.kernels import csr_sddmm, csr_spmm, csr_spmm_t
from sparse_ops.kernels.csr import _csr_sddmm_kernel, _csr_spmm_kernel
from tests.kernels.random_parts import (
    DEVICE,
    TOLERANCE,
    csr_dense,
    fresh_seed,
    randn,
    random_csr,
    rel_err,
    requires_triton_backend,
)

pytestmark = requires_triton_backend

M, K = 37, 53
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def _case(n_cols, dtype=torch.float32, col_dtype=torch.int16, m=M, k=K, density=0.2):
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    crow, col, values = random_csr(g, m, k, density, dtype, col_dtype)
    return seed, g, (crow, col, values), csr_dense(crow, col, values, k)


@pytest.mark.parametrize("n_cols", [1, 5, 19])
@pytest.mark.parametrize("col_dtype", [torch.int16, torch.int32])
def test_spmm_fp32(n_cols, col_dtype):
    seed, g, parts, dense = _case(n_cols, col_dtype=col_dtype)
    x = randn(g, K, n_cols)
    y = csr_spmm(*parts, x)
    assert y.shape == (M, n_cols) and y.dtype == torch.float32
    assert rel_err(y, dense @ x.double().cpu()) < 1e-5, f"seed {seed}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_products_per_dtype(dtype):
    seed, g, (crow, col, values), dense = _case(19, dtype)
    x = randn(g, K, 19, dtype=dtype)
    d = randn(g, M, 19, dtype=dtype)
    y = csr_spmm(crow, col, values, x)
    z = csr_spmm_t(crow, col, values, d, K)
    v = csr_sddmm(crow, col, d, x)
    assert y.dtype == z.dtype == v.dtype == dtype
    xd, dd = x.double().cpu(), d.double().cpu()
    tol = TOLERANCE[dtype]
    assert rel_err(y, dense @ xd) < tol, f"spmm, seed {seed}"
    assert rel_err(z, dense.T @ dd) < tol, f"spmm_t, seed {seed}"
    rows = torch.repeat_interleave(torch.arange(M), (crow[1:] - crow[:-1]).cpu().long())
    want = (dd[rows] * xd[col.cpu().long()]).sum(1)
    assert rel_err(v, want) < tol, f"sddmm, seed {seed}"


@pytest.mark.parametrize("n_cols", [1, 5])
def test_spmm_t_and_sddmm_narrow(n_cols):
    seed, g, (crow, col, values), dense = _case(n_cols, col_dtype=torch.int32)
    x = randn(g, K, n_cols)
    d = randn(g, M, n_cols)
    assert rel_err(csr_spmm_t(crow, col, values, d, K), dense.T @ d.double().cpu()) < 1e-5
    full = d.double().cpu() @ x.double().cpu().T
    rows = torch.repeat_interleave(torch.arange(M), (crow[1:] - crow[:-1]).cpu().long())
    assert rel_err(csr_sddmm(crow, col, d, x), full[rows, col.cpu().long()]) < 1e-5, seed


def test_outputs_fully_written():
    """Results land in NaN-poisoned ``out`` tensors, strided ones included, with no NaN left."""
    seed, g, (crow, col, values), dense = _case(19)
    x = randn(g, K, 19)
    d = randn(g, M, 19)
    y = torch.full((19, M), float("nan"), device=DEVICE).T  # column-major (M, 19)
    assert csr_spmm(crow, col, values, x, out=y) is y
    assert not y.isnan().any() and rel_err(y, dense @ x.double().cpu()) < 1e-5, seed
    z = torch.full((K, 19), float("nan"), device=DEVICE)
    csr_spmm_t(crow, col, values, d, K, out=z)
    assert not z.isnan().any() and rel_err(z, dense.T @ d.double().cpu()) < 1e-5, seed
    v = torch.full((2 * values.numel(),), float("nan"), device=DEVICE)[::2]
    csr_sddmm(crow, col, d, x, out=v)
    assert not v.isnan().any()


def test_strided_dense_operands():
    """``x`` as a transposed view (what ``linear`` passes) and a sliced ``d``."""
    seed, g, (crow, col, values), dense = _case(7)
    x = randn(g, 7, K).T
    d = randn(g, M, 14)[:, ::2]
    assert rel_err(csr_spmm(crow, col, values, x), dense @ x.double().cpu()) < 1e-5, seed
    assert rel_err(csr_spmm_t(crow, col, values, d, K), dense.T @ d.double().cpu()) < 1e-5, seed


@pytest.mark.parametrize(
    "config",
    [
        {"BLOCK_ROWS": 1, "BLOCK_NNZ": 16, "BLOCK_N": 32},
        {"BLOCK_ROWS": 16, "BLOCK_NNZ": 32, "BLOCK_N": 16},
    ],
)
def test_spmm_other_tilings(monkeypatch, config):
    """Tilings other than the interpreter's default (rows per program, nonzeros per step)."""
    monkeypatch.setattr(_csr_spmm_kernel, "configs", [triton.Config(config)])
    seed, g, parts, dense = _case(19)
    x = randn(g, K, 19)
    assert rel_err(csr_spmm(*parts, x), dense @ x.double().cpu()) < 1e-5, seed


def test_sddmm_other_tiling(monkeypatch):
    monkeypatch.setattr(
        _csr_sddmm_kernel, "configs", [triton.Config({"BLOCK_NNZ": 64, "BLOCK_N": 32})]
    )
    seed, g, (crow, col, values), dense = _case(19)
    x, d = randn(g, K, 19), randn(g, M, 19)
    rows = torch.repeat_interleave(torch.arange(M), (crow[1:] - crow[:-1]).cpu().long())
    want = (d.double().cpu()[rows] * x.double().cpu()[col.cpu().long()]).sum(1)
    assert rel_err(csr_sddmm(crow, col, d, x), want) < 1e-5, seed


def test_empty_cases():
    g = torch.Generator().manual_seed(fresh_seed())
    # M = 0
    crow0 = torch.zeros(1, dtype=torch.int32, device=DEVICE)
    col0 = torch.zeros(0, dtype=torch.int16, device=DEVICE)
    val0 = torch.zeros(0, device=DEVICE)
    assert csr_spmm(crow0, col0, val0, randn(g, K, 3)).shape == (0, 3)
    assert torch.equal(csr_spmm_t(crow0, col0, val0, randn(g, 0, 3), K).cpu(), torch.zeros(K, 3))
    assert csr_sddmm(crow0, col0, randn(g, 0, 3), randn(g, K, 3)).shape == (0,)
    # nnz = 0 with rows: zeros, even in a poisoned out
    crow = torch.zeros(M + 1, dtype=torch.int32, device=DEVICE)
    out = torch.full((M, 3), float("nan"), device=DEVICE)
    assert torch.equal(csr_spmm(crow, col0, val0, randn(g, K, 3), out=out).cpu(), torch.zeros(M, 3))
    assert torch.equal(csr_spmm_t(crow, col0, val0, randn(g, M, 3), K).cpu(), torch.zeros(K, 3))
    # N = 0
    _, g, (c, k, v), _ = _case(0)
    assert csr_spmm(c, k, v, randn(g, K, 0)).shape == (M, 0)
    assert csr_spmm_t(c, k, v, randn(g, M, 0), K).shape == (K, 0)
    got = csr_sddmm(c, k, randn(g, M, 0), randn(g, K, 0))
    assert torch.equal(got.cpu(), torch.zeros(v.numel()))
    # K = 0 (then nnz = 0)
    assert torch.equal(csr_spmm(crow, col0, val0, randn(g, 0, 4)).cpu(), torch.zeros(M, 4))


def test_bad_inputs_raise():
    g = torch.Generator().manual_seed(fresh_seed())
    crow, col, values = random_csr(g, M, K)
    x = randn(g, K, 5)
    with pytest.raises(TypeError, match="crow"):
        csr_spmm(crow.long(), col, values, x)
    with pytest.raises(TypeError, match="col"):
        csr_spmm(crow, col.long(), values, x)
    with pytest.raises(TypeError, match="x"):
        csr_spmm(crow, col, values, x.double())
    with pytest.raises(TypeError, match="values"):
        csr_spmm(crow, col, values.long(), x)
    with pytest.raises(ValueError, match="values"):
        csr_spmm(crow, col, values[:-1], x)
    with pytest.raises(ValueError, match="x"):
        csr_spmm(crow, col, values, x[0])
    with pytest.raises(ValueError, match="crow"):
        csr_spmm(crow[:0], col, values, x)
    with pytest.raises(ValueError, match="out"):
        csr_spmm(crow, col, values, x, out=torch.empty(M, 4, device=DEVICE))
    with pytest.raises(TypeError, match="out"):
        csr_spmm(crow, col, values, x, out=torch.empty(M, 5, dtype=torch.float64, device=DEVICE))
    with pytest.raises(ValueError, match="d"):
        csr_spmm_t(crow, col, values, randn(g, M + 1, 5), K)
    with pytest.raises(ValueError, match="num_cols"):
        csr_spmm_t(crow, col, values, randn(g, M, 5), -1)
    with pytest.raises(ValueError, match="b"):
        csr_sddmm(crow, col, randn(g, M, 5), randn(g, K, 4))
    with pytest.raises(ValueError, match="a"):
        csr_sddmm(crow, col, randn(g, M - 1, 5), randn(g, K, 5))
    with pytest.raises(ValueError, match="meta"):
        csr_spmm(crow, col, values, torch.empty(K, 5, device="meta"))
