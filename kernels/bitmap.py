"""Bitmap kernels: ``Y = S @ X`` (SpMM), ``Z = S^T @ D`` (SpMM-T) and the SDDMM on the pattern.

``S`` is ``(M, K)`` in the bitmap layout:

- ``row_offsets`` int32 ``(M + 1,)``: ``row_offsets[0] = 0``, non-decreasing, row ``i`` holds
  ``row_offsets[i + 1] - row_offsets[i]`` values (the set bits of its bitmap row),
  ``row_offsets[M] = nnz``;
- ``bitmap`` uint8 ``(M, W)``, ``W = 8 * ceil(K / 64)`` (rows padded to whole 64-bit words):
  column ``j`` of row ``i`` is stored iff bit ``j % 8`` (least significant first) of
  ``bitmap[i, j // 8]`` is set; bits of columns ``j >= K`` are zero;
- ``values`` ``(nnz,)``: row ``i``'s stored values in increasing column order at
  ``values[row_offsets[i]:row_offsets[i + 1]]``.

Every kernel expands ``BLOCK_K`` columns of ``BLOCK_M`` rows at a time: it loads the chunk's
``BLOCK_K / 8`` bitmap bytes per row (contiguous), expands them to a ``[BLOCK_M, BLOCK_K]`` tile
of bits, and finds each set bit's index into ``values`` as ``row_offsets[i]`` + the set bits of
the row before the chunk + the exclusive prefix sum of the bits inside the chunk (`tl.cumsum`).
A masked gather of those values gives the chunk of ``S`` as a dense tile, multiplied with
`tl.dot` (fp32 sums, fp64 for fp64; fp32 products follow PyTorch's TF32 switch, see
kernels/autotune.py). The set bits before the chunk are a running count where a program walks
its rows' columns in order (SpMM); where programs own column blocks (SpMM-T, SDDMM) they are
read from a per-row prefix of the 64-bit words' popcounts, computed by torch ops in the
launcher (:func:`bitmap_word_prefix`; 4 bytes per row and 64-bit word, half the bitmap's
size).

The launchers check what costs O(1) (types, dtypes, shapes, devices, the bitmap's width); the
structure itself (popcounts against ``row_offsets``) is validated elsewhere. Whatever it holds,
no kernel reads or writes outside its tensors: every value index is masked to ``[0, nnz)``,
rows to ``[0, M)``, bitmap bytes to ``[0, W)`` and columns to ``[0, K)`` (bits of columns
``>= K`` are ignored).
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


def bitmap_width(k: int) -> int:
    """Bytes per bitmap row for ``k`` columns: whole 64-bit words, ``8 * ceil(k / 64)``."""
    return 8 * -(-k // 64)


def bitmap_word_prefix(bitmap: torch.Tensor) -> torch.Tensor:
    """``(M, W // 8)`` int32: for each row, the set bits before each of its 64-bit words (the
    exclusive prefix sum of the words' popcounts). Torch ops of static output shape (so they
    trace under ``torch.compile``): a SWAR popcount of each byte in uint8 (logical shifts, no
    overflow), summed per word, then a cumsum. Bits of a row's last word never count, so
    padding bits past ``K`` cannot shift any index."""
    m, w = bitmap.shape
    x = bitmap
    x = x - ((x >> 1) & 0x55)
    x = (x & 0x33) + ((x >> 2) & 0x33)
    x = (x + (x >> 4)) & 0x0F
    words = x.reshape(m, w // 8, 8).sum(dim=2, dtype=torch.int32)
    return torch.cumsum(words, dim=1, dtype=torch.int32) - words


def _keep_block_n_within_n(cfgs, named_args, **kwargs):
    """Drop configs whose ``BLOCK_N`` is wider than ``N`` needs."""
    widest = max(16, next_pow2(named_args["N"]))
    kept = [c for c in cfgs if c.kwargs["BLOCK_N"] <= widest]
    return kept or cfgs[:1]


def _prune_spmm(cfgs, named_args, **kwargs):
    """As :func:`_keep_block_n_within_n`; float64 (checks, not speed) takes one small tile for
    its broadcast product (see ``FP64`` in the kernel)."""
    if kwargs.get("FP64"):
        return [_config(16, 16, 16, 4, 1)]
    return _keep_block_n_within_n(cfgs, named_args)


def _config(bm, bn, bk, warps, stages):
    return triton.Config(
        {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages
    )


@triton.jit
def _chunk_bits(
    bm_ptr,
    rows,
    row_ok,
    k0,
    K,
    W,
    stride_bm,
    stride_bb,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Bits of columns ``k0 .. k0 + BLOCK_K`` of rows ``rows`` as a ``[BLOCK_M, BLOCK_K]``
    int32 tile (1 where stored), 0 for rows out of range and columns ``>= K``. The row's
    ``BLOCK_K / 8`` bytes load as one contiguous piece, then each is shifted apart."""
    byte_idx = k0 // 8 + tl.arange(0, BLOCK_K // 8)
    byte = tl.load(
        bm_ptr + rows[:, None] * stride_bm + byte_idx[None, :] * stride_bb,
        mask=row_ok[:, None] & (byte_idx < W)[None, :],
        other=0,
    ).to(tl.int32)
    shift = tl.arange(0, 8)
    bits = tl.reshape((byte[:, :, None] >> shift[None, None, :]) & 1, (BLOCK_M, BLOCK_K))
    col = k0 + tl.arange(0, BLOCK_K)
    return tl.where((col < K)[None, :], bits, 0)


