"""CSR kernels: ``Y = S @ X`` (SpMM), ``Z = S^T @ D`` and ``V = (A @ B^T)[pattern]`` (SDDMM).

``S`` is ``(M, K)`` in CSR (docs/formats.md): ``crow`` int32 ``(M + 1,)``, ``col`` int16 or
int32 ``(nnz,)``, ``values`` ``(nnz,)``. Dense operands are 2-D with any strides; outputs have
the dtype of the inputs and are accumulated in fp32 (fp64 for fp64 inputs).

SpMM splits rows across programs, Sputnik-style: the launcher orders rows by length (longest
first, a stable argsort) and each program takes ``BLOCK_ROWS`` consecutive rows of that order,
so rows sharing a program have similar lengths and little work is masked off, and the longest
rows start first instead of finishing last. A program walks its rows' nonzeros ``BLOCK_NNZ`` at
a time, gathers the matching rows of ``X`` for ``BLOCK_N`` columns, and reduces
``values * X`` over the nonzeros.
"""

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from ..dtypes import INDEX_DTYPES
from .autotune import configs, density_bucket, next_pow2
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
    """Drop configs whose ``BLOCK_N`` is wider than ``N`` needs (a 128-wide tile for N = 8
    masks off 15/16 of its lanes)."""
    widest = max(16, next_pow2(named_args["N"]))
    kept = [c for c in cfgs if c.kwargs["BLOCK_N"] <= widest]
    return kept or cfgs[:1]


def _spmm_config(rows, nnz, n, warps, stages=3):
    return triton.Config(
        {"BLOCK_ROWS": rows, "BLOCK_NNZ": nnz, "BLOCK_N": n}, num_warps=warps, num_stages=stages
    )


_SPMM_CONFIGS = configs(
    [
        # Narrow X (N <= 16): many rows per program so a program moves enough bytes.
        _spmm_config(8, 32, 16, 4),
        _spmm_config(16, 16, 16, 4),
        _spmm_config(4, 64, 16, 4),
        _spmm_config(32, 16, 16, 8),
        # Wide X: a few rows, a wide column tile, deeper pipelines.
        _spmm_config(1, 64, 64, 4),
        _spmm_config(2, 32, 64, 4),
        _spmm_config(4, 32, 64, 4, 4),
        _spmm_config(2, 32, 128, 4),
        _spmm_config(4, 16, 128, 8, 4),
        _spmm_config(8, 16, 128, 8),
    ],
    _spmm_config(4, 16, 16, 1, 1),
)


@triton.autotune(
    configs=_SPMM_CONFIGS,
    key=["M", "N", "DENSITY"],
    prune_configs_by={"early_config_prune": _keep_block_n_within_n},
)
@triton.jit
def _csr_spmm_kernel(
    crow_ptr,
    col_ptr,
    val_ptr,
    x_ptr,
    y_ptr,
    order_ptr,
    M,
    N,
    DENSITY,  # autotune key only
    stride_xk,
    stride_xn,
    stride_ym,
    stride_yn,
    FP64: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
    BLOCK_NNZ: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)

    slot = pid_m * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    slot_ok = slot < M
    row = tl.load(order_ptr + slot, mask=slot_ok, other=0)
    start = tl.load(crow_ptr + row, mask=slot_ok, other=0)
    length = tl.load(crow_ptr + row + 1, mask=slot_ok, other=0) - start
    longest = tl.max(length, axis=0)

    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    j = tl.arange(0, BLOCK_NNZ)

    acc = tl.zeros((BLOCK_ROWS, BLOCK_N), dtype=ACC)
    for off in range(0, longest, BLOCK_NNZ):
        in_row = (off + j)[None, :] < length[:, None]  # [BLOCK_ROWS, BLOCK_NNZ]
        p = start[:, None] + off + j[None, :]
        k = tl.load(col_ptr + p, mask=in_row, other=0).to(tl.int64)
        v = tl.load(val_ptr + p, mask=in_row, other=0).to(ACC)  # int8 (W8A16) widens here
        x = tl.load(
            x_ptr + k[:, :, None] * stride_xk + n[None, None, :] * stride_xn,
            mask=in_row[:, :, None] & n_ok[None, None, :],
            other=0.0,
        ).to(ACC)
        acc += tl.sum(v[:, :, None] * x, axis=1)

    y = y_ptr + row.to(tl.int64)[:, None] * stride_ym + n[None, :] * stride_yn
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=slot_ok[:, None] & n_ok[None, :])


