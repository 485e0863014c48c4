"""The base of every storage layout: what a sparse matrix class knows about itself.

A layout is one ``SparseMatrix`` subclass (``csr.py``, ``bitmap.py``, ``bsr.py``, ``nm.py``).
The class holds everything the package knows about the layout, and the registry entry
(``registry.register_layout``) is built from it:

- what it stores: ``tensor_names`` (structure first, then ``values``), ``structure_names``
  (the index tensors, in the order the products take them), ``param_names`` (the integer
  parameters the products take after the dense operands, ``params()``) and ``aux_names``
  (derived index tensors the products take last, ``aux()``: CSR's and BSR's transposed
  structure);
- how it is built and checked: ``from_dense``, ``from_parts`` (validation at construction),
  ``check_fit`` (the O(1) check, before every product, that the tensors still fit ``shape``);
- how it is pruned and converted: ``family`` (which entries compete for the kept slots),
  ``option_names`` (the ``to_sparse`` keyword arguments) and ``options_of(params)``,
  ``torch_layouts`` (the ``torch.sparse_*`` layouts ``from_torch`` takes);
- the shapes of its products (``rows_of``, ``sddmm_shape``: the fake kernels are built from
  them) and its reference products (``reference_spmm``, ``reference_spmm_t``,
  ``reference_sddmm``: plain torch, the reference backend and the tests' oracle).

The products take ``(*structure, values, x, *params, *aux)`` (``spmm``), ``(*structure,
values, d, num_cols, *params, *aux)`` (``spmm_t``), ``(*structure, a, b, *params, *aux)``
(``sddmm``) and ``(*structure, values, x, bias, *params, *aux)`` (``linear``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

FAMILIES = ("unstructured", "block", "nm")


class SparseMatrix:
    """A sparse ``(M, K)`` matrix held as plain dense tensors (see docs/formats.md)."""

    layout: ClassVar[str] = ""
    family: ClassVar[str] = ""
    tensor_names: ClassVar[tuple[str, ...]] = ()
    structure_names: ClassVar[tuple[str, ...]] = ()
    param_names: ClassVar[tuple[str, ...]] = ()
    aux_names: ClassVar[tuple[str, ...]] = ()
    option_names: ClassVar[tuple[str, ...]] = ()
    torch_layouts: ClassVar[tuple[torch.layout, ...]] = ()
    values: torch.Tensor
    # Quantized matrices (quantize.py): int8 ``values`` and their scales, ``(M, 1)`` per row
    # (``group_size`` None) or ``(M, ceil(K / group_size))`` per group along K. None: float.
    scales: torch.Tensor | None = None
    group_size: int | None = None
    # "int8": the products may quantize the activations per token to int8 (W8A8, w8a8.py)
    # where that is faster; None: activations stay float (W8A16). Quantized matrices only.
    activation_dtype: str | None = None

    def __init__(self, shape: tuple[int, int]) -> None:
        self._shape = (int(shape[0]), int(shape[1]))

    # --- what every matrix answers ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(M, K)``: rows (out features) by columns (in features)."""
        return self._shape

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def nnz(self) -> int:
        """Stored values (explicit zeros in a stored slot or block count too)."""
        return self.values.numel()

    @property
    def density(self) -> float:
        """``nnz / (M * K)``; 0 for an empty matrix."""
        total = self._shape[0] * self._shape[1]
        return self.nnz / total if total else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes as stored: values plus indices / metadata (plus scales when quantized)."""
        extra = 0 if self.scales is None else self.scales.numel() * self.scales.element_size()
        return sum(t.numel() * t.element_size() for t in self.tensors()) + extra

    @property
    def quantized(self) -> bool:
        """True for int8 values with scales (``quantize.py``)."""
        return self.scales is not None

    def dequantize(self, dtype: torch.dtype = torch.float32) -> SparseMatrix:
        """The float matrix of the same structure holding the weights ``q * scale``
        (``self`` itself, cast to ``dtype``, when not quantized)."""
        from .quantize import dequantized_values

        if self.scales is None:
            return self if self.values.dtype == dtype else self.to(dtype=dtype)
        kw: dict[str, Any] = {n: getattr(self, n) for n in self.tensor_names}
        kw.update(zip(self.aux_names, self.aux(), strict=True))
        kw["values"] = dequantized_values(self, dtype)
        return type(self).from_parts(kw, self._shape, self.params(), validate=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # a bound one-token product (matmul.linear's decode fast path) holds the tensors
        # and the quantization it was bound with: dropped when any attribute changes
        self.__dict__.pop("_one_token", None)
        object.__setattr__(self, name, value)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_one_token", None)  # (holds torch.ops callables: bound again after a copy)
        return state

    def _with_quantization_of(self, other: SparseMatrix) -> SparseMatrix:
        """``self`` given ``other``'s scales and group size (same structure)."""
        if other.scales is not None:
            self.scales = other.scales
            self.group_size = other.group_size
            self.activation_dtype = other.activation_dtype
            runs = other.__dict__.get("_runs")  # same structure: same runs of one scale
            if runs is not None:
                self.__dict__["_runs"] = runs
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A quantized matrix densifies to its dequantized weight, whatever the layout.
        dense = cls.__dict__.get("to_dense")
        if dense is not None and not getattr(dense, "_dequantizes", False):

            def to_dense(self: SparseMatrix, _dense=dense) -> torch.Tensor:
                if self.scales is not None:
                    return _dense(self.dequantize())
                return _dense(self)

            to_dense.__doc__ = dense.__doc__
            to_dense._dequantizes = True  # type: ignore[attr-defined]
            cls.to_dense = to_dense
        # Tuple getters of the named tensors (structure() and aux() run before every product).
        cls._get_structure = staticmethod(_tuple_getter(cls.structure_names))
        cls._get_aux = staticmethod(_tuple_getter(cls.aux_names))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Every tensor, in ``tensor_names`` order."""
        return tuple(getattr(self, n) for n in self.tensor_names)

    def structure(self) -> tuple[torch.Tensor, ...]:
        """The index tensors, in the order the products take them."""
        return self._get_structure(self)

    def params(self) -> tuple[int, ...]:
        """The integer parameters the products take after the dense operands."""
        return ()

    def aux(self) -> tuple[torch.Tensor | None, ...]:
        """Derived index tensors the products take after the parameters (``aux_names``: the
        transposed structure of CSR and BSR, ``None`` until computed); empty elsewhere."""
        return self._get_aux(self)

    @classmethod
    def options_of(cls, params: tuple[int, ...]) -> dict[str, Any]:
        """The ``to_sparse`` keyword arguments that give a matrix with these ``params``."""
        return {}

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_dense(cls, dense: torch.Tensor, **options: Any) -> SparseMatrix:
        """Store the nonzeros (slots, blocks) of a 2-D dense tensor."""
        raise NotImplementedError

    @classmethod
    def from_parts(
        cls,
        tensors: dict[str, torch.Tensor],
        shape: tuple[int, int],
        params: tuple[int, ...] = (),
        validate: bool = True,
    ) -> SparseMatrix:
        """Build from the tensors named in ``tensor_names`` and the ``params()`` of a matrix
        of this layout (e.g. a ``SparseLinear``'s buffers); ``validate=False`` trusts them."""
        raise NotImplementedError

    def _replace(self, **tensors: torch.Tensor) -> SparseMatrix:
        kw: dict[str, Any] = {n: getattr(self, n) for n in self.tensor_names}
        kw.update(zip(self.aux_names, self.aux(), strict=True))  # same structure
        kw.update(tensors)
        out = type(self).from_parts(kw, self._shape, self.params(), validate=False)
        return out._with_quantization_of(self)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """A copy on ``device`` and/or with values cast to ``dtype`` (indices keep theirs).
        As ``Tensor.to``, a dtype may come first: ``S.to(torch.bfloat16)``."""
        if isinstance(device, torch.dtype):
            if dtype is not None:
                raise TypeError(f"dtype: given twice ({device} and {dtype})")
            device, dtype = None, device
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype: expected a torch.dtype, got {dtype!r}")
        if self.scales is not None and dtype is not None and dtype != self.values.dtype:
            # A quantized matrix cast to a float dtype: its dequantized weights.
            return self.dequantize(dtype).to(device)
        moved = {n: getattr(self, n).to(device) for n in self.tensor_names}
        moved.update((n, t.to(device)) for n, t in zip(self.aux_names, self.aux(), strict=True)
                     if t is not None)
        if dtype is not None:
            moved["values"] = moved["values"].to(dtype)
        out = type(self).from_parts(moved, self._shape, self.params(), validate=False)
        if self.scales is not None:
            out.scales = self.scales.to(device)
            out.group_size = self.group_size
            out.activation_dtype = self.activation_dtype
        return out

    def with_values(self, values: torch.Tensor) -> SparseMatrix:
        """Same structure, new values (same shape): no validation of the structure."""
        if values.shape != self.values.shape:
            raise ValueError(
                f"values: expected shape {tuple(self.values.shape)}, got {tuple(values.shape)}"
            )
        return self._replace(values=values)

    def to_dense(self) -> torch.Tensor:
        raise NotImplementedError

    # --- before every product --------------------------------------------------------------
    def check_fit(self) -> None:
        """O(1): the tensors still fit ``shape`` (a replaced ``values``, a matrix built with
        ``validate=False``); ValueError/TypeError naming the tensor. The indices themselves are
        checked by the kernels, on every call."""
        raise NotImplementedError

    # --- the products' shapes (the fake kernels) and reference products -------------------
    @staticmethod
    def rows_of(structure: tuple[torch.Tensor, ...], values: torch.Tensor,
                params: tuple[int, ...]) -> int:
        """``M`` as the products' arguments give it (may be symbolic under tracing)."""
        raise NotImplementedError

    @staticmethod
    def sddmm_shape(structure: tuple[torch.Tensor, ...], a: torch.Tensor, b: torch.Tensor,
                    params: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of ``sddmm``'s output (that of ``values``)."""
        raise NotImplementedError

    @staticmethod
    def reference_spmm(*args: Any) -> torch.Tensor:
        """``S @ x`` in plain torch: ``(*structure, values, x (K, N), *params)`` → ``(M, N)``."""
        raise NotImplementedError

    @staticmethod
    def reference_spmm_t(*args: Any) -> torch.Tensor:
        """``S^T @ d``: ``(*structure, values, d (M, N), num_cols, *params)`` → ``(K, N)``."""
        raise NotImplementedError

    @staticmethod
    def reference_sddmm(*args: Any) -> torch.Tensor:
        """``<a[i], b[j]>`` at each stored ``(i, j)``: ``(*structure, a (M, N), b (K, N),
        *params)`` → shaped like ``values``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, nnz={self.nnz}, "
            f"density={self.density:.4f}, dtype={self.dtype}, device={self.device}"
            + ("" if self.scales is None else
               f", scales={tuple(self.scales.shape)} {self.scales.dtype}, "
               f"group_size={self.group_size}"
               + ("" if self.activation_dtype is None else
                  f", activation_dtype={self.activation_dtype!r}"))
            + ")"
        )


def _tuple_getter(names: tuple[str, ...]):
    """``obj -> (obj.<name0>, obj.<name1>, ...)`` as a plain function (the speed of
    ``attrgetter``, and a function ``torch.compile`` traces), built as namedtuple builds its
    methods."""
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"tensor names: {n!r} is not an identifier")
    body = "".join(f"obj.{n}, " for n in names)
    scope: dict[str, Any] = {}
    exec(f"def get(obj):\n    return ({body})\n", scope)  # noqa: S102  (identifiers only)
    return scope["get"]


def fit_error(name: str, msg: str) -> None:
    """Raise the ValueError of a failed ``check_fit``, naming the tensor."""
    raise ValueError(f"{name}: {msg}")


def expect_1d(name: str, t: object) -> torch.Tensor:
    """``t`` as a 1-D tensor, else TypeError / ValueError naming it (for ``check_fit``)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 1:
        fit_error(name, f"expected a 1-D tensor, got shape {tuple(t.shape)}")
    return t
