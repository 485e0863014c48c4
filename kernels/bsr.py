"""BSR kernels: ``Y = S @ X`` (SpMM), ``Z = S^T @ D`` and ``V = (A @ B^T)[blocks]`` (SDDMM).

``S`` is ``(M, K)`` in BSR (docs/formats.md): ``crow`` int32 ``(M/R + 1,)``, ``col`` int32
``(nnzb,)`` block columns, ``values`` ``(nnzb, R, C)`` with any strides. Dense operands are 2-D
with any strides; outputs have the dtype of the inputs and are accumulated in fp32 (fp64 for
fp64 inputs).

SpMM runs one program per (block row, ``BLOCK_N`` columns of ``X``): it walks the block row's
blocks, loads each ``R x C`` block and the ``C x BLOCK_N`` slab of ``X`` under it, and
accumulates their product with `tl.dot`. Blocks of any size work: ``R`` and ``C`` are padded to
powers of two (masked loads), and when either is below 16 (a `tl.dot` tile's least side) the
product is a broadcast multiply and sum instead.
"""

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from ..dtypes import INDEX_DTYPES
from .autotune import (
    configs,
    density_bucket,
    dot_in_fp32,
    dot_precision,
    next_pow2,
)
from .csr import csr_transpose
from .validation import (
    check_device,
    check_dim,
    check_out,
    check_same_dtype,
    check_size,
    check_spmm_dtypes,
    check_tensor,
    check_values,
)


def _keep_block_n_within_n(cfgs, named_args, **kwargs):
    widest = max(16, next_pow2(named_args["N"]))
    kept = [c for c in cfgs if c.kwargs["BLOCK_N"] <= widest]
    return kept or cfgs[:1]


def _prune_spmm(cfgs, named_args, **kwargs):
    """As :func:`_keep_block_n_within_n`, and the swapped product only where it can help: on
    the `tl.dot` path with blocks of fewer than 64 rows (see ``SWAP`` in the kernel)."""
    swap_helps = kwargs["USE_DOT"] and kwargs["BLOCK_R"] < 64
    kept = [c for c in cfgs if swap_helps or not c.kwargs["SWAP"]]
    # never an empty list (a list of swapped configs alone): their direct twins instead
    kept = kept or [triton.Config({**c.kwargs, "SWAP": False}, num_warps=c.num_warps,
                                  num_stages=c.num_stages) for c in cfgs]
    return _keep_block_n_within_n(kept, named_args)


def _config(n, warps, stages, **extra):
    return triton.Config({"BLOCK_N": n, **extra}, num_warps=warps, num_stages=stages)


def _spmm_config(n, warps, stages, swap=False):
    return _config(n, warps, stages, SWAP=swap)


_SPMM_CONFIGS = configs(
    [
        _spmm_config(16, 4, 3),
        _spmm_config(32, 4, 3),
        _spmm_config(64, 4, 3),
        _spmm_config(64, 4, 4),
        _spmm_config(128, 4, 3),
        _spmm_config(128, 8, 3),
        _spmm_config(128, 8, 4),
        _spmm_config(256, 8, 3),
        _spmm_config(64, 4, 4, swap=True),
        _spmm_config(128, 4, 3, swap=True),
        _spmm_config(128, 8, 4, swap=True),
        _spmm_config(256, 8, 3, swap=True),
    ],
    _spmm_config(16, 1, 1),
)


