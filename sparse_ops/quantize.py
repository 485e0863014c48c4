"""int8 values in every layout: symmetric quantization of a sparse matrix's kept values.

A quantized matrix is a matrix of its layout (CSR, bitmap, BSR, N:M) whose ``values`` are
int8 integers ``q`` and which carries ``scales`` and ``group_size``:

- per output row (``group_size=None``): ``scales`` is ``(M, 1)``, the weight at ``(i, j)`` is
  ``q * scales[i, 0]``;
- per group of ``G`` columns along K (``group_size=G``, e.g. 32 / 64 / 128): ``scales`` is
  ``(M, ceil(K / G))``, the weight at ``(i, j)`` is ``q * scales[i, j // G]``.

Scales are float32 or bfloat16 (``scale_dtype``); ``q = round(w / scale)`` clamped to
``[-127, 127]`` with ``scale = max |w| / 127`` over the row (group) of stored values (1 for a
row or group with none). Prune first, then quantize the kept values (``so.sparsify(...,
weight_dtype="int8")`` does both).

Products (``so.matmul``, ``so.linear``, ``SparseLinear``) take a float32, bfloat16 or float16
activation and return that dtype; int8 weights are **inference only** (no backward):

- per row, the kernels read the int8 values as stored, widened in registers (C++: every layout
  and product width; Triton: ``spmm``), and the output rows are scaled after the product
  (bias added after the scale);
- per group, the values are dequantized into the activation dtype for the call (one pass over
  the values) and the float products run on them: correct on every backend, but the kernels
  do not yet apply group scales in registers.

``to_dense()`` returns the dequantized weight; ``S.nbytes`` counts the scales;
``S.dequantize()`` gives the float matrix of the same structure.
"""

from __future__ import annotations

import torch

from .format import SparseMatrix

QUANT_DTYPES: tuple[str, ...] = ("int8",)
SCALE_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16)
QMAX = 127


def check_group_size(group_size: object) -> int | None:
    """``group_size`` as an int >= 1 or None (per row); TypeError / ValueError naming it."""
    if group_size is None:
        return None
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise TypeError(f"group_size: expected an int or None, got {type(group_size).__name__}")
    if group_size < 1:
        raise ValueError(f"group_size: expected a positive int (e.g. 32, 64, 128) or None, "
                         f"got {group_size}")
    return group_size


def check_weight_dtype(weight_dtype: object) -> str | None:
    """``weight_dtype`` as one of ``QUANT_DTYPES`` or None (values keep their dtype)."""
    if weight_dtype is None:
        return None
    if weight_dtype == torch.int8:
        return "int8"
    if not isinstance(weight_dtype, str) or weight_dtype not in QUANT_DTYPES:
        raise ValueError(f"weight_dtype: expected one of {QUANT_DTYPES} or None, got "
                         f"{weight_dtype!r}")
    return weight_dtype