@triton.jit
def _value_index(bits, base, NNZ):
    """Index into ``values`` of each set bit of ``bits`` (``[BLOCK_M, BLOCK_K]``): ``base``
    (``[BLOCK_M]``: the row's offset plus its set bits before the chunk) + the set bits before
    it in the chunk. Returns the index, 0 where not to be used, and whether to use it: a set
    bit whose index lies in ``[0, NNZ)``, so no structure can reach outside ``values``."""
    p = base[:, None] + tl.cumsum(bits, axis=1) - bits
    ok = (bits != 0) & (p >= 0) & (p < NNZ)
    return tl.where(ok, p, 0), ok


# Y = S X: a program owns BLOCK_M rows x BLOCK_N columns of Y and walks K in BLOCK_K chunks,
# keeping a running count of each row's set bits. Narrow X (N <= 16) is bound by reading S, so
# small BLOCK_M gives enough programs; wide X is bound by building the tiles and the dots.
_SPMM_CONFIGS = configs(
    [
        _config(16, 16, 128, 4, 3),
        _config(32, 16, 128, 4, 3),
        _config(64, 16, 64, 4, 3),
        _config(16, 16, 256, 4, 3),
        _config(64, 64, 64, 4, 3),
        _config(64, 128, 64, 8, 4),
        _config(128, 64, 64, 8, 3),
        _config(128, 128, 64, 8, 3),
        _config(64, 128, 128, 8, 3),
    ],
    _config(16, 16, 32, 1, 1),
)


@triton.autotune(
    configs=_SPMM_CONFIGS,
    key=["M", "N", "K"],
    prune_configs_by={"early_config_prune": _prune_spmm},
)
@triton.jit
def _bitmap_spmm_kernel(
    off_ptr,
    bm_ptr,
    val_ptr,
    x_ptr,
    y_ptr,
    M,
    N,
    K,
    W,
    NNZ,
    stride_bm,
    stride_bb,
    stride_xk,
    stride_xn,
    stride_ym,
    stride_yn,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    tl.static_assert(BLOCK_K % 8 == 0, "BLOCK_K must hold whole bitmap bytes")
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    # Values are read in the dot's operand dtype: x's, or fp32 under DOT_FP32. So int8 values
    # (W8A16) are converted in registers (exact), since tl.dot takes floats; under the
    # interpreter straight to fp32, as its int -> bf16 cast keeps the integer as raw bf16 bits.
    S_DTYPE: tl.constexpr = tl.float32 if DOT_FP32 else x_ptr.dtype.element_ty
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    base = tl.load(off_ptr + rows, mask=row_ok, other=0)
    rows = rows.to(tl.int64)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for k0 in range(0, K, BLOCK_K):
        bits = _chunk_bits(bm_ptr, rows, row_ok, k0, K, W, stride_bm, stride_bb, BLOCK_M, BLOCK_K)
        p, ok = _value_index(bits, base, NNZ)
        base += tl.sum(bits, axis=1)
        s = tl.load(val_ptr + p, mask=ok, other=0).to(S_DTYPE)
        col = (k0 + tl.arange(0, BLOCK_K)).to(tl.int64)
        x = tl.load(
            x_ptr + col[:, None] * stride_xk + n[None, :] * stride_xn,
            mask=(col < K)[:, None] & n_ok[None, :],
            other=0.0,
        )
        if DOT_FP32:
            x = x.to(tl.float32)
        if FP64:
            # Triton 3.6 failed to lower this kernel's float64 tl.dot for sm_90 on an H200
            # ("fp64 don't support largeK MMA" in its MMAv2 lowering; N:M's float64 dot
            # compiled): a broadcast product on a small tile (_prune_spmm) instead
            acc += tl.sum(s[:, :, None] * x[None, :, :], axis=1)
        else:
            acc = tl.dot(s, x, acc, input_precision=PRECISION, out_dtype=acc.dtype)

    y = y_ptr + rows[:, None] * stride_ym + n[None, :] * stride_yn
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & n_ok[None, :])


