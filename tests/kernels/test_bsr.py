"""BSR kernels against a float64 dense reference, on odd shapes, under the interpreter or CUDA."""

import pytest
import torch
import triton

from sparse_ops.kernels import bsr_sddmm, bsr_spmm, bsr_spmm_t
from sparse_ops.kernels.bsr import _bsr_sddmm_kernel, _bsr_spmm_kernel
from tests.kernels.random_parts import (
    DEVICE,
    TOLERANCE,
    bsr_dense,
    fresh_seed,
    randn,
    random_bsr,
    rel_err,
    requires_triton_backend,
)

pytestmark = requires_triton_backend

# (block rows MB, block cols KB, R, C): 3x5 blocks take the broadcast-sum path, 16x32 and
# 32x16 the tl.dot path, 16x4 a mixed one (one side under 16).
SHAPES = [(7, 9, 3, 5), (3, 2, 16, 32), (2, 3, 32, 16), (3, 4, 16, 4)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def _case(mb, kb, r, c, dtype=torch.float32, density=0.4):
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    parts = random_bsr(g, mb, kb, r, c, density, dtype)
    return seed, g, parts, bsr_dense(*parts, kb)


def _sddmm_want(crow, col, d, x, r, c):
    full = d.double().cpu() @ x.double().cpu().T
    crow, col = crow.cpu(), col.cpu()
    blocks = [
        full[i * r : (i + 1) * r, int(col[p]) * c : (int(col[p]) + 1) * c]
        for i in range(len(crow) - 1)
        for p in range(int(crow[i]), int(crow[i + 1]))
    ]
    return torch.stack(blocks) if blocks else torch.zeros(0, r, c, dtype=torch.float64)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "{}x{}-blocks{}x{}".format(*s))
@pytest.mark.parametrize("n_cols", [1, 5, 19])
def test_products_fp32(shape, n_cols):
    mb, kb, r, c = shape
    seed, g, (crow, col, values), dense = _case(*shape)
    x = randn(g, kb * c, n_cols)
    d = randn(g, mb * r, n_cols)
    y = bsr_spmm(crow, col, values, x)
    assert y.shape == (mb * r, n_cols) and y.dtype == torch.float32
    assert rel_err(y, dense @ x.double().cpu()) < 1e-5, f"spmm, seed {seed}"
    z = bsr_spmm_t(crow, col, values, d, kb * c)
    assert rel_err(z, dense.T @ d.double().cpu()) < 1e-5, f"spmm_t, seed {seed}"
    v = bsr_sddmm(crow, col, d, x, r, c)
    assert v.shape == values.shape
    assert rel_err(v, _sddmm_want(crow, col, d, x, r, c)) < 1e-5, f"sddmm, seed {seed}"


@pytest.mark.parametrize("dtype", DTYPES[1:])
@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[1]], ids=["blocks3x5", "blocks16x32"])
def test_products_low_and_double_precision(shape, dtype):
    mb, kb, r, c = shape
    seed, g, (crow, col, values), dense = _case(*shape, dtype=dtype)
    x = randn(g, kb * c, 19, dtype=dtype)
    d = randn(g, mb * r, 19, dtype=dtype)
    tol = TOLERANCE[dtype]
    y = bsr_spmm(crow, col, values, x)
    z = bsr_spmm_t(crow, col, values, d, kb * c)
    v = bsr_sddmm(crow, col, d, x, r, c)
    assert y.dtype == z.dtype == v.dtype == dtype
    assert rel_err(y, dense @ x.double().cpu()) < tol, f"spmm, seed {seed}"
    assert rel_err(z, dense.T @ d.double().cpu()) < tol, f"spmm_t, seed {seed}"
    assert rel_err(v, _sddmm_want(crow, col, d, x, r, c)) < tol, f"sddmm, seed {seed}"


def test_outputs_fully_written():
    mb, kb, r, c = SHAPES[0]
    seed, g, (crow, col, values), dense = _case(mb, kb, r, c)
    x, d = randn(g, kb * c, 19), randn(g, mb * r, 19)
    nan = float("nan")
    y = torch.full((19, mb * r), nan, device=DEVICE).T
    assert bsr_spmm(crow, col, values, x, out=y) is y
    assert not y.isnan().any() and rel_err(y, dense @ x.double().cpu()) < 1e-5, seed
    z = torch.full((kb * c, 19), nan, device=DEVICE)
    bsr_spmm_t(crow, col, values, d, kb * c, out=z)
    assert not z.isnan().any() and rel_err(z, dense.T @ d.double().cpu()) < 1e-5, seed
    v = torch.full((values.shape[0], c, r), nan, device=DEVICE).transpose(1, 2)
    bsr_sddmm(crow, col, d, x, r, c, out=v)
    assert not v.isnan().any()
    assert rel_err(v, _sddmm_want(crow, col, d, x, r, c)) < 1e-5, seed


