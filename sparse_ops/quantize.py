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
- per group, on the CPU, N:M (``torch.ops.sparse_ops.nm_spmm_grouped``, group_size a
  multiple of m) and bitmap (``torch.ops.sparse_ops.bitmap_spmm_grouped``) apply the scales
  inside the product: the decode SpMV (N = 1) scales each group's partial sum in registers,
  the wider products scale each row of the dense panel as it is expanded (or the row chunk's
  widened values, on the sparse paths). Elsewhere (CSR, BSR, Triton) the values are
  dequantized into the activation dtype for the call (one pass over the values:
  ``torch.ops.sparse_ops.dequant_runs`` on the CPU, over runs of values sharing a scale) and
  the float products run on them.

With ``activation_dtype="int8"`` the wide products of bitmap, N:M and BSR matrices may instead
quantize the activations per token and multiply in integers (W8A8, ``sparse_ops/w8a8.py``).

``to_dense()`` returns the dequantized weight; ``S.nbytes`` counts the scales;
``S.dequantize()`` gives the float matrix of the same structure.
"""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.sparse_ops.dequant_runs)
from .format import SparseMatrix
from .registry import check_same_device

QUANT_DTYPES: tuple[str, ...] = ("int8",)
ACTIVATION_DTYPES: tuple[str, ...] = ("int8",)
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


def _check_int8_name(value: object, name: str, allowed: tuple[str, ...]) -> str | None:
    """``value`` as one of ``allowed`` (``torch.int8`` spelled ``"int8"``) or None;
    ValueError naming ``name`` otherwise."""
    if value is None:
        return None
    if value == torch.int8:
        return "int8"
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed} or None, got {value!r}")
    return value


def check_weight_dtype(weight_dtype: object) -> str | None:
    """``weight_dtype`` as one of ``QUANT_DTYPES`` or None (values keep their dtype)."""
    return _check_int8_name(weight_dtype, "weight_dtype", QUANT_DTYPES)


def check_activation_dtype(activation_dtype: object) -> str | None:
    """``activation_dtype`` as one of ``ACTIVATION_DTYPES`` or None (float activations)."""
    return _check_int8_name(activation_dtype, "activation_dtype", ACTIVATION_DTYPES)


def num_scale_groups(k: int, group_size: int | None) -> int:
    """Columns of ``scales``: 1 per row, else ``ceil(k / group_size)``."""
    return 1 if group_size is None else max(1, -(-k // group_size))


def _coord(s: SparseMatrix, axis: int) -> torch.Tensor:
    """Row (axis 0) or column (axis 1) of every stored value (int64, ``(nnz,)``, in the
    flattened order of ``s.values``), from the layout's own reference sampled product with an
    index vector on that side and ones on the other (exact in float64)."""
    m, k = s.shape
    dev = s.values.device
    f64 = torch.float64
    a = (torch.arange(m, dtype=f64, device=dev) if axis == 0
         else torch.ones(m, dtype=f64, device=dev)).unsqueeze(1)
    b = (torch.ones(k, dtype=f64, device=dev) if axis == 0
         else torch.arange(k, dtype=f64, device=dev)).unsqueeze(1)
    return type(s).reference_sddmm(*s.structure(), a, b, *s.params()).reshape(-1).round().long()


def group_index(s: SparseMatrix, group_size: int | None) -> torch.Tensor:
    """Flat index into ``scales.reshape(-1)`` of every stored value (int64, ``(nnz,)``)."""
    rows = _coord(s, 0)
    if group_size is None:
        return rows
    return rows * num_scale_groups(s.shape[1], group_size) + torch.div(
        _coord(s, 1), group_size, rounding_mode="floor")


def _runs(s: SparseMatrix) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The stored values of a quantized ``s`` as runs sharing one scale: ``run_off`` (int32,
    ``(runs + 1,)``) and, unless run ``r`` uses ``scales.reshape(-1)[r]`` (the values of each
    row and group are contiguous: CSR, bitmap and N:M in their row-major order), the scale
    index of each run (int64, ``(runs,)``: BSR, whose blocks interleave a row's groups).
    Computed once per matrix and kept (about one int32 a group of a row, or a block row)."""
    cached = s.__dict__.get("_runs")
    if cached is not None:
        return cached
    runs = _runs_of(group_index(s, s.group_size), s.scales.numel())
    s.__dict__["_runs"] = runs
    return runs


