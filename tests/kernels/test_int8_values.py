"""W8A16: the spmm launchers of the four layouts with int8 ``values`` and an fp32, bf16 or fp16
``x``, against a float64 reference of the dense integer matrix times ``x``; and the TypeErrors
of the pairs they refuse (int8 with an fp64 or int8 ``x``, int8 anywhere but ``S @ x``).

No scales: the kernels multiply the integers as they are, and the output has ``x``'s dtype.

Tolerances: int8 is exact in every x dtype and sums run in fp32, so the only error of note is
the output's one rounding to ``x``'s dtype: at most 2^-9 (bf16) or 2^-11 (fp16) of an entry,
so of the largest entry. fp32: norm-wise relative error < 1e-5, as the other kernel tests;
bf16: max |error| <= 1e-2 * max |reference|; fp16: <= 2e-3 * max |reference|.
"""

import pytest
import torch
import triton

from sparse_ops.kernels import (
    bitmap_sddmm,
    bitmap_spmm,
    bitmap_spmm_t,
    bsr_sddmm,
    bsr_spmm,
    bsr_spmm_t,
    csr_sddmm,
    csr_spmm,
    csr_spmm_t,
    nm_sddmm,
    nm_spmm,
    nm_spmm_t,
)
from sparse_ops.kernels.bsr import _bsr_spmm_kernel
from tests.kernels.random_parts import (
    DEVICE,
    bitmap_dense,
    bsr_dense,
    csr_dense,
    fresh_seed,
    nm_dense,
    randn,
    random_bitmap,
    random_bsr,
    random_csr,
    random_nm,
    rel_err,
    requires_triton_backend,
)

pytestmark = requires_triton_backend

M, K = 37, 70  # odd M; K = 70 is no multiple of 8 (bitmap bytes) or 4 (N:M groups)
X_DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MAX_REL = {torch.bfloat16: 1e-2, torch.float16: 2e-3}
# BSR: 10 x 9 blocks of 4 x 8 (broadcast-sum path) -> (40, 72); 3 x 4 blocks of 16 x 16
# (tl.dot path) -> (48, 64). K must be a multiple of the block width.
LAYOUTS = ["csr", "bitmap", "bsr4x8", "bsr16x16", "nm2:4", "nm1:4"]


def _to_int8(g: torch.Generator, values: torch.Tensor) -> torch.Tensor:
    """int8 values in [-127, 127] where ``values`` is nonzero (N:M's unused slots stay 0),
    never 0 there, with -127 and 127 both present."""
    stored = values.cpu() != 0
    q = torch.randint(-127, 128, values.shape, generator=g, dtype=torch.int16)
    q[q == 0] = 1
    q = torch.where(stored, q, 0).to(torch.int8)
    flat = q.view(-1)
    where = torch.nonzero(stored.view(-1)).flatten()
    assert len(where) >= 2, "the random matrix has fewer than two stored entries"
    flat[where[0]], flat[where[-1]] = -127, 127
    return q.to(DEVICE)


def _case(layout: str):
    """``(seed, g, spmm, k, dense)``: ``spmm(x, out=None)`` runs the layout's launcher on
    int8 values; ``dense`` is the float64 ``(rows, k)`` integer matrix."""
    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    if layout == "csr":
        crow, col, values = random_csr(g, M, K)
        values = _to_int8(g, values)
        dense = csr_dense(crow, col, values, K)
        return seed, g, lambda x, **kw: csr_spmm(crow, col, values, x, **kw), K, dense
    if layout == "bitmap":
        row_offsets, bitmap, values = random_bitmap(g, M, K)
        values = _to_int8(g, values)
        dense = bitmap_dense(row_offsets, bitmap, values, K)
        return seed, g, lambda x, **kw: bitmap_spmm(row_offsets, bitmap, values, x, **kw), K, dense
    if layout.startswith("bsr"):
        mb, kb, r, c = (10, 9, 4, 8) if layout == "bsr4x8" else (3, 4, 16, 16)
        crow, col, values = random_bsr(g, mb, kb, r, c)
        while values.shape[0] < 2:  # the 3 x 4 grid of 16 x 16 blocks can draw none (1.7 %)
            crow, col, values = random_bsr(g, mb, kb, r, c)
        values = _to_int8(g, values)
        dense = bsr_dense(crow, col, values, kb)
        return seed, g, lambda x, **kw: bsr_spmm(crow, col, values, x, **kw), kb * c, dense
    n, m = (2, 4) if layout == "nm2:4" else (1, 4)
    values, metadata = random_nm(g, M, K, n, m)
    values = _to_int8(g, values)
    dense = nm_dense(values, metadata, n, m, K)
    return seed, g, lambda x, **kw: nm_spmm(metadata, values, x, n, m, **kw), K, dense