def _sddmm_config(nnz, n, warps, stages=3):
    return triton.Config({"BLOCK_NNZ": nnz, "BLOCK_N": n}, num_warps=warps, num_stages=stages)


_SDDMM_CONFIGS = configs(
    [
        _sddmm_config(32, 16, 4),
        _sddmm_config(64, 32, 4),
        _sddmm_config(32, 64, 4),
        _sddmm_config(64, 64, 8),
        _sddmm_config(128, 32, 8),
        _sddmm_config(16, 128, 4),
    ],
    _sddmm_config(16, 16, 1, 1),
)


@triton.autotune(
    configs=_SDDMM_CONFIGS,
    key=["N", "DENSITY"],
    prune_configs_by={"early_config_prune": _keep_block_n_within_n},
)
@triton.jit
def _csr_sddmm_kernel(
    crow_ptr,
    col_ptr,
    a_ptr,
    b_ptr,
    out_ptr,
    M,
    N,
    NNZ,
    SEARCH_STEPS,
    DENSITY,  # autotune key only
    stride_am,
    stride_an,
    stride_bk,
    stride_bn,
    stride_o,
    FP64: tl.constexpr,
    BLOCK_NNZ: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    # Programs split the nonzeros evenly, whatever the row lengths; each finds the row of its
    # nonzeros by binary search in crow: the largest i with crow[i] <= p, never an empty row.
    p = tl.program_id(0) * BLOCK_NNZ + tl.arange(0, BLOCK_NNZ)
    p_ok = p < NNZ
    lo = tl.zeros((BLOCK_NNZ,), dtype=tl.int32)
    hi = tl.full((BLOCK_NNZ,), M, dtype=tl.int32)
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi) // 2
        go = tl.load(crow_ptr + mid) <= p
        lo = tl.where(go, mid, lo)
        hi = tl.where(go, hi, mid)
    row = lo.to(tl.int64)
    k = tl.load(col_ptr + p, mask=p_ok, other=0).to(tl.int64)

    acc = tl.zeros((BLOCK_NNZ,), dtype=ACC)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        ok = p_ok[:, None] & (n < N)[None, :]
        a = tl.load(a_ptr + row[:, None] * stride_am + n[None, :] * stride_an, mask=ok, other=0.0)
        b = tl.load(b_ptr + k[:, None] * stride_bk + n[None, :] * stride_bn, mask=ok, other=0.0)
        acc += tl.sum(a.to(ACC) * b.to(ACC), axis=1)

    tl.store(out_ptr + p * stride_o, acc.to(out_ptr.dtype.element_ty), mask=p_ok)


def _check_structure(crow: torch.Tensor, col: torch.Tensor) -> tuple[int, int]:
    """Returns ``(M, nnz)``."""
    check_tensor("crow", crow, ndim=1, dtypes=(torch.int32,))
    check_tensor("col", col, ndim=1, dtypes=INDEX_DTYPES)
    if crow.shape[0] < 1:
        raise ValueError("crow must have M + 1 >= 1 entries, got an empty tensor")
    return crow.shape[0] - 1, col.shape[0]