def num_scale_groups(k: int, group_size: int | None) -> int:
    """Columns of ``scales``: 1 per row, else ``ceil(k / group_size)``."""
    return 1 if group_size is None else max(1, -(-k // group_size))


def value_coords(s: SparseMatrix) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column (int64, ``(nnz,)``, in the flattened order of ``s.values``) of every
    stored value, from the layout's own reference sampled product (exact in float64)."""
    m, k = s.shape
    dev = s.values.device
    f64 = torch.float64
    ar_m = torch.arange(m, dtype=f64, device=dev).unsqueeze(1)
    ar_k = torch.arange(k, dtype=f64, device=dev).unsqueeze(1)
    ones_m = torch.ones(m, 1, dtype=f64, device=dev)
    ones_k = torch.ones(k, 1, dtype=f64, device=dev)
    ref = type(s).reference_sddmm
    rows = ref(*s.structure(), ar_m, ones_k, *s.params()).reshape(-1)
    cols = ref(*s.structure(), ones_m, ar_k, *s.params()).reshape(-1)
    return rows.round().long(), cols.round().long()


def group_index(s: SparseMatrix, group_size: int | None) -> torch.Tensor:
    """Flat index into ``scales.reshape(-1)`` of every stored value (int64, ``(nnz,)``)."""
    rows, cols = value_coords(s)
    if group_size is None:
        return rows
    return rows * num_scale_groups(s.shape[1], group_size) + torch.div(
        cols, group_size, rounding_mode="floor")


def _group_index_cached(s: SparseMatrix) -> torch.Tensor:
    gid = s.__dict__.get("_group_index")
    if gid is None:
        gid = group_index(s, s.group_size)
        s.__dict__["_group_index"] = gid
    return gid


def quantize(
    s: SparseMatrix,
    dtype: str = "int8",
    group_size: int | None = None,
    scale_dtype: torch.dtype = torch.float32,
) -> SparseMatrix:
    """``s`` with its stored values quantized to int8 (symmetric), same layout and structure.

    ``group_size``: None for one scale per output row, else one per ``group_size`` columns
    along K. ``scale_dtype``: float32 or bfloat16. Returns a new matrix (``values`` int8 with
    ``s``'s shape, ``scales (M, groups)``, ``group_size``); ``s`` is unchanged.
    """
    if not isinstance(s, SparseMatrix):
        raise TypeError(f"s: expected a sparse_ops matrix, got {type(s).__name__}")
    if dtype != "int8" and dtype != torch.int8:
        raise ValueError(f"dtype: expected 'int8', got {dtype!r}")
    group_size = check_group_size(group_size)
    if scale_dtype not in SCALE_DTYPES:
        raise TypeError(f"scale_dtype: expected one of {SCALE_DTYPES}, got {scale_dtype}")
    if s.scales is not None:
        raise ValueError("s: already quantized (dequantize() it first to requantize)")
    if not s.values.is_floating_point():
        raise TypeError(f"s: expected float values, got {s.values.dtype}")
    m, k = s.shape
    groups = num_scale_groups(k, group_size)
    gid = group_index(s, group_size)
    w = s.values.detach().reshape(-1).to(torch.float32)
    amax = torch.zeros(m * groups, dtype=torch.float32, device=w.device)
    amax.scatter_reduce_(0, gid, w.abs(), reduce="amax", include_self=True)
    scales = (amax / QMAX).to(scale_dtype)
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    step = scales.to(torch.float32)[gid]
    q = torch.round(w / step).clamp_(-QMAX, QMAX).to(torch.int8).reshape(s.values.shape)
    out = type(s).from_parts(
        {**{n: getattr(s, n) for n in s.tensor_names}, "values": q}, s.shape, s.params(),
        validate=False,
    )
    out.scales = scales.reshape(m, groups)
    out.group_size = group_size
    out.__dict__["_group_index"] = gid
    return out


def check_quantized(s: SparseMatrix, name: str = "s", finite: bool = True) -> None:
    """The quantization of ``s`` is consistent: int8 values, float32 / bfloat16 ``scales`` of
    shape ``(M, groups)`` on the values' device, ``group_size`` None or >= 1 (O(1)), and with
    ``finite`` every scale finite (O(M groups)); else ValueError / TypeError naming ``name``."""
    if s.scales is None:
        return
    group_size = check_group_size(s.group_size)
    if s.values.dtype != torch.int8:
        raise TypeError(f"{name}.values: a quantized matrix holds int8 values, got "
                        f"{s.values.dtype}")
    if s.scales.dtype not in SCALE_DTYPES:
        raise TypeError(f"{name}.scales: expected one of {SCALE_DTYPES}, got {s.scales.dtype}")
    want = (s.shape[0], num_scale_groups(s.shape[1], group_size))
    if tuple(s.scales.shape) != want:
        raise ValueError(f"{name}.scales: expected shape {want} (rows, groups of "
                         f"{group_size or 'a whole row'}), got {tuple(s.scales.shape)}")
    if s.scales.device != s.values.device:
        raise ValueError(f"{name}.scales: on {s.scales.device}, the values on "
                         f"{s.values.device}")
    if finite and not bool(torch.isfinite(s.scales).all()):
        raise ValueError(f"{name}.scales: holds inf or NaN")


def dequantized_values(s: SparseMatrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The stored values of a quantized ``s`` as weights (``q * scale``), shaped like
    ``s.values``, in ``dtype``."""
    if s.scales is None:
        raise ValueError("s: not quantized")
    if s.group_size is None:
        shape = (-1,) + (1,) * (s.values.dim() - 1)
        rows = s.scales.reshape(-1)
        if s.values.shape[0] == s.shape[0] and s.values.dim() == 2:  # N:M: (M, slots)
            w = s.values.to(torch.float32) * rows.to(torch.float32).reshape(shape)
            return w.to(dtype)
    gid = _group_index_cached(s)
    step = s.scales.reshape(-1).to(torch.float32)[gid]
    return (s.values.reshape(-1).to(torch.float32) * step).reshape(s.values.shape).to(dtype)


def row_scales(s: SparseMatrix, dtype: torch.dtype) -> torch.Tensor:
    """``(M,)`` per-row scales of ``s`` in ``dtype``, converted once per dtype and kept."""
    cache = s.__dict__.setdefault("_row_scales", {})
    r = cache.get(dtype)
    if r is None or r.device != s.scales.device:
        r = s.scales.reshape(-1).to(dtype)
        cache[dtype] = r
    return r


def quantization_error(s: SparseMatrix, q: SparseMatrix, x: torch.Tensor) -> float:
    """Relative error ``||q @ x - s @ x|| / ||s @ x||`` of a quantized matrix ``q`` against
    the float matrix ``s`` it came from, on activations ``x (K, N)`` (both through the
    products, summed in float64)."""
    from .matmul import matmul

    with torch.no_grad():
        ref = matmul(s, x.to(s.dtype)).double()
        got = matmul(q, x.to(torch.float32 if s.dtype == torch.float64 else s.dtype)).double()
    den = ref.norm()
    return float((got - ref).norm() / den) if den > 0 else float((got - ref).norm())