# Z = S^T D: a program owns BLOCK_K rows of Z (columns of S; whole 64-bit words, so the set
# bits before them are one entry of the word prefix) and walks all M rows of S and D.
_SPMM_T_CONFIGS = configs(
    [
        _config(32, 16, 64, 4, 3),
        _config(64, 16, 64, 4, 3),
        _config(64, 64, 64, 4, 3),
        _config(64, 128, 64, 8, 3),
        _config(64, 64, 128, 8, 3),
        _config(32, 128, 128, 8, 3),
        _config(128, 64, 64, 8, 3),
    ],
    _config(16, 16, 64, 1, 1),
)


@triton.autotune(
    configs=_SPMM_T_CONFIGS,
    key=["M", "N", "K"],
    prune_configs_by={"early_config_prune": _keep_block_n_within_n},
)
@triton.jit
def _bitmap_spmm_t_kernel(
    off_ptr,
    bm_ptr,
    pre_ptr,
    val_ptr,
    d_ptr,
    z_ptr,
    M,
    N,
    K,
    W,
    NNZ,
    stride_bm,
    stride_bb,
    stride_pm,
    stride_dm,
    stride_dn,
    stride_zk,
    stride_zn,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    tl.static_assert(BLOCK_K % 64 == 0, "BLOCK_K must hold whole 64-bit words")
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    k0 = tl.program_id(0) * BLOCK_K
    word = k0 // 64  # < W / 8: the grid has k0 < K
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N

    acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=ACC)
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        start = tl.load(off_ptr + rows, mask=row_ok, other=0)
        rows = rows.to(tl.int64)
        before = tl.load(pre_ptr + rows * stride_pm + word, mask=row_ok, other=0)
        bits = _chunk_bits(bm_ptr, rows, row_ok, k0, K, W, stride_bm, stride_bb, BLOCK_M, BLOCK_K)
        p, ok = _value_index(bits, start + before, NNZ)
        s = tl.load(val_ptr + p, mask=ok, other=0.0)
        d = tl.load(
            d_ptr + rows[:, None] * stride_dm + n[None, :] * stride_dn,
            mask=row_ok[:, None] & n_ok[None, :],
            other=0.0,
        )
        if DOT_FP32:
            s = s.to(tl.float32)
            d = d.to(tl.float32)
        acc = tl.dot(tl.trans(s), d, acc, input_precision=PRECISION, out_dtype=acc.dtype)

    col = (k0 + tl.arange(0, BLOCK_K)).to(tl.int64)
    z = z_ptr + col[:, None] * stride_zk + n[None, :] * stride_zn
    tl.store(z, acc.to(z_ptr.dtype.element_ty), mask=(col < K)[:, None] & n_ok[None, :])


# V = (A B^T) at the pattern: a program owns BLOCK_M rows x BLOCK_K columns of S (whole words),
# computes that tile of A B^T over N in BLOCK_N steps with tl.dot and writes the stored entries.
# A tile with no stored entry skips the products.
_SDDMM_CONFIGS = configs(
    [
        _config(64, 32, 64, 4, 3),
        _config(64, 64, 64, 4, 3),
        _config(128, 32, 64, 8, 3),
        _config(64, 64, 128, 8, 3),
        _config(128, 64, 64, 8, 3),
        _config(32, 32, 64, 4, 3),
    ],
    _config(16, 16, 64, 1, 1),
)