def csr_spmm(
    crow: torch.Tensor,
    col: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Y = S @ X``: ``S`` ``(M, K)`` in CSR, ``x`` ``(K, N)`` → ``(M, N)`` in ``x.dtype``.

    ``values`` have the dtype of ``x``, or are int8 with an fp32, bf16 or fp16 ``x`` (W8A16:
    the integers are multiplied as they are, no scales). ``out``, if given, is an ``(M, N)``
    tensor (any strides) that receives the result.
    """
    m, nnz = _check_structure(crow, col)
    check_values("values", values, ndim=1, int8=True)
    check_values("x", x, ndim=2)
    check_spmm_dtypes(values, x)
    device = check_device(crow=crow, col=col, values=values, x=x)
    check_dim("values", values.shape[0], nnz, "len(values) = len(col)")
    k, n = x.shape
    y = check_out(out, (m, n), x.dtype, device)
    if m == 0 or n == 0:
        return y
    if nnz == 0 or k == 0:
        return y.zero_()

    crow = crow.contiguous()
    lengths = crow[1:] - crow[:-1]
    order = torch.argsort(lengths, descending=True, stable=True).to(torch.int32)

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_ROWS"]), triton.cdiv(n, meta["BLOCK_N"]))

    wrap_triton(_csr_spmm_kernel)[grid](
        crow,
        col.contiguous(),
        values.contiguous(),
        x,
        y,
        order,
        m,
        n,
        density_bucket(nnz, m * k),
        x.stride(0),
        x.stride(1),
        y.stride(0),
        y.stride(1),
        FP64=x.dtype == torch.float64,
    )
    return y


def csr_transpose(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, num_cols: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The CSR parts of ``S^T`` (``(num_cols, M)``), with torch ops of static output shape.

    Nonzeros are ordered by a stable sort of their column, so each row of ``S^T`` keeps them
    in row order of ``S``. Column indices of the result are int32.
    """
    nnz = col.shape[0]
    device = crow.device
    row_of = (
        torch.searchsorted(
            crow, torch.arange(nnz, dtype=torch.int32, device=device), right=True, out_int32=True
        )
        - 1
    )
    col32 = col.to(torch.int32)
    perm = torch.argsort(col32, stable=True)
    counts = torch.zeros(num_cols + 1, dtype=torch.int32, device=device)
    counts.index_add_(0, col32.to(torch.int64) + 1, torch.ones_like(col32))
    crow_t = torch.cumsum(counts, dim=0, dtype=torch.int32)
    return crow_t, row_of[perm], values[perm]


def csr_spmm_t(
    crow: torch.Tensor,
    col: torch.Tensor,
    values: torch.Tensor,
    d: torch.Tensor,
    num_cols: int,
    *,
    transposed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Z = S^T @ D``: ``S`` ``(M, num_cols)`` in CSR, ``d`` ``(M, N)`` → ``(num_cols, N)``.

    Runs the SpMM kernel on the transposed structure: ``transposed = (crow_t, col_t, perm_t)``
    when the matrix holds it (computed once, ``CSRMatrix.transposed()``; the values are then
    gathered through ``perm_t``), else transposed here with torch ops (:func:`csr_transpose`,
    a stable sort). Deterministic, no atomics.
    """
    m, nnz = _check_structure(crow, col)
    check_values("values", values, ndim=1)
    check_values("d", d, ndim=2)
    check_same_dtype("values", values, d=d)
    device = check_device(crow=crow, col=col, values=values, d=d)
    check_dim("values", values.shape[0], nnz, "len(values) = len(col)")
    check_dim("d", d.shape[0], m, "d.shape[0] = len(crow) - 1")
    check_size("num_cols", num_cols)
    if out is None and (num_cols == 0 or d.shape[1] == 0 or nnz == 0):
        return torch.zeros((num_cols, d.shape[1]), dtype=d.dtype, device=device)
    if transposed is not None:
        crow_t, col_t, perm_t = transposed
        check_dim("crow_t", crow_t.shape[0], num_cols + 1, "len(crow_t) = num_cols + 1")
        check_dim("perm_t", perm_t.shape[0], nnz, "len(perm_t) = len(col)")
        values_t = values[perm_t.long()]
    else:
        crow_t, col_t, values_t = csr_transpose(crow, col, values, num_cols)
    return csr_spmm(crow_t, col_t, values_t, d, out=out)


def csr_sddmm(
    crow: torch.Tensor,
    col: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``V[p] = <A[i, :], B[col[p], :]>`` for each stored ``(i, col[p])`` → ``(nnz,)``.

    ``a`` is ``(M, N)``, ``b`` is ``(K, N)``; the result has ``a.dtype``. With ``A = dY`` and
    ``B = X`` it is the gradient of ``values`` in ``Y = S @ X``.
    """
    m, nnz = _check_structure(crow, col)
    check_values("a", a, ndim=2)
    check_values("b", b, ndim=2)
    check_same_dtype("a", a, b=b)
    device = check_device(crow=crow, col=col, a=a, b=b)
    check_dim("a", a.shape[0], m, "a.shape[0] = len(crow) - 1")
    check_dim("b", b.shape[1], a.shape[1], "b.shape[1] = a.shape[1]")
    n = a.shape[1]
    v = check_out(out, (nnz,), a.dtype, device)
    if nnz == 0:
        return v
    if n == 0:
        return v.zero_()

    def grid(meta):
        return (triton.cdiv(nnz, meta["BLOCK_NNZ"]),)

    wrap_triton(_csr_sddmm_kernel)[grid](
        crow.contiguous(),
        col.contiguous(),
        a,
        b,
        v,
        m,
        n,
        nnz,
        max(1, int(m).bit_length()),
        density_bucket(nnz, m * b.shape[0]),
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        v.stride(0),
        FP64=a.dtype == torch.float64,
    )
    return v