def test_strided_operands():
    """Non-contiguous ``values`` (transposed blocks), ``x`` and ``d``."""
    mb, kb, r, c = 4, 3, 5, 5
    seed, g, (crow, col, values), _ = _case(mb, kb, r, c)
    values = values.transpose(1, 2)
    dense = bsr_dense(crow, col, values, kb)
    x = randn(g, 7, kb * c).T
    d = randn(g, mb * r, 14)[:, ::2]
    assert rel_err(bsr_spmm(crow, col, values, x), dense @ x.double().cpu()) < 1e-5, seed
    got = bsr_spmm_t(crow, col, values, d, kb * c)
    assert rel_err(got, dense.T @ d.double().cpu()) < 1e-5, seed


@pytest.mark.parametrize("swap", [False, True], ids=["direct", "swapped"])
@pytest.mark.parametrize("block_n", [32, 64])
@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[2]], ids=["blocks3x5", "blocks32x16"])
def test_other_tilings(monkeypatch, shape, block_n, swap):
    """Wider column tiles, and the swapped product ``Y^T = X^T S^T`` the autotuner may pick."""
    monkeypatch.setattr(
        _bsr_spmm_kernel, "configs", [triton.Config({"BLOCK_N": block_n, "SWAP": swap})]
    )
    monkeypatch.setattr(_bsr_sddmm_kernel, "configs", [triton.Config({"BLOCK_N": block_n})])
    mb, kb, r, c = shape
    seed, g, (crow, col, values), dense = _case(mb, kb, r, c)
    x, d = randn(g, kb * c, 19), randn(g, mb * r, 70)
    assert rel_err(bsr_spmm(crow, col, values, x), dense @ x.double().cpu()) < 1e-5, seed
    got = bsr_spmm_t(crow, col, values, d, kb * c)
    assert rel_err(got, dense.T @ d.double().cpu()) < 1e-5, seed
    x2 = randn(g, kb * c, 70)
    got = bsr_sddmm(crow, col, d, x2, r, c)
    assert rel_err(got, _sddmm_want(crow, col, d, x2, r, c)) < 1e-5, seed


def test_empty_cases():
    g = torch.Generator().manual_seed(fresh_seed())
    r, c = 3, 5
    crow0 = torch.zeros(1, dtype=torch.int32, device=DEVICE)
    col0 = torch.zeros(0, dtype=torch.int32, device=DEVICE)
    val0 = torch.zeros(0, r, c, device=DEVICE)
    assert bsr_spmm(crow0, col0, val0, randn(g, 10, 3)).shape == (0, 3)
    assert torch.equal(bsr_spmm_t(crow0, col0, val0, randn(g, 0, 3), 10).cpu(), torch.zeros(10, 3))
    assert bsr_sddmm(crow0, col0, randn(g, 0, 3), randn(g, 10, 3), r, c).shape == (0, r, c)
    crow = torch.zeros(5, dtype=torch.int32, device=DEVICE)  # 4 block rows, no blocks
    out = torch.full((4 * r, 3), float("nan"), device=DEVICE)
    got = bsr_spmm(crow, col0, val0, randn(g, 10, 3), out=out)
    assert torch.equal(got.cpu(), torch.zeros(4 * r, 3))
    got = bsr_spmm_t(crow, col0, val0, randn(g, 4 * r, 3), 10)
    assert torch.equal(got.cpu(), torch.zeros(10, 3))
    seed, g, (cr, co, v), _ = _case(4, 3, r, c)
    assert bsr_spmm(cr, co, v, randn(g, 3 * c, 0)).shape == (4 * r, 0)
    assert bsr_spmm_t(cr, co, v, randn(g, 4 * r, 0), 3 * c).shape == (3 * c, 0)
    got = bsr_sddmm(cr, co, randn(g, 4 * r, 0), randn(g, 3 * c, 0), r, c)
    assert torch.equal(got.cpu(), torch.zeros_like(v.cpu())), seed


def test_bad_inputs_raise():
    seed, g, (crow, col, values), _ = _case(4, 3, 3, 5)
    x = randn(g, 15, 5)
    with pytest.raises(TypeError, match="crow"):
        bsr_spmm(crow.long(), col, values, x)
    with pytest.raises(TypeError, match="col"):
        bsr_spmm(crow, col.double(), values, x)
    with pytest.raises(ValueError, match="values"):
        bsr_spmm(crow, col, values[:, 0], x)
    with pytest.raises(ValueError, match="values"):
        bsr_spmm(crow, col, torch.zeros(values.shape[0] + 1, 3, 5, device=DEVICE), x)
    with pytest.raises(ValueError, match="block width"):
        bsr_spmm(crow, col, values, randn(g, 14, 5))
    with pytest.raises(TypeError, match="x"):
        bsr_spmm(crow, col, values, x.half())
    with pytest.raises(ValueError, match="d"):
        bsr_spmm_t(crow, col, values, randn(g, 11, 5), 15)
    with pytest.raises(ValueError, match="num_cols"):
        bsr_spmm_t(crow, col, values, randn(g, 12, 5), 14)
    with pytest.raises(ValueError, match="a"):
        bsr_sddmm(crow, col, randn(g, 11, 5), x, 3, 5)
    with pytest.raises(ValueError, match="R and C"):
        bsr_sddmm(crow, col, randn(g, 12, 5), x, 0, 5)
    with pytest.raises(TypeError, match="R"):
        bsr_sddmm(crow, col, randn(g, 12, 5), x, 3.0, 5)