def _check(y: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    assert y.dtype == dtype and tuple(y.shape) == tuple(want.shape), what
    assert not y.isnan().any(), f"{what}: NaN left in the output"
    if dtype == torch.float32:
        assert rel_err(y, want) < 1e-5, what
    else:
        err = (y.double().cpu() - want).abs().max().item()
        assert err <= MAX_REL[dtype] * want.abs().max().item(), f"{what}: max error {err}"


@pytest.mark.parametrize("dtype", X_DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_int8_spmm(layout, dtype):
    seed, g, spmm, k, dense = _case(layout)
    assert dense.abs().max() == 127, f"seed {seed}"
    rows = dense.shape[0]
    for n_cols in (1, 5, 19):
        x = randn(g, k, n_cols, dtype=dtype)
        want = dense @ x.double().cpu()
        what = f"{layout}, x {dtype}, N = {n_cols}, seed {seed}"
        _check(spmm(x), want, dtype, what)
        # into a NaN-poisoned out (column-major for the widest x)
        out = torch.full((n_cols, rows), float("nan"), dtype=dtype, device=DEVICE).T
        assert spmm(x, out=out) is out, what
        _check(out, want, dtype, what + ", out=")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_int8_bsr_swapped_product(monkeypatch, dtype):
    """The swapped (``Y^T = X^T S^T``) BSR tiling, with int8 blocks as the second operand."""
    monkeypatch.setattr(_bsr_spmm_kernel, "configs", [triton.Config({"BLOCK_N": 32, "SWAP": True})])
    seed, g, spmm, k, dense = _case("bsr16x16")
    x = randn(g, k, 19, dtype=dtype).T.contiguous().T  # a column-major x too
    _check(spmm(x), dense @ x.double().cpu(), dtype, f"bsr swapped, x {dtype}, seed {seed}")


def _parts(layout: str):
    """Small int8 parts and the six products' calls with them, per layout."""
    g = torch.Generator().manual_seed(fresh_seed())
    if layout == "csr":
        crow, col, values = random_csr(g, M, K)
        q = _to_int8(g, values)
        return {
            "spmm": lambda x: csr_spmm(crow, col, q, x),
            "spmm_t": lambda d: csr_spmm_t(crow, col, q, d, K),
            "sddmm": lambda a, b: csr_sddmm(crow, col, a, b),
        }
    if layout == "bitmap":
        row_offsets, bitmap, values = random_bitmap(g, M, K)
        q = _to_int8(g, values)
        return {
            "spmm": lambda x: bitmap_spmm(row_offsets, bitmap, q, x),
            "spmm_t": lambda d: bitmap_spmm_t(row_offsets, bitmap, q, d, K),
            "sddmm": lambda a, b: bitmap_sddmm(row_offsets, bitmap, a, b),
        }
    if layout == "bsr":
        crow, col, values = random_bsr(g, 10, 9, 4, 8)  # (40, 72)
        q = _to_int8(g, values)
        return {
            "spmm": lambda x: bsr_spmm(crow, col, q, x),
            "spmm_t": lambda d: bsr_spmm_t(crow, col, q, d, 72),
            "sddmm": lambda a, b: bsr_sddmm(crow, col, a, b, 4, 8),
        }
    values, metadata = random_nm(g, M, K, 2, 4)
    q = _to_int8(g, values)
    return {
        "spmm": lambda x: nm_spmm(metadata, q, x, 2, 4),
        "spmm_t": lambda d: nm_spmm_t(metadata, q, d, K, 2, 4),
        "sddmm": lambda a, b: nm_sddmm(metadata, a, b, 2, 4),
    }


@pytest.mark.parametrize("layout", ["csr", "bitmap", "bsr", "nm"])
def test_int8_refused_pairs(layout):
    """int8 values with an fp64 or int8 x, and int8 in S^T @ d or the SDDMM, are TypeErrors
    that name the argument (checked before any launch)."""
    ops = _parts(layout)
    k = 72 if layout == "bsr" else K
    rows = 40 if layout == "bsr" else M
    x = torch.zeros(k, 5, device=DEVICE)
    with pytest.raises(TypeError, match=r"^x must have dtype float32 or bfloat16 or float16 "
                                        r"with int8 values .*float64"):
        ops["spmm"](x.double())
    with pytest.raises(TypeError, match=r"^x must have dtype .*int8.*inference only"):
        ops["spmm"](x.to(torch.int8))
    inference_only = r"int8.*int8 values are inference only \(S @ x\)"
    with pytest.raises(TypeError, match=r"^values must have dtype .*" + inference_only):
        ops["spmm_t"](torch.zeros(rows, 5, device=DEVICE))
    with pytest.raises(TypeError, match=r"^a must have dtype .*int8.*inference only"):
        ops["sddmm"](torch.zeros(rows, 5, dtype=torch.int8, device=DEVICE), x.to(torch.int8))
    with pytest.raises(TypeError, match=r"^b must have dtype .*int8.*inference only"):
        ops["sddmm"](torch.zeros(rows, 5, device=DEVICE), x.to(torch.int8))


def test_int8_out_and_other_integer_values_refused():
    g = torch.Generator().manual_seed(fresh_seed())
    crow, col, values = random_csr(g, M, K)
    q = _to_int8(g, values)
    x = randn(g, K, 5, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="^out must have dtype torch.bfloat16"):
        csr_spmm(crow, col, q, x, out=torch.empty(M, 5, dtype=torch.int8, device=DEVICE))
    with pytest.raises(TypeError, match="^values must have dtype"):
        csr_spmm(crow, col, q.to(torch.int16), x)
    with pytest.raises(TypeError, match="^values must have dtype"):
        csr_spmm(crow, col, q.to(torch.uint8), x)


@pytest.mark.parametrize("layout", ["csr", "bitmap", "bsr", "nm"])
def test_int8_custom_ops(layout):
    """``torch.ops.sparse_ops.<layout>_spmm_triton`` take int8 values with a float x; the fake
    kernel gives x's dtype and the result's shape."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    import sparse_ops.ops_triton  # noqa: F401  (registers the ops)

    seed = fresh_seed()
    g = torch.Generator().manual_seed(seed)
    x = randn(g, K if layout != "bsr" else 72, 5, dtype=torch.bfloat16)
    if layout == "csr":
        crow, col, values = random_csr(g, M, K)
        q = _to_int8(g, values)
        op, args = torch.ops.sparse_ops.csr_spmm_triton, (crow, col, q, x)
        dense = csr_dense(crow, col, q, K)
    elif layout == "bitmap":
        row_offsets, bitmap, values = random_bitmap(g, M, K)
        q = _to_int8(g, values)
        op, args = torch.ops.sparse_ops.bitmap_spmm_triton, (row_offsets, bitmap, q, x, q.numel())
        dense = bitmap_dense(row_offsets, bitmap, q, K)
    elif layout == "bsr":
        crow, col, values = random_bsr(g, 10, 9, 4, 8)
        q = _to_int8(g, values)
        op, args = torch.ops.sparse_ops.bsr_spmm_triton, (crow, col, q, x, 4, 8)
        dense = bsr_dense(crow, col, q, 9)
    else:
        values, metadata = random_nm(g, M, K, 2, 4)
        q = _to_int8(g, values)
        op, args = torch.ops.sparse_ops.nm_spmm_triton, (metadata, q, x, 2, 4)
        dense = nm_dense(q, metadata, 2, 4, K)
    y = op(*args)
    _check(y, dense @ x.double().cpu(), torch.bfloat16, f"{layout} op, seed {seed}")
    with FakeTensorMode() as mode:
        fake = op(*(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args))
    assert fake.dtype == torch.bfloat16 and fake.shape == y.shape, f"{layout} fake"