@triton.jit
def _block_product(blk, xt, acc, USE_DOT: tl.constexpr, DOT_FP32: tl.constexpr,
                   PRECISION: tl.constexpr):
    """``acc + blk @ xt`` in ``acc.dtype``: `tl.dot` on tiles of sides >= 16, else a
    broadcast multiply and sum."""
    if USE_DOT:
        if DOT_FP32:
            blk = blk.to(tl.float32)
            xt = xt.to(tl.float32)
        acc = tl.dot(blk, xt, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    else:
        acc += tl.sum(blk.to(acc.dtype)[:, :, None] * xt.to(acc.dtype)[None, :, :], axis=1)
    return acc


@triton.autotune(
    configs=_SPMM_CONFIGS,
    key=["N", "R", "C", "DENSITY"],
    prune_configs_by={"early_config_prune": _prune_spmm},
)
@triton.jit
def _bsr_spmm_kernel(
    crow_ptr,
    col_ptr,
    val_ptr,
    x_ptr,
    y_ptr,
    N,
    R,
    C,
    DENSITY,  # autotune key only
    stride_vb,
    stride_vr,
    stride_vc,
    stride_xk,
    stride_xn,
    stride_ym,
    stride_yn,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    USE_DOT: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SWAP: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    # Blocks are read in x's dtype (fp32 under DOT_FP32): int8 values (W8A16) are converted in
    # registers (exact), since tl.dot takes floats; under the interpreter straight to fp32, as
    # its int -> bf16 cast keeps the integer as raw bf16 bits. Float values have x's dtype.
    XT: tl.constexpr = tl.float32 if DOT_FP32 else x_ptr.dtype.element_ty
    block_row = tl.program_id(0)
    pid_n = tl.program_id(1)
    start = tl.load(crow_ptr + block_row)
    end = tl.load(crow_ptr + block_row + 1)

    r = tl.arange(0, BLOCK_R)
    c = tl.arange(0, BLOCK_C)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    r_ok = r < R
    c_ok = c < C
    n_ok = n < N
    blk_ptrs = val_ptr + r[:, None] * stride_vr + c[None, :] * stride_vc
    blk_mask = r_ok[:, None] & c_ok[None, :]
    x_mask = c_ok[:, None] & n_ok[None, :]

    first = start.to(tl.int64)
    if SWAP:
        # Y^T = X^T S^T: the tile's long side (BLOCK_N) becomes the product's M, so blocks of
        # 16 or 32 rows still fill Hopper's 64-row warpgroup MMA instead of falling back to
        # the older mma.sync.
        acc_t = tl.zeros((BLOCK_N, BLOCK_R), dtype=ACC)
        blk_t_ptrs = val_ptr + c[:, None] * stride_vc + r[None, :] * stride_vr
        for i in range(0, end - start):
            p64 = first + i
            k0 = tl.load(col_ptr + p64).to(tl.int64) * C
            blk_t = tl.load(blk_t_ptrs + p64 * stride_vb, mask=blk_mask.T, other=0).to(XT)
            x_t = tl.load(
                x_ptr + (k0 + c)[None, :] * stride_xk + n[:, None] * stride_xn,
                mask=x_mask.T,
                other=0.0,
            )
            acc_t = _block_product(x_t, blk_t, acc_t, USE_DOT, DOT_FP32, PRECISION)
        acc = acc_t.T
    else:
        acc = tl.zeros((BLOCK_R, BLOCK_N), dtype=ACC)
        for i in range(0, end - start):
            p64 = first + i
            k0 = tl.load(col_ptr + p64).to(tl.int64) * C
            blk = tl.load(blk_ptrs + p64 * stride_vb, mask=blk_mask, other=0).to(XT)
            xt = tl.load(
                x_ptr + (k0 + c)[:, None] * stride_xk + n[None, :] * stride_xn,
                mask=x_mask,
                other=0.0,
            )
            acc = _block_product(blk, xt, acc, USE_DOT, DOT_FP32, PRECISION)

    m = block_row.to(tl.int64) * R + r
    y = y_ptr + m[:, None] * stride_ym + n[None, :] * stride_yn
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=r_ok[:, None] & n_ok[None, :])


_SDDMM_CONFIGS = configs(
    [
        _config(32, 4, 3),
        _config(64, 4, 3),
        _config(64, 8, 4),
        _config(128, 4, 3),
        _config(128, 8, 3),
    ],
    _config(16, 1, 1),
)


@triton.autotune(
    configs=_SDDMM_CONFIGS,
    key=["N", "R", "C"],
    prune_configs_by={"early_config_prune": _keep_block_n_within_n},
)
@triton.jit
def _bsr_sddmm_kernel(
    crow_ptr,
    col_ptr,
    a_ptr,
    b_ptr,
    out_ptr,
    MB,
    N,
    R,
    C,
    SEARCH_STEPS,
    stride_am,
    stride_an,
    stride_bk,
    stride_bn,
    stride_ob,
    stride_or,
    stride_oc,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    USE_DOT: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    # One program per stored block; its block row is the largest i with crow[i] <= p.
    p = tl.program_id(0)
    lo = p * 0
    hi = lo + MB
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi) // 2
        go = tl.load(crow_ptr + mid) <= p
        lo = tl.where(go, mid, lo)
        hi = tl.where(go, hi, mid)
    m0 = lo.to(tl.int64) * R
    k0 = tl.load(col_ptr + p).to(tl.int64) * C

    r = tl.arange(0, BLOCK_R)
    c = tl.arange(0, BLOCK_C)
    r_ok = r < R
    c_ok = c < C
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=ACC)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        n_ok = n < N
        a = tl.load(
            a_ptr + (m0 + r)[:, None] * stride_am + n[None, :] * stride_an,
            mask=r_ok[:, None] & n_ok[None, :],
            other=0.0,
        )
        b = tl.load(
            b_ptr + (k0 + c)[None, :] * stride_bk + n[:, None] * stride_bn,
            mask=c_ok[None, :] & n_ok[:, None],
            other=0.0,
        )  # [BLOCK_N, BLOCK_C]: B^T's slab
        acc = _block_product(a, b, acc, USE_DOT, DOT_FP32, PRECISION)

    o = out_ptr + p.to(tl.int64) * stride_ob + r[:, None] * stride_or + c[None, :] * stride_oc
    tl.store(o, acc.to(out_ptr.dtype.element_ty), mask=r_ok[:, None] & c_ok[None, :])


