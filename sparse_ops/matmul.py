"""``matmul`` and ``linear``: the user-facing products, and the choice of backend."""

from __future__ import annotations

import os

import torch

from .format import SparseMatrix
from .quantize import check_quantized, dequantized_values, row_scales, row_scales_2d
from .registry import ProductOps, backend_ops, layout_of

BACKENDS = ("cpp", "triton", "reference")


def default_backend(device: torch.device) -> str:
    """``"cpp"`` on a CPU, ``"triton"`` on CUDA."""
    if device.type == "cpu":
        return "cpp"
    if device.type == "cuda":
        return "triton"
    raise ValueError(f"device: no sparse_ops backend for {device.type} tensors")


def product_ops(layout: str, backend: str | None, device: torch.device) -> ProductOps:
    """The three products of ``layout`` on ``backend`` (None: by ``device``)."""
    if backend is None:
        backend = default_backend(device)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS} or None, got {backend!r}")
    if backend == "reference":
        return backend_ops(layout, "reference")
    if backend == "cpp":
        if device.type != "cpu":
            raise ValueError(f"backend: 'cpp' runs on CPU tensors, got {device}")
        return backend_ops(layout, "cpp")
    interpreted = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")
    if device.type != "cuda" and not interpreted:
        raise ValueError(
            f"backend: 'triton' needs CUDA tensors, or TRITON_INTERPRET=1 set before triton "
            f"is imported to run its interpreter on the CPU; got {device}"
        )
    try:
        from . import ops_triton  # noqa: F401  (registers the "triton" ops)
    except ModuleNotFoundError as e:
        if e.name != "triton" and not str(e.name).startswith("triton."):
            raise
        raise ImportError(
            "backend: 'triton' needs the triton package, which is not installed "
            "(pip install 'sparse-ops[triton]', or triton matching your torch)"
        ) from e
    return backend_ops(layout, "triton")


def _checked_ops(s: SparseMatrix, backend: str | None, x: torch.Tensor) -> ProductOps:
    """``s``'s products for ``x`` after the O(1) check that its tensors fit ``s.shape``
    (ValueError naming the tensor); the common case (CPU, default backend) looks up nothing
    else."""
    s.check_fit()
    ops = layout_of(s).ops.get("cpp") if backend is None and x.is_cpu else None
    return ops if ops is not None else product_ops(s.layout, backend, x.device)


def _aux(s: SparseMatrix) -> tuple[torch.Tensor | None, ...]:
    """The derived tensors a product takes last: only the backward reads them (``S^T @ dY``),
    so without gradients none are passed (the schemas default them to None)."""
    return s.aux() if s.aux_names and torch.is_grad_enabled() else ()


def _check_sparse(name: str, s: object) -> SparseMatrix:
    if not isinstance(s, SparseMatrix):
        raise TypeError(
            f"{name}: expected a sparse_ops matrix (from so.to_sparse), got {type(s).__name__}"
        )
    return s


def _check_dense_operand(name: str, s: SparseMatrix, x: object, dim_name: str) -> torch.Tensor:
    v = s.values
    if (
        type(x) is torch.Tensor
        and x.dtype is v.dtype
        and x.layout is torch.strided
        and ((x.is_cpu and v.is_cpu) or x.device == v.device)
    ):
        return x
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense tensor, got layout {x.layout}")
    if x.dtype != s.dtype:
        raise TypeError(f"{name}: dtype {x.dtype} differs from the sparse matrix's {s.dtype}")
    if x.device != s.device:
        raise ValueError(f"{name}: on {x.device}, the sparse matrix on {s.device}")
    return x