@triton.autotune(
    configs=_SDDMM_CONFIGS,
    key=["M", "N", "K"],
    prune_configs_by={"early_config_prune": _keep_block_n_within_n},
)
@triton.jit
def _bitmap_sddmm_kernel(
    off_ptr,
    bm_ptr,
    pre_ptr,
    a_ptr,
    b_ptr,
    v_ptr,
    M,
    N,
    K,
    W,
    NNZ,
    stride_bm,
    stride_bb,
    stride_pm,
    stride_am,
    stride_an,
    stride_bk,
    stride_bn,
    stride_v,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    FP64: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    tl.static_assert(BLOCK_K % 64 == 0, "BLOCK_K must hold whole 64-bit words")
    ACC: tl.constexpr = tl.float64 if FP64 else tl.float32
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    start = tl.load(off_ptr + rows, mask=row_ok, other=0)
    rows = rows.to(tl.int64)
    k0 = tl.program_id(1) * BLOCK_K
    word = k0 // 64  # < W / 8: the grid has k0 < K
    before = tl.load(pre_ptr + rows * stride_pm + word, mask=row_ok, other=0)
    bits = _chunk_bits(bm_ptr, rows, row_ok, k0, K, W, stride_bm, stride_bb, BLOCK_M, BLOCK_K)
    p, ok = _value_index(bits, start + before, NNZ)

    if tl.sum(ok.to(tl.int32)) > 0:
        col = (k0 + tl.arange(0, BLOCK_K)).to(tl.int64)
        col_ok = col < K
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
        tl.store(v_ptr + p.to(tl.int64) * stride_v, acc.to(v_ptr.dtype.element_ty), mask=ok)


def _check_parts(row_offsets: object, bitmap: object) -> int:
    """Types of the structure, and ``len(row_offsets) = M + 1``; returns ``M``."""
    check_tensor("row_offsets", row_offsets, ndim=1, dtypes=(torch.int32,))
    check_tensor("bitmap", bitmap, ndim=2, dtypes=(torch.uint8,))
    m = bitmap.shape[0]
    check_dim("row_offsets", row_offsets.shape[0], m + 1, "len(row_offsets) = bitmap.shape[0] + 1")
    return m


def _check_width(bitmap: torch.Tensor, k: int, k_name: str) -> int:
    """``bitmap.shape[1] = 8 * ceil(K / 64)``; returns it."""
    w = bitmap_width(k)
    check_dim("bitmap", bitmap.shape[1], w, f"bitmap.shape[1] = 8 * ceil({k_name} / 64)")
    return w


def _dot_params(dtype: torch.dtype) -> dict:
    return {
        "DOT_FP32": dot_in_fp32(dtype),
        "PRECISION": dot_precision(dtype),
        "FP64": dtype == torch.float64,
    }


def bitmap_spmm(
    row_offsets: torch.Tensor,
    bitmap: torch.Tensor,
    values: torch.Tensor,
    x: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Y = S @ X``: ``S`` ``(M, K)`` in the bitmap layout, ``x`` ``(K, N)`` → ``(M, N)`` in
    ``x.dtype``; ``K`` is read from ``x`` (``bitmap.shape[1]`` must be ``8 * ceil(K / 64)``).

    ``values`` have the dtype of ``x``, or are int8 with an fp32, bf16 or fp16 ``x`` (W8A16:
    the integers are multiplied as they are, no scales). ``out``, if given, is an ``(M, N)``
    tensor (any strides) that receives the result.
    """
    m = _check_parts(row_offsets, bitmap)
    check_values("values", values, ndim=1, int8=True)
    check_values("x", x, ndim=2)
    check_spmm_dtypes(values, x)
    device = check_device(row_offsets=row_offsets, bitmap=bitmap, values=values, x=x)
    k, n = x.shape
    w = _check_width(bitmap, k, "x.shape[0]")
    nnz = values.shape[0]
    y = check_out(out, (m, n), x.dtype, device)
    if m == 0 or n == 0:
        return y
    if nnz == 0 or k == 0:
        return y.zero_()

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))

    wrap_triton(_bitmap_spmm_kernel)[grid](
        row_offsets.contiguous(),
        bitmap,
        values.contiguous(),
        x,
        y,
        m,
        n,
        k,
        w,
        nnz,
        bitmap.stride(0),
        bitmap.stride(1),
        x.stride(0),
        x.stride(1),
        y.stride(0),
        y.stride(1),
        **_dot_params(x.dtype),
    )
    return y


def bitmap_spmm_t(
    row_offsets: torch.Tensor,
    bitmap: torch.Tensor,
    values: torch.Tensor,
    d: torch.Tensor,
    num_cols: int,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Z = S^T @ D``: ``S`` ``(M, num_cols)`` in the bitmap layout, ``d`` ``(M, N)`` →
    ``(num_cols, N)`` in ``d.dtype``.

    A direct kernel, deterministic, no atomics and no transposed copy of ``S``: each program
    owns ``BLOCK_K`` rows of ``Z`` and walks all rows of ``S``; the set bits before its columns
    come from :func:`bitmap_word_prefix` (torch ops, ``(M, W / 8)`` int32, per call).
    """
    m = _check_parts(row_offsets, bitmap)
    check_values("values", values, ndim=1)
    check_values("d", d, ndim=2)
    check_same_dtype("values", values, d=d)
    device = check_device(row_offsets=row_offsets, bitmap=bitmap, values=values, d=d)
    check_size("num_cols", num_cols)
    check_dim("d", d.shape[0], m, "d.shape[0] = bitmap.shape[0]")
    w = _check_width(bitmap, num_cols, "num_cols")
    n = d.shape[1]
    nnz = values.shape[0]
    z = check_out(out, (num_cols, n), d.dtype, device)
    if num_cols == 0 or n == 0:
        return z
    if m == 0 or nnz == 0:
        return z.zero_()
    prefix = bitmap_word_prefix(bitmap)

    def grid(meta):
        return (triton.cdiv(num_cols, meta["BLOCK_K"]), triton.cdiv(n, meta["BLOCK_N"]))

    wrap_triton(_bitmap_spmm_t_kernel)[grid](
        row_offsets.contiguous(),
        bitmap,
        prefix,
        values.contiguous(),
        d,
        z,
        m,
        n,
        num_cols,
        w,
        nnz,
        bitmap.stride(0),
        bitmap.stride(1),
        prefix.stride(0),
        d.stride(0),
        d.stride(1),
        z.stride(0),
        z.stride(1),
        **_dot_params(d.dtype),
    )
    return z


def bitmap_sddmm(
    row_offsets: torch.Tensor,
    bitmap: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    nnz: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``V[p] = <A[i, :], B[j, :]>`` for the ``p``-th stored ``(i, j)`` (in the order of
    ``values``) → ``(nnz,)`` in ``a.dtype``. ``a`` is ``(M, N)``, ``b`` is ``(K, N)``; with
    ``A = dY`` and ``B = X`` it is the gradient of ``values`` in ``Y = S @ X``.

    ``nnz`` (the length of ``values``) defaults to ``row_offsets[-1]``, read from the tensor:
    a device-to-host copy and, under ``torch.compile``, a data-dependent size. Pass it (e.g.
    ``values.shape[0]``) to avoid both.
    """
    m = _check_parts(row_offsets, bitmap)
    check_values("a", a, ndim=2)
    check_values("b", b, ndim=2)
    check_same_dtype("a", a, b=b)
    device = check_device(row_offsets=row_offsets, bitmap=bitmap, a=a, b=b)
    check_dim("a", a.shape[0], m, "a.shape[0] = bitmap.shape[0]")
    check_dim("b", b.shape[1], a.shape[1], "b.shape[1] = a.shape[1]")
    k, n = b.shape
    w = _check_width(bitmap, k, "b.shape[0]")
    if nnz is None:
        nnz = int(row_offsets[-1])
        if nnz < 0:
            raise ValueError(f"row_offsets: row_offsets[-1] = nnz must be >= 0, got {nnz}")
    else:
        check_size("nnz", nnz)
    v = check_out(out, (nnz,), a.dtype, device)
    if nnz == 0:
        return v
    if n == 0 or m == 0 or k == 0:
        return v.zero_()
    prefix = bitmap_word_prefix(bitmap)

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(k, meta["BLOCK_K"]))

    wrap_triton(_bitmap_sddmm_kernel)[grid](
        row_offsets.contiguous(),
        bitmap,
        prefix,
        a,
        b,
        v,
        m,
        n,
        k,
        w,
        nnz,
        bitmap.stride(0),
        bitmap.stride(1),
        prefix.stride(0),
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        v.stride(0),
        **_dot_params(a.dtype),
    )
    return v