def _check_structure(crow: torch.Tensor, col: torch.Tensor) -> tuple[int, int]:
    """Returns ``(M/R, nnzb)``."""
    check_tensor("crow", crow, ndim=1, dtypes=(torch.int32,))
    check_tensor("col", col, ndim=1, dtypes=INDEX_DTYPES)
    if crow.shape[0] < 1:
        raise ValueError("crow must have M/R + 1 >= 1 entries, got an empty tensor")
    return crow.shape[0] - 1, col.shape[0]


def _tile_params(r: int, c: int, dtype: torch.dtype) -> dict:
    block_r, block_c = next_pow2(r), next_pow2(c)
    # A block with a side of 16 or more takes `tl.dot`, its short side padded to 16 (masked
    # loads, zeros): Triton 3.6 compiled the broadcast-and-sum of a 16 x 4 block wrong on an
    # H200 (most rows of Y zero), and the dot is the tensor cores' path anyway. Blocks under
    # 16 on both sides keep the broadcast product.
    use_dot = max(block_r, block_c) >= 16
    if use_dot:
        block_r, block_c = max(block_r, 16), max(block_c, 16)
    return {
        "BLOCK_R": block_r,
        "BLOCK_C": block_c,
        "USE_DOT": use_dot,
        "DOT_FP32": dot_in_fp32(dtype),
        "PRECISION": dot_precision(dtype),
        "FP64": dtype == torch.float64,
    }


