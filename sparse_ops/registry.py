"""The layout registry and the backend table: every layout is one entry, built from its class.

``register_layout(MatrixClass)`` (called at the bottom of each format module) makes the entry
from what the class declares (``format.py``): its name, family, tensors and parameters, the
fake kernels of its products (from ``rows_of`` / ``sddmm_shape``), its O(1) fit check and
its reference products, which become the ``"reference"`` backend. The other backends attach
their products with ``register_backend`` (``ops_cpp.py``, ``ops_triton.py``): fakes and the
shared autograd formulas (``autograd.py``) are registered on them here. ``to_sparse``,
``prune``, ``matmul``/``linear``, ``SparseLinear``, ``sparsify``, ``save_sparse``/``load_sparse``
look the entries up; nothing builds a name from a string to find a layout's code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .format import FAMILIES

if TYPE_CHECKING:
    from .format import SparseMatrix

PRODUCTS = ("spmm", "spmm_t", "sddmm", "linear")


@dataclass(frozen=True)
class ProductOps:
    """One layout's products on one backend, with ``n_struct`` leading index tensors.

    ``linear``, where a backend has one, is the native ``x @ S^T + bias`` (``x (B, K)``
    row-major → ``(B, M)``, ``bias`` optional); without it ``so.linear`` computes
    ``(S @ x^T)^T + bias``. ``call`` maps a product's name to the op that ``matmul`` and
    ``linear`` invoke (a C++ backend's ``*_call`` twins, which skip the Python autograd
    layer when no gradient is needed); by default the products themselves. ``custom``: the
    products are custom ops that need fakes and autograd registered (not plain functions).
    """

    spmm: Callable
    spmm_t: Callable
    sddmm: Callable
    n_struct: int
    linear: Callable | None = None
    call: dict[str, Callable] | None = None
    # The C++ callables behind ``call``'s OpOverloads (``OpOverload.__call__`` is
    # ``self._op(*args)``): eager calls skip one Python frame; torch.compile sees ``call``.
    raw: dict[str, Callable] | None = None
    custom: bool = True

    def entry(self, product: str) -> Callable:
        """The op that user-facing code calls for ``product`` ("spmm", "linear", ...)."""
        if self.call is not None:
            if self.raw is not None and not torch.compiler.is_compiling():
                return self.raw[product]
            return self.call[product]
        return getattr(self, product)


def check_same_device(x: torch.Tensor, values: torch.Tensor) -> None:
    """A fake kernel's device check: ``x`` where the weight's ``values`` are (a ``meta`` x
    for a CPU weight would otherwise get a meta result from the fake, not the error the
    eager path gives); ValueError naming x."""
    if x.device != values.device:
        raise ValueError(f"x: on {x.device}, the sparse matrix on {values.device}")


def make_fakes(matrix: type[SparseMatrix]) -> dict[str, Callable[..., Any]]:
    """The fake (meta) kernel of each product of ``matrix``'s layout, from its shape rules.

    Outputs take the dtype and device of the dense operand.
    """
    ns, np_ = len(matrix.structure_names), len(matrix.param_names)

    def spmm(*args):
        struct, values, x, params = args[:ns], args[ns], args[ns + 1], args[ns + 2:]
        return x.new_empty(matrix.rows_of(struct, values, params), x.shape[1])

    def spmm_t(*args):
        d, num_cols = args[ns + 1], args[ns + 2]
        return d.new_empty(num_cols, d.shape[1])

    def sddmm(*args):
        struct, a, b, params = args[:ns], args[ns], args[ns + 1], args[ns + 2:]
        return a.new_empty(matrix.sddmm_shape(struct, a, b, params))

    def linear(*args):
        struct, values, x = args[:ns], args[ns], args[ns + 1]
        params = args[ns + 3:ns + 3 + np_]
        check_same_device(x, values)
        return x.new_empty(x.shape[0], matrix.rows_of(struct, values, params))

    return {"spmm": spmm, "spmm_t": spmm_t, "sddmm": sddmm, "linear": linear}


@dataclass
class Layout:
    """One storage layout: its matrix class, its fakes, and its products per backend.

    ``name``: the string users pass (``"csr"``); ``matrix``: the ``SparseMatrix`` subclass
    that declares everything else (``family``, ``option_names``, ``options_of``,
    ``torch_layouts``, ``check_fit``: see ``format.py``). ``ops``: backend name →
    ``ProductOps`` (``"reference"`` from the class, others from ``register_backend``).
    """

    name: str
    matrix: type[SparseMatrix]
    fakes: dict[str, Callable[..., Any]]
    ops: dict[str, ProductOps] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.matrix.family

    @property
    def option_names(self) -> tuple[str, ...]:
        return self.matrix.option_names

    @property
    def n_struct(self) -> int:
        """How many index tensors lead each product's arguments."""
        return len(self.matrix.structure_names)

    @property
    def takes_density(self) -> bool:
        """Pruned to a ``density=`` (csr, bitmap, bsr) rather than to ``n:m``."""
        return self.family != "nm"


_LAYOUTS: dict[str, Layout] = {}


def register_layout(matrix: type[SparseMatrix]) -> Layout:
    """Add the layout that ``matrix`` (a ``SparseMatrix`` subclass) declares; returns its entry.

    Its reference products become its ``"reference"`` backend.
    """
    name = matrix.layout
    if not isinstance(name, str) or not name:
        raise ValueError(f"matrix: {matrix.__name__}.layout must name the layout")
    if matrix.family not in FAMILIES:
        raise ValueError(f"matrix: {matrix.__name__}.family must be one of {FAMILIES}, got "
                         f"{matrix.family!r}")
    if name in _LAYOUTS:
        raise ValueError(f"matrix: layout {name!r} is already registered")
    entry = Layout(name, matrix, make_fakes(matrix))
    _LAYOUTS[name] = entry
    entry.ops["reference"] = ProductOps(
        matrix.reference_spmm, matrix.reference_spmm_t, matrix.reference_sddmm,
        n_struct=entry.n_struct, custom=False,
    )
    return entry


def register_backend(ops: dict[str, ProductOps], backend: str) -> None:
    """Attach ``backend``'s products (``{layout: ProductOps}``), registering on custom ops
    their layout's fakes and the shared autograd formulas.

    The ops may be ``torch.library.custom_op`` / ``triton_op`` definitions (Triton) or C++
    operators (``torch.ops.sparse_ops.*``).
    """
    from .autograd import register_product_autograd

    for layout, products in ops.items():
        entry = get_layout(layout)
        if products.custom:
            for name in PRODUCTS:
                op = getattr(products, name)
                if op is not None:
                    torch.library.register_fake(op, entry.fakes[name])
            register_product_autograd(products)
        entry.ops[backend] = products


def names() -> tuple[str, ...]:
    """The registered layout names, in registration order."""
    return tuple(_LAYOUTS)


def get_layout(name: object, argument: str = "layout") -> Layout:
    """The entry of layout ``name``; ValueError naming ``argument`` if there is none."""
    entry = _LAYOUTS.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(f"{argument}: expected one of {names()}, got {name!r}")
    return entry


def layout_of(s: SparseMatrix) -> Layout:
    """The entry of a matrix (by its class's ``layout``)."""
    return _LAYOUTS[s.layout]


def backend_ops(layout: str, backend: str) -> ProductOps:
    """``layout``'s products on ``backend``; ValueError if that backend has none."""
    entry = get_layout(layout)
    ops = entry.ops.get(backend)
    if ops is None:
        raise ValueError(f"layout: {entry.name!r} has no products on backend {backend!r}")
    return ops
