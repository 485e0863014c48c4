"""N:M kernels: ``Y = S @ X`` (SpMM), ``Z = S^T @ D`` (SpMM-T) and the SDDMM on the pattern.

``S`` is ``(M, K)`` in the packed N:M layout of docs/formats.md: ``values`` ``(M, G * n)``
(slot ``s`` of group ``g`` at column ``g * n + s``) and ``metadata`` uint8
``(M, ceil(G * n * b / 8))`` holding each slot's ``b``-bit position in its group of ``m``
columns (``b`` = 1, 2 or 4 for ``m`` = 2, <= 4, <= 16), ``G = ceil(K / m)``.

Every kernel expands a tile of ``S`` to dense in registers and multiplies it with `tl.dot`: the
tile covers ``BLOCK_K // m_pad`` groups, ``m_pad = next_pow2(m)``, laid out as a
``[rows, groups, m_pad]`` tensor where slot ``s`` lands at ``[:, g, pos]``, then reshaped to
``[rows, groups * m_pad]``. The padded columns (``j >= m`` when ``m`` is not a power of two) are
zero in ``S`` and masked in the dense operand. So ``S`` moves ``n/m`` of its dense bytes plus
``b/8`` bytes of metadata per slot, and the arithmetic runs on tensor cores as a dense tile.
Slots that share a position add up, so unused slots (value 0, any position) are harmless.
"""

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from .autotune import configs, dot_in_fp32, dot_precision, next_pow2
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


def metadata_bits(m: int) -> int:
    """Bits per packed position: 1 for ``m = 2``, 2 for ``m <= 4``, 4 for ``m <= 16``."""
    return 1 if m == 2 else 2 if m <= 4 else 4


def _keep_block_n_within_n(cfgs, named_args, **kwargs):
    widest = max(16, next_pow2(named_args["N"]))
    kept = [c for c in cfgs if c.kwargs["BLOCK_N"] <= widest]
    return kept or cfgs[:1]