def _runs_of(gid: torch.Tensor, nscales: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``_runs`` from the flat scale index of every value."""
    nnz = gid.numel()
    if nnz == 0 or bool((gid[1:] >= gid[:-1]).all()):
        counts = torch.bincount(gid, minlength=nscales)
        off = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=gid.device)
        torch.cumsum(counts, 0, out=off[1:])
        runs: tuple[torch.Tensor, torch.Tensor | None] = (off.to(torch.int32), None)
    else:
        starts = torch.nonzero(gid[1:] != gid[:-1]).reshape(-1) + 1
        zero = torch.zeros(1, dtype=torch.int64, device=gid.device)
        end = torch.full((1,), nnz, dtype=torch.int64, device=gid.device)
        off = torch.cat([zero, starts, end])
        runs = (off.to(torch.int32), gid[off[:-1]])
    return runs


def quantize(
    s: SparseMatrix,
    dtype: str = "int8",
    group_size: int | None = None,
    scale_dtype: torch.dtype = torch.float32,
    activation_dtype: str | None = None,
) -> SparseMatrix:
    """``s`` with its stored values quantized to int8 (symmetric), same layout and structure.

    ``group_size``: None for one scale per output row, else one per ``group_size`` columns
    along K. ``scale_dtype``: float32 or bfloat16. ``activation_dtype``: None (products take
    float activations: W8A16), or ``"int8"``: wide products (many tokens) may quantize the
    activations per token to int8 and multiply in integers (W8A8, ``sparse_ops/w8a8.py``)
    where measured faster. Returns a new matrix (``values`` int8 with ``s``'s shape,
    ``scales (M, groups)``, ``group_size``, ``activation_dtype``); ``s`` is unchanged.
    """
    if not isinstance(s, SparseMatrix):
        raise TypeError(f"s: expected a sparse_ops matrix, got {type(s).__name__}")
    if dtype != "int8" and dtype != torch.int8:
        raise ValueError(f"dtype: expected 'int8', got {dtype!r}")
    group_size = check_group_size(group_size)
    activation_dtype = check_activation_dtype(activation_dtype)
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
    out = s.with_values(q)
    out.scales = scales.reshape(m, groups)
    out.group_size = group_size
    out.activation_dtype = activation_dtype
    out.__dict__["_runs"] = _runs_of(gid, scales.numel())
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
    check_activation_dtype(s.activation_dtype)
    if s.scales.device != s.values.device:
        raise ValueError(f"{name}.scales: on {s.scales.device}, the values on "
                         f"{s.values.device}")
    if finite and not bool(torch.isfinite(s.scales).all()):
        raise ValueError(f"{name}.scales: holds inf or NaN")


def dequantized_values(s: SparseMatrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The stored values of a quantized ``s`` as weights (``q * scale``), shaped like
    ``s.values``, in ``dtype``: on the CPU one pass of ``torch.ops.sparse_ops.dequant_runs``
    over the values (threads over runs of one scale), elsewhere plain torch."""
    if s.scales is None:
        raise ValueError("s: not quantized")
    off, index = _runs(s)
    flat = s.scales.reshape(-1)
    run_scales = flat if index is None else flat[index]
    if s.values.is_cpu and dtype in (torch.float32, torch.bfloat16, torch.float16):
        return torch.ops.sparse_ops.dequant_runs(s.values, run_scales, off, dtype)
    counts = (off[1:] - off[:-1]).long()
    step = torch.repeat_interleave(run_scales.to(torch.float32), counts, output_size=s.nnz)
    return (s.values.reshape(-1).to(torch.float32) * step).reshape(s.values.shape).to(dtype)


@torch.library.register_fake("sparse_ops::nm_spmv_grouped")
def _nm_spmv_grouped_fake(metadata: torch.Tensor, values: torch.Tensor, scales: torch.Tensor,
                          x: torch.Tensor, group_size: int, n: int, m: int) -> torch.Tensor:
    return x.new_empty((metadata.shape[0], 1))


@torch.library.register_fake("sparse_ops::bitmap_spmv_grouped")
def _bitmap_spmv_grouped_fake(row_offsets: torch.Tensor, bitmap: torch.Tensor,
                              values: torch.Tensor, scales: torch.Tensor, x: torch.Tensor,
                              group_size: int, nnz: int) -> torch.Tensor:
    return x.new_empty((row_offsets.shape[0] - 1, 1))


@torch.library.register_fake("sparse_ops::nm_spmm_grouped")
def _nm_spmm_grouped_fake(metadata: torch.Tensor, values: torch.Tensor, scales: torch.Tensor,
                          x: torch.Tensor, group_size: int, n: int, m: int) -> torch.Tensor:
    return x.new_empty((metadata.shape[0], x.shape[1]))


@torch.library.register_fake("sparse_ops::bitmap_spmm_grouped")
def _bitmap_spmm_grouped_fake(row_offsets: torch.Tensor, bitmap: torch.Tensor,
                              values: torch.Tensor, scales: torch.Tensor, x: torch.Tensor,
                              group_size: int, nnz: int) -> torch.Tensor:
    return x.new_empty((row_offsets.shape[0] - 1, x.shape[1]))


def _linear_grouped_out(x: torch.Tensor, m: int, values: torch.Tensor) -> torch.Tensor:
    """The linear_grouped ops' output for x (..., K): (B, M) as the transpose of an (M, B)
    tensor for 2-D x, a contiguous (..., M) otherwise; x on the values' device."""
    check_same_device(x, values)
    if x.dim() == 2:
        return x.new_empty((m, x.shape[0])).t()
    return x.new_empty((*x.shape[:-1], m))


@torch.library.register_fake("sparse_ops::nm_linear_grouped")
def _nm_linear_grouped_fake(metadata: torch.Tensor, values: torch.Tensor, scales: torch.Tensor,
                            x: torch.Tensor, bias: torch.Tensor | None, group_size: int, n: int,
                            m: int) -> torch.Tensor:
    return _linear_grouped_out(x, metadata.shape[0], values)


@torch.library.register_fake("sparse_ops::bitmap_linear_grouped")
def _bitmap_linear_grouped_fake(row_offsets: torch.Tensor, bitmap: torch.Tensor,
                                values: torch.Tensor, scales: torch.Tensor, x: torch.Tensor,
                                bias: torch.Tensor | None, group_size: int,
                                nnz: int) -> torch.Tensor:
    return _linear_grouped_out(x, row_offsets.shape[0] - 1, values)


@torch.library.register_fake("sparse_ops::csr_linear_grouped")
def _csr_linear_grouped_fake(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor,
                             scales: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None,
                             group_size: int) -> torch.Tensor:
    return _linear_grouped_out(x, crow.shape[0] - 1, values)


@torch.library.register_fake("sparse_ops::bsr_linear_grouped")
def _bsr_linear_grouped_fake(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor,
                             scales: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None,
                             group_size: int, r: int, c: int) -> torch.Tensor:
    return _linear_grouped_out(x, (crow.shape[0] - 1) * r, values)


@torch.library.register_fake("sparse_ops::dequant_runs")
def _dequant_runs_fake(values: torch.Tensor, scales: torch.Tensor, run_off: torch.Tensor,
                       dtype: torch.dtype) -> torch.Tensor:
    return values.new_empty(values.shape, dtype=dtype)


def _kept_scales(s: SparseMatrix, key: object, make) -> torch.Tensor:
    """``make(s.scales)``, kept on ``s`` until its scales are replaced or changed in place
    (the tensor and its version counter are part of the key)."""
    cache = s.__dict__.setdefault("_row_scales", {})
    src = s.scales
    hit = cache.get(key)
    if hit is not None and hit[0] is src and hit[1] == src._version:
        return hit[2]
    r = make(src)
    cache[key] = (src, src._version, r)
    return r


def row_scales(s: SparseMatrix, dtype: torch.dtype) -> torch.Tensor:
    """``(M,)`` per-row scales of ``s`` in ``dtype``, converted once per dtype and kept."""
    return _kept_scales(s, dtype, lambda t: t.reshape(-1).to(dtype))


def row_scales_2d(s: SparseMatrix) -> torch.Tensor:
    """``(M, 1)`` float32 contiguous per-row scales of ``s`` (the grouped products' scales
    with one group a row), converted once and kept."""
    return _kept_scales(s, "2d", lambda t: t.reshape(-1, 1).to(torch.float32).contiguous())


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