_QUANT_X_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _check_quantized_operand(name: str, s: SparseMatrix, x: object) -> torch.Tensor:
    """The activation of a quantized (int8) weight: a float32 / bfloat16 / float16 dense
    tensor on the weight's device; int8 weights are inference only."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense tensor, got layout {x.layout}")
    if x.dtype not in _QUANT_X_DTYPES:
        raise TypeError(f"{name}: an int8 weight takes float32, bfloat16 or float16 "
                        f"activations, got {x.dtype}")
    if x.device != s.device:
        raise ValueError(f"{name}: on {x.device}, the sparse matrix on {s.device}")
    if x.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"{name}: requires grad, but int8 weights are inference only (no "
                           f"backward); run under torch.no_grad() or dequantize() the weight")
    return x


def _linear_call(ops: ProductOps, w: SparseMatrix, values: torch.Tensor, x2: torch.Tensor,
                 bias: torch.Tensor | None, aux: tuple = ()) -> torch.Tensor:
    """``x2 (B, K) @ W^T + bias`` (``W``'s structure with ``values``) → ``(B, M)``: the
    backend's native linear where it has one, else its ``spmm`` on ``x2^T``, transposed."""
    if ops.linear is not None:  # native x @ S^T + bias: (B, K) row-major in, (B, M) out
        return ops.entry("linear")(*w.structure(), values, x2, bias, *w.params(), *aux)
    y = ops.entry("spmm")(*w.structure(), values, x2.t(), *w.params(), *aux).t()
    return y if bias is None else y + bias


def _quantized_linear(x2: torch.Tensor, w: SparseMatrix, bias: torch.Tensor | None,
                      backend: str | None) -> torch.Tensor:
    """``x2 (B, K) @ W^T + bias`` for an int8 ``w`` (quantize.py) → ``(B, M)`` in x's dtype.

    Per row: the kernels read the int8 values as stored and the ``(B, M)`` output is scaled
    per column (then the bias added). Per group: the CPU's N:M and bitmap products apply
    the scales inside (``nm_spmm_grouped``, ``bitmap_spmm_grouped``); elsewhere the values
    are dequantized to x's dtype for this call and the float product runs on them. A matrix
    with ``activation_dtype="int8"`` may run W8A8 instead at wide B (``w8a8.py``)."""
    check_quantized(w, "weight", finite=False)
    ops = _checked_ops(w, backend, x2)
    if w.activation_dtype is not None:
        from . import w8a8

        return w8a8.linear(x2, w, bias, backend,
                           lambda: _w8a16_linear(ops, x2, w, bias, backend))
    return _w8a16_linear(ops, x2, w, bias, backend)


class _OneToken:
    """A weight's one-token product, bound by the first call that took it (``linear``'s fast
    path at decode): the C++ op and its arguments, called as ``op(*head, x, None, *tail)``.

    Quantized weights: a ``*_linear_grouped`` op (x (..., K), per-row or group scales).
    Float weights (``flat``): the CPU backend's ``*_linear_call`` op (x (B, K) only: a
    ``(1, 1, K)`` token is viewed as ``(1, K)`` and the result as ``(1, 1, M)``), taken only
    with gradients off (with them, ``linear`` passes the transposed structure the backward
    reads). ``SparseMatrix`` drops the binding when any of its attributes is assigned; the
    op checks x (dtype, device, layout, requires_grad) and every index on each call."""

    __slots__ = ("op", "head", "tail", "shape", "shape3", "out3", "flat")

    def __init__(self, w: SparseMatrix, op, head: tuple, tail: tuple, flat: bool = False
                 ) -> None:
        self.op, self.head, self.tail, self.flat = op, head, tail, flat
        # x (1, K), or (1, 1, K): a decoder's one token (batch, sequence, hidden)
        self.shape, self.shape3 = (1, w.shape[1]), (1, 1, w.shape[1])
        self.out3 = (1, 1, w.shape[0])


_LINEAR_GROUPED = {
    "csr": torch.ops.sparse_ops.csr_linear_grouped,
    "bsr": torch.ops.sparse_ops.bsr_linear_grouped,
    "nm": torch.ops.sparse_ops.nm_linear_grouped,
    "bitmap": torch.ops.sparse_ops.bitmap_linear_grouped,
}


def _bind_one_token(w: SparseMatrix, op, scales: torch.Tensor, gsize: int, x2: torch.Tensor,
                    bias: torch.Tensor | None, backend: str | None) -> torch.Tensor:
    """``op`` (a ``*_linear_grouped`` op) on ``x2 (B, K)`` with ``scales`` in groups of
    ``gsize`` columns → ``(B, M)``; bound on ``w`` for ``linear``'s one-token fast path where
    the default backend chose it (W8A16 only: a W8A8 matrix decides per call)."""
    head = (*w.structure(), w.values, scales)
    if backend is None and w.activation_dtype is None and not torch.compiler.is_compiling():
        w.__dict__["_one_token"] = _OneToken(w, op.default, head, (gsize, *w.params()))
    return op(*head, x2, bias, gsize, *w.params())


def _w8a16_linear(ops: ProductOps, x2: torch.Tensor, w: SparseMatrix,
                  bias: torch.Tensor | None, backend: str | None) -> torch.Tensor:
    """``_quantized_linear`` with float activations (the int8 values widened in registers;
    group scales inside the CPU's N:M and bitmap products, else dequantized per call)."""
    dt = x2.dtype
    if x2.is_cpu and backend in (None, "cpp") and w.layout in _LINEAR_GROUPED:
        # the CPU's N:M and bitmap products apply group scales inside (the SpMV in registers,
        # wider products as the panel expands a row); per-row scales at one token, in every
        # layout, as one group a row (the per-row kernels, rows scaled in C++). x2 (B, K) in,
        # (B, M) out, the bias added in C++: no aten call around the product (a decode step
        # pays each one's cold code). CSR and BSR group scales dequantize (below).
        unit = w.params()[1] if w.layout == "nm" else 1
        gsize, scales = None, w.scales
        if w.group_size is None:
            if x2.shape[0] == 1:
                gsize, scales = max(-(-w.shape[1] // unit) * unit, unit), row_scales_2d(w)
        elif w.layout == "nm":
            gsize = w.group_size if w.group_size % unit == 0 else None
        elif w.layout == "bitmap" and (w.group_size % 32 == 0 or x2.shape[0] > 1):
            # (the decode SpMV's fast kernels take groups of 32k columns: others dequantize)
            gsize = w.group_size
        if gsize is not None:
            return _bind_one_token(w, _LINEAR_GROUPED[w.layout], scales, gsize, x2, bias,
                                   backend)
    if w.group_size is not None or backend == "reference":
        return _linear_call(ops, w, dequantized_values(w, dt), x2, bias)
    y = _linear_call(ops, w, w.values, x2, None)  # a fresh output: scaled in place
    scale = row_scales(w, dt)
    return torch.addcmul(bias, y, scale) if bias is not None else y.mul_(scale)


def matmul(s: SparseMatrix, x: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """``s @ x``: sparse ``s (M, K)`` times dense ``x (K, N)`` → dense ``(M, N)``.

    Differentiable with respect to ``s.values`` and ``x``. ``backend``: ``"cpp"`` (CPU),
    ``"triton"`` (CUDA, or the Triton interpreter), ``"reference"`` (plain torch), or None to
    pick by device. A quantized ``s`` (int8 values, ``so.quantize``) takes a float32 /
    bfloat16 / float16 ``x`` and returns its dtype; inference only.
    """
    if not isinstance(s, SparseMatrix):
        _check_sparse("s", s)
    quantized = s.scales is not None
    if quantized:
        x = _check_quantized_operand("x", s, x)
    else:
        x = _check_dense_operand("x", s, x, "K")
    shape = x.shape
    if len(shape) != 2:
        raise ValueError(f"x: expected a 2-D (K, N) tensor, got shape {tuple(shape)}")
    if shape[0] != s._shape[1]:
        raise ValueError(
            f"x: has {shape[0]} rows, the sparse matrix {s.shape} needs K = {s.shape[1]}"
        )
    if quantized:
        return _quantized_linear(x.t(), s, None, backend).t()
    ops = _checked_ops(s, backend, x)
    return ops.entry("spmm")(*s.structure(), s.values, x, *s.params(), *_aux(s))


def linear(
    x: torch.Tensor,
    weight: SparseMatrix,
    bias: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """``F.linear`` with a sparse weight ``(M, K)``: ``x (..., K)`` → ``(..., M)``."""
    one = getattr(weight, "_one_token", None)
    if one is not None and bias is None and backend is None and type(x) is torch.Tensor:
        # a decode step's layer: the op bound by an earlier call, nothing else in Python
        # (each Python-level step costs 5-30 us of cold code in a model); the op checks x
        try:
            s = x.shape
            if s == one.shape:
                if not (one.flat and torch.is_grad_enabled()):
                    return one.op(*one.head, x, None, *one.tail)
            elif s == one.shape3:
                if not one.flat:
                    return one.op(*one.head, x, None, *one.tail)
                if not torch.is_grad_enabled():
                    return one.op(*one.head, x.view(one.shape), None, *one.tail).view(one.out3)
        except NotImplementedError:  # x of another layout or device: the checks below
            pass
    if not isinstance(weight, SparseMatrix):
        _check_sparse("weight", weight)
    quantized = weight.scales is not None
    if quantized:
        x = _check_quantized_operand("x", weight, x)
    else:
        x = _check_dense_operand("x", weight, x, "in_features")
    M, K = weight._shape
    shape = x.shape
    if len(shape) < 1 or shape[-1] != K:
        raise ValueError(f"x: last dim must be in_features = {K}, got shape {tuple(shape)}")
    if bias is not None:
        if quantized:
            if not isinstance(bias, torch.Tensor) or bias.dtype != x.dtype:
                raise TypeError(f"bias: expected a {x.dtype} tensor (the activations' dtype), "
                                f"got {getattr(bias, 'dtype', type(bias).__name__)}")
        else:
            _check_dense_operand("bias", weight, bias, "out_features")
        if bias.shape != (M,):
            raise ValueError(f"bias: expected shape ({M},), got {tuple(bias.shape)}")
    x2 = x if len(shape) == 2 else x.reshape(-1, K)
    if quantized:
        y = _quantized_linear(x2, weight, bias, backend)
    else:
        ops = _checked_ops(weight, backend, x)
        if (x2.shape[0] == 1 and backend is None and ops.call is not None
                and not torch.is_grad_enabled() and not torch.compiler.is_compiling()):
            # one token, gradients off: bind the C++ linear for the next calls (fast path)
            weight.__dict__["_one_token"] = _OneToken(
                weight, ops.call["linear"], (*weight.structure(), weight.values),
                weight.params(), flat=True)
        y = _linear_call(ops, weight, weight.values, x2, bias, _aux(weight))
    return y if len(shape) == 2 else y.reshape(*shape[:-1], M)