def _config(bm, bn, bk, warps, stages):
    return triton.Config(
        {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages
    )


# BLOCK_K counts dense (padded) columns of S. Narrow X (N <= 16) is bound by reading S, so
# small BLOCK_M gives enough programs to fill the GPU; wide X is bound by the tensor cores.
_SPMM_CONFIGS = configs(
    [
        _config(16, 16, 128, 4, 4),
        _config(32, 16, 128, 4, 4),
        _config(64, 16, 64, 4, 3),
        _config(16, 16, 256, 4, 3),
        _config(64, 64, 64, 4, 4),
        _config(64, 128, 64, 4, 4),
        _config(128, 64, 64, 8, 4),
        _config(128, 128, 64, 8, 3),
        _config(128, 128, 64, 8, 4),
        _config(64, 128, 64, 8, 3),
    ],
    _config(16, 16, 32, 1, 1),
)


@triton.jit
def _positions(meta_ptr, rows, slot, ok, stride_mm, stride_mb, BITS: tl.constexpr):
    """Position in its group of each slot ``slot`` ([BLOCK_G]) of each row ``rows``."""
    bit = slot * BITS
    byte = tl.load(
        meta_ptr + rows[:, None] * stride_mm + (bit // 8)[None, :] * stride_mb, mask=ok, other=0
    ).to(tl.int32)
    return (byte >> (bit % 8)[None, :]) & ((1 << BITS) - 1)


@triton.jit
def _dense_tile(
    val_ptr,
    meta_ptr,
    rows,
    row_ok,
    g0,
    G,
    stride_vm,
    stride_vs,
    stride_mm,
    stride_mb,
    N_KEEP: tl.constexpr,
    N_PAD: tl.constexpr,
    M_PAD: tl.constexpr,
    BITS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_G: tl.constexpr,
    TILE_DTYPE: tl.constexpr,
):
    """Rows ``rows`` of ``S``, groups ``g0 .. g0 + BLOCK_G``, as a dense ``[BLOCK_M,
    BLOCK_G * M_PAD]`` tile (column ``g * M_PAD + j`` is column ``g * m + j``) in
    ``TILE_DTYPE``: the values' dtype, fp32 where the dot runs in fp32 (``DOT_FP32``), or for
    int8 values (W8A16) the dtype of ``x`` (exact).

    The slots of a group are adjacent in memory, so values (and metadata bytes) load as
    ``[BLOCK_M, BLOCK_G, N_PAD]`` tensors, contiguous along each row: loads the compiler can
    vectorise and pipeline into shared memory (loading slot by slot, with stride ``n``, it
    does neither). Each slot is then pulled out along the last, in-thread axis and scattered
    to its position. The tile is built in the values' own dtype (half the registers of fp32
    for 16-bit values; int8 values are converted once, as loaded, not per dense column); the
    sum is exact, since a valid layout has at most one nonzero at each position of a group
    and the other slots there add zeros."""
    g = g0 + tl.arange(0, BLOCK_G)
    q = tl.arange(0, N_PAD)
    slot = g[:, None] * N_KEEP + q[None, :]  # [BLOCK_G, N_PAD]
    ok = row_ok[:, None, None] & ((g < G)[:, None] & (q < N_KEEP)[None, :])[None, :, :]
    v3 = tl.load(
        val_ptr + rows[:, None, None] * stride_vm + slot[None, :, :] * stride_vs, mask=ok, other=0
    ).to(TILE_DTYPE)
    bit = slot * BITS
    byte = tl.load(
        meta_ptr + rows[:, None, None] * stride_mm + (bit // 8)[None, :, :] * stride_mb,
        mask=ok,
        other=0,
    ).to(tl.int32)
    pos3 = (byte >> (bit % 8)[None, :, :]) & ((1 << BITS) - 1)
    j = tl.arange(0, M_PAD)
    dense = tl.zeros((BLOCK_M, BLOCK_G, M_PAD), dtype=v3.dtype)
    for s in tl.static_range(N_KEEP):
        pick = q[None, None, :] == s
        v = tl.sum(tl.where(pick, v3, 0.0), axis=2)
        pos = tl.sum(tl.where(pick, pos3, 0), axis=2)
        dense += tl.where(pos[:, :, None] == j[None, None, :], v[:, :, None], 0.0)
    return tl.reshape(dense, (BLOCK_M, BLOCK_G * M_PAD))


@triton.jit
def _dense_columns(g0, M_GROUP: tl.constexpr, M_PAD: tl.constexpr, BLOCK_K: tl.constexpr):
    """Column of ``S`` under each of the ``BLOCK_K`` tile columns, and whether it is real
    (not padding); the caller still masks ``col < K``."""
    kk = tl.arange(0, BLOCK_K)
    j = kk % M_PAD
    col = (g0 + kk // M_PAD).to(tl.int64) * M_GROUP + j
    return col, j < M_GROUP


@triton.autotune(
    configs=_SPMM_CONFIGS,
    key=["M", "N", "K", "N_KEEP", "M_GROUP"],
    prune_configs_by={"early_config_prune": _keep_block_n_within_n},
)
@triton.jit
def _nm_spmm_kernel(
    val_ptr,
    meta_ptr,
    x_ptr,
    y_ptr,
    M,
    N,
    K,
    G,
    stride_vm,
    stride_vs,
    stride_mm,
    stride_mb,
    stride_xk,
    stride_xn,
    stride_ym,
    stride_yn,
    N_KEEP: tl.constexpr,
    M_GROUP: tl.constexpr,
    N_PAD: tl.constexpr,
    M_PAD: tl.constexpr,
    BITS: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    BLOCK_G: tl.constexpr = BLOCK_K // M_PAD
    # The tile of S is built in x's dtype (fp32 under DOT_FP32): the values' own dtype, or for
    # int8 values (W8A16) their exact conversion in registers, since tl.dot takes floats (under
    # the interpreter straight to fp32: its int -> bf16 cast keeps the integer as raw bits).
    TILE: tl.constexpr = tl.float32 if DOT_FP32 else x_ptr.dtype.element_ty
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    rows = rows.to(tl.int64)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for g0 in range(0, G, BLOCK_G):
        s = _dense_tile(val_ptr, meta_ptr, rows, row_ok, g0, G, stride_vm, stride_vs, stride_mm,
                        stride_mb, N_KEEP, N_PAD, M_PAD, BITS, BLOCK_M, BLOCK_G, TILE)
        col, real = _dense_columns(g0, M_GROUP, M_PAD, BLOCK_K)
        x = tl.load(
            x_ptr + col[:, None] * stride_xk + n[None, :] * stride_xn,
            mask=(real & (col < K))[:, None] & n_ok[None, :],
            other=0.0,
        )
        if DOT_FP32:
            x = x.to(tl.float32)
        acc = tl.dot(s.to(x.dtype), x, acc, input_precision=PRECISION, out_dtype=acc.dtype)

    y = y_ptr + rows[:, None] * stride_ym + n[None, :] * stride_yn
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & n_ok[None, :])


# Z = S^T D: a program owns BLOCK_K rows of Z (whole groups) and walks all M rows of S and D.
_SPMM_T_CONFIGS = configs(
    [
        _config(32, 16, 64, 4, 3),
        _config(64, 16, 64, 4, 3),
        _config(64, 64, 64, 4, 4),
        _config(64, 128, 64, 4, 3),
        _config(64, 128, 128, 8, 3),
        _config(32, 128, 128, 8, 4),
        _config(64, 64, 128, 8, 3),
        _config(128, 64, 64, 8, 3),
    ],
    _config(16, 16, 32, 1, 1),
)


@triton.autotune(
    configs=_SPMM_T_CONFIGS,
    key=["M", "N", "K", "N_KEEP", "M_GROUP"],
    prune_configs_by={"early_config_prune": _keep_block_n_within_n},
)
@triton.jit
def _nm_spmm_t_kernel(
    val_ptr,
    meta_ptr,
    d_ptr,
    z_ptr,
    M,
    N,
    K,
    G,
    stride_vm,
    stride_vs,
    stride_mm,
    stride_mb,
    stride_dm,
    stride_dn,
    stride_zk,
    stride_zn,
    N_KEEP: tl.constexpr,
    M_GROUP: tl.constexpr,
    N_PAD: tl.constexpr,
    M_PAD: tl.constexpr,
    BITS: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    BLOCK_G: tl.constexpr = BLOCK_K // M_PAD
    TILE: tl.constexpr = tl.float32 if DOT_FP32 else val_ptr.dtype.element_ty
    g0 = tl.program_id(0) * BLOCK_G
    pid_n = tl.program_id(1)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N

    acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=ACC)
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        rows = rows.to(tl.int64)
        s = _dense_tile(val_ptr, meta_ptr, rows, row_ok, g0, G, stride_vm, stride_vs, stride_mm,
                        stride_mb, N_KEEP, N_PAD, M_PAD, BITS, BLOCK_M, BLOCK_G, TILE)
        d = tl.load(
            d_ptr + rows[:, None] * stride_dm + n[None, :] * stride_dn,
            mask=row_ok[:, None] & n_ok[None, :],
            other=0.0,
        )
        if DOT_FP32:
            d = d.to(tl.float32)
        acc = tl.dot(tl.trans(s.to(d.dtype)), d, acc, input_precision=PRECISION,
                     out_dtype=acc.dtype)

    col, real = _dense_columns(g0, M_GROUP, M_PAD, BLOCK_K)
    z = z_ptr + col[:, None] * stride_zk + n[None, :] * stride_zn
    tl.store(z, acc.to(z_ptr.dtype.element_ty), mask=(real & (col < K))[:, None] & n_ok[None, :])


# V = (A B^T) at the pattern: a program owns BLOCK_M rows x BLOCK_K dense columns of A B^T,
# reduces over N in BLOCK_N steps, then picks each slot's column out of the dense tile.
_SDDMM_CONFIGS = configs(
    [
        _config(64, 32, 64, 4, 3),
        _config(64, 64, 64, 4, 3),
        _config(128, 32, 64, 8, 3),
        _config(64, 64, 128, 8, 3),
        _config(128, 64, 128, 8, 4),
    ],
    _config(16, 16, 32, 1, 1),
)


@triton.autotune(
    configs=_SDDMM_CONFIGS,
    key=["M", "N", "K", "N_KEEP", "M_GROUP"],
    prune_configs_by={"early_config_prune": _keep_block_n_within_n},
)
@triton.jit
def _nm_sddmm_kernel(
    meta_ptr,
    a_ptr,
    b_ptr,
    v_ptr,
    M,
    N,
    K,
    G,
    stride_mm,
    stride_mb,
    stride_am,
    stride_an,
    stride_bk,
    stride_bn,
    stride_vm,
    stride_vs,
    N_KEEP: tl.constexpr,
    M_GROUP: tl.constexpr,
    N_PAD: tl.constexpr,
    M_PAD: tl.constexpr,
    BITS: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    BLOCK_G: tl.constexpr = BLOCK_K // M_PAD
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    rows = rows.to(tl.int64)
    g0 = tl.program_id(1) * BLOCK_G
    col, real = _dense_columns(g0, M_GROUP, M_PAD, BLOCK_K)
    col_ok = real & (col < K)

    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=ACC)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        n_ok = n < N
        a = tl.load(
            a_ptr + rows[:, None] * stride_am + n[None, :] * stride_an,
            mask=row_ok[:, None] & n_ok[None, :],
            other=0.0,
        )
        bt = tl.load(
            b_ptr + col[None, :] * stride_bk + n[:, None] * stride_bn,
            mask=col_ok[None, :] & n_ok[:, None],
            other=0.0,
        )  # [BLOCK_N, BLOCK_K]: B^T's slab
        if DOT_FP32:
            a = a.to(tl.float32)
            bt = bt.to(tl.float32)
        acc = tl.dot(a, bt, acc, input_precision=PRECISION, out_dtype=acc.dtype)

    full = tl.reshape(acc, (BLOCK_M, BLOCK_G, M_PAD))
    g = g0 + tl.arange(0, BLOCK_G)
    ok = row_ok[:, None] & (g < G)[None, :]
    j = tl.arange(0, M_PAD)
    for s in tl.static_range(N_KEEP):
        slot = g * N_KEEP + s
        pos = _positions(meta_ptr, rows, slot, ok, stride_mm, stride_mb, BITS)
        picked = tl.sum(tl.where(pos[:, :, None] == j[None, None, :], full, 0.0), axis=2)
        v = v_ptr + rows[:, None] * stride_vm + slot[None, :] * stride_vs
        tl.store(v, picked.to(v_ptr.dtype.element_ty), mask=ok)


def _check_nm(n: int, m: int) -> None:
    for name, value in (("n", n), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 1 <= n < m <= 16:
        raise ValueError(f"n:m must satisfy 1 <= n < m <= 16, got n = {n}, m = {m}")


def _check_packed(values_or_none, metadata, rows: int, k: int, n: int, m: int) -> int:
    """Checks ``metadata`` (and ``values``) against ``K = k``; returns ``G``."""
    g = -(-k // m)
    check_dim("metadata", metadata.shape[0], rows, "metadata.shape[0] = M")
    check_dim(
        "metadata",
        metadata.shape[1],
        -(-g * n * metadata_bits(m) // 8),
        f"metadata.shape[1] = ceil(G * n * bits / 8) for G = {g} groups",
    )
    if values_or_none is not None:
        check_dim("values", values_or_none.shape[1], g * n, f"values.shape[1] = G * n, G = {g}")
    return g


def _tile_params(n: int, m: int, dtype: torch.dtype) -> dict:
    return {
        "N_KEEP": n,
        "M_GROUP": m,
        "N_PAD": next_pow2(n),
        "M_PAD": next_pow2(m),
        "BITS": metadata_bits(m),
        "DOT_FP32": dot_in_fp32(dtype),
        "PRECISION": dot_precision(dtype),
        "FP64": dtype == torch.float64,
    }


def _check_operands(values, metadata, int8: bool = False) -> None:
    check_values("values", values, ndim=2, int8=int8)
    check_tensor("metadata", metadata, ndim=2, dtypes=(torch.uint8,))


def nm_spmm(
    metadata: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    n: int,
    m: int,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Y = S @ X``: ``S`` ``(M, K)`` in packed ``n:m``, ``x`` ``(K, N)`` → ``(M, N)`` in
    ``x.dtype``; ``K`` is read from ``x``. ``values`` have the dtype of ``x``, or are int8
    with an fp32, bf16 or fp16 ``x`` (W8A16: the integers are multiplied as they are, no
    scales)."""
    _check_nm(n, m)
    _check_operands(values, metadata, int8=True)
    check_values("x", x, ndim=2)
    check_spmm_dtypes(values, x)
    device = check_device(values=values, metadata=metadata, x=x)
    rows = values.shape[0]
    k, cols = x.shape
    g = _check_packed(values, metadata, rows, k, n, m)
    y = check_out(out, (rows, cols), x.dtype, device)
    if rows == 0 or cols == 0:
        return y
    if g == 0:
        return y.zero_()

    def grid(meta):
        return (triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(cols, meta["BLOCK_N"]))

    wrap_triton(_nm_spmm_kernel)[grid](
        values,
        metadata,
        x,
        y,
        rows,
        cols,
        k,
        g,
        values.stride(0),
        values.stride(1),
        metadata.stride(0),
        metadata.stride(1),
        x.stride(0),
        x.stride(1),
        y.stride(0),
        y.stride(1),
        **_tile_params(n, m, x.dtype),
    )
    return y


def nm_spmm_t(
    metadata: torch.Tensor,
    values: torch.Tensor,
    d: torch.Tensor,
    num_cols: int,
    n: int,
    m: int,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Z = S^T @ D``: ``S`` ``(M, num_cols)`` in packed ``n:m``, ``d`` ``(M, N)`` →
    ``(num_cols, N)`` in ``d.dtype``. A direct kernel: each program owns whole groups of
    ``Z``'s rows, so there are no atomics and no transposed copy of ``S``."""
    _check_nm(n, m)
    _check_operands(values, metadata)
    check_values("d", d, ndim=2)
    check_same_dtype("values", values, d=d)
    device = check_device(values=values, metadata=metadata, d=d)
    check_size("num_cols", num_cols)
    rows, cols = d.shape
    check_dim("d", rows, values.shape[0], "d.shape[0] = values.shape[0]")
    g = _check_packed(values, metadata, rows, num_cols, n, m)
    z = check_out(out, (num_cols, cols), d.dtype, device)
    if num_cols == 0 or cols == 0:
        return z
    if rows == 0:
        return z.zero_()
    params = _tile_params(n, m, d.dtype)

    def grid(meta):
        groups = meta["BLOCK_K"] // params["M_PAD"]
        return (triton.cdiv(g, groups), triton.cdiv(cols, meta["BLOCK_N"]))

    wrap_triton(_nm_spmm_t_kernel)[grid](
        values,
        metadata,
        d,
        z,
        rows,
        cols,
        num_cols,
        g,
        values.stride(0),
        values.stride(1),
        metadata.stride(0),
        metadata.stride(1),
        d.stride(0),
        d.stride(1),
        z.stride(0),
        z.stride(1),
        **params,
    )
    return z


def nm_sddmm(
    metadata: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    n: int,
    m: int,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``V[i, g*n + s] = <A[i, :], B[g*m + pos(i, g, s), :]>`` → ``(M, G * n)`` in ``a.dtype``,
    one product per slot, unused slots included. ``a`` is ``(M, N)``, ``b`` is ``(K, N)``,
    ``G = ceil(K / m)``."""
    _check_nm(n, m)
    check_tensor("metadata", metadata, ndim=2, dtypes=(torch.uint8,))
    check_values("a", a, ndim=2)
    check_values("b", b, ndim=2)
    check_same_dtype("a", a, b=b)
    device = check_device(metadata=metadata, a=a, b=b)
    rows, inner = a.shape
    k = b.shape[0]
    check_dim("b", b.shape[1], inner, "b.shape[1] = a.shape[1]")
    g = _check_packed(None, metadata, rows, k, n, m)
    v = check_out(out, (rows, g * n), a.dtype, device)
    if rows == 0 or g == 0:
        return v
    if inner == 0:
        return v.zero_()
    params = _tile_params(n, m, a.dtype)

    def grid(meta):
        groups = meta["BLOCK_K"] // params["M_PAD"]
        return (triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(g, groups))

    wrap_triton(_nm_sddmm_kernel)[grid](
        metadata,
        a,
        b,
        v,
        rows,
        inner,
        k,
        g,
        metadata.stride(0),
        metadata.stride(1),
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        v.stride(0),
        v.stride(1),
        **params,
    )
    return v