def bsr_spmm(
    crow: torch.Tensor,
    col: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Y = S @ X``: ``S`` ``(M, K)`` in BSR with ``R x C`` blocks, ``x`` ``(K, N)`` →
    ``(M, N)`` in ``x.dtype``, ``M = (len(crow) - 1) * R``, ``K`` a multiple of ``C``.

    ``values`` have the dtype of ``x``, or are int8 with an fp32, bf16 or fp16 ``x`` (W8A16:
    the integers are multiplied as they are, no scales).

    ``values`` may have any strides (:func:`bsr_spmm_t` passes transposed blocks as a view).
    """
    mb, nnzb = _check_structure(crow, col)
    check_values("values", values, ndim=3, int8=True)
    check_values("x", x, ndim=2)
    check_spmm_dtypes(values, x)
    device = check_device(crow=crow, col=col, values=values, x=x)
    check_dim("values", values.shape[0], nnzb, "values.shape[0] = len(col)")
    _, r, c = values.shape
    if r == 0 or c == 0:
        raise ValueError(f"values must hold blocks of positive size, got {r} x {c}")
    k, n = x.shape
    if k % c != 0:
        raise ValueError(f"x has {k} rows, not a multiple of the block width C = {c}")
    y = check_out(out, (mb * r, n), x.dtype, device)
    if mb == 0 or n == 0:
        return y
    if nnzb == 0:
        return y.zero_()

    def grid(meta):
        return (mb, triton.cdiv(n, meta["BLOCK_N"]))

    wrap_triton(_bsr_spmm_kernel)[grid](
        crow.contiguous(),
        col.contiguous(),
        values,
        x,
        y,
        n,
        r,
        c,
        density_bucket(nnzb, mb * (k // c)),
        values.stride(0),
        values.stride(1),
        values.stride(2),
        x.stride(0),
        x.stride(1),
        y.stride(0),
        y.stride(1),
        **_tile_params(r, c, x.dtype),
    )
    return y


def bsr_transpose(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, num_block_cols: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The BSR parts of ``S^T`` (``C x R`` blocks, ``num_block_cols`` block rows).

    Blocks are ordered by a stable sort of their block column; the returned values are a
    transposed view (``values[perm].transpose(1, 2)``), not a contiguous copy.
    """
    # The block structure transposes like a CSR structure; then each block transposes too.
    crow_t, col_t, values_t = csr_transpose(crow, col, values, num_block_cols)
    return crow_t, col_t, values_t.transpose(1, 2)


def bsr_spmm_t(
    crow: torch.Tensor,
    col: torch.Tensor,
    values: torch.Tensor,
    d: torch.Tensor,
    num_cols: int,
    *,
    transposed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Z = S^T @ D``: ``S`` ``(M, num_cols)`` in BSR, ``d`` ``(M, N)`` → ``(num_cols, N)``.

    Runs the SpMM kernel on the transposed blocks: over ``transposed = (crow_t, col_t,
    perm_t)`` when the matrix holds it (``BSRMatrix.transposed()``, blocks gathered through
    ``perm_t``), else transposed here with torch ops (:func:`bsr_transpose`). Deterministic,
    no atomics.
    """
    mb, nnzb = _check_structure(crow, col)
    check_values("values", values, ndim=3)
    check_values("d", d, ndim=2)
    check_same_dtype("values", values, d=d)
    check_device(crow=crow, col=col, values=values, d=d)
    check_dim("values", values.shape[0], nnzb, "values.shape[0] = len(col)")
    check_size("num_cols", num_cols)
    _, r, c = values.shape
    if r == 0 or c == 0:
        raise ValueError(f"values must hold blocks of positive size, got {r} x {c}")
    check_dim("d", d.shape[0], mb * r, "d.shape[0] = (len(crow) - 1) * R")
    if num_cols % c != 0:
        raise ValueError(f"num_cols = {num_cols} is not a multiple of the block width C = {c}")
    if transposed is not None:
        crow_t, col_t, perm_t = transposed
        check_dim("crow_t", crow_t.shape[0], num_cols // c + 1, "len(crow_t) = num_cols / C + 1")
        check_dim("perm_t", perm_t.shape[0], nnzb, "len(perm_t) = len(col)")
        values_t = values[perm_t.long()].transpose(1, 2)
    else:
        crow_t, col_t, values_t = bsr_transpose(crow, col, values, num_cols // c)
    return bsr_spmm(crow_t, col_t, values_t, d, out=out)


def bsr_sddmm(
    crow: torch.Tensor,
    col: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    R: int,
    C: int,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``V[p] = A[i*R:(i+1)*R, :] @ B[j*C:(j+1)*C, :]^T`` for each stored block ``(i, j)`` →
    ``(nnzb, R, C)``. ``a`` is ``(M, N)`` with ``M = (len(crow) - 1) * R``, ``b`` is
    ``(K, N)``; the result has ``a.dtype``."""
    mb, nnzb = _check_structure(crow, col)
    check_values("a", a, ndim=2)
    check_values("b", b, ndim=2)
    check_same_dtype("a", a, b=b)
    device = check_device(crow=crow, col=col, a=a, b=b)
    check_size("R", R)
    check_size("C", C)
    if R == 0 or C == 0:
        raise ValueError(f"R and C must be positive, got {R} x {C}")
    check_dim("a", a.shape[0], mb * R, "a.shape[0] = (len(crow) - 1) * R")
    check_dim("b", b.shape[1], a.shape[1], "b.shape[1] = a.shape[1]")
    if b.shape[0] % C != 0:
        raise ValueError(f"b has {b.shape[0]} rows, not a multiple of the block width C = {C}")
    n = a.shape[1]
    v = check_out(out, (nnzb, R, C), a.dtype, device)
    if nnzb == 0:
        return v
    if n == 0:
        return v.zero_()

    def grid(meta):
        return (nnzb,)

    wrap_triton(_bsr_sddmm_kernel)[grid](
        crow.contiguous(),
        col.contiguous(),
        a,
        b,
        v,
        mb,
        n,
        R,
        C,
        max(1, int(mb).bit_length()),
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        **_tile_params(R, C, a.dtype),
    )
    return v
