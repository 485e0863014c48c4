"""The format registry: every layout is one ``Layout`` entry that the rest of the package looks up.

An entry holds what differs between layouts — the matrix class, which entries compete in
pruning (its family), the ``to_sparse`` options it takes, the fake (meta) kernels of its
products, its O(1) consistency check, and its products on each backend. ``to_sparse``,
``prune``, ``matmul``/``linear``, ``SparseLinear``, ``sparsify``, ``save_sparse``/
``load_sparse`` and both op backends read these entries instead of branching on layout names.

Adding a layout: write its matrix class (a ``SparseMatrix`` subclass with ``from_dense`` and
``from_parts``) and call ``register_layout`` at the bottom of its module; give its products a
reference implementation (``reference.py``), fakes (``fake.py``), C++ operators
(``csrc/torch_ops.cpp`` schemas named ``<layout>_<product>``) and Triton ops
(``ops_triton.py``). Backends attach their ops with ``register_ops``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .autograd import ProductOps
    from .format import SparseMatrix

FAMILIES = ("unstructured", "block", "nm")
PRODUCTS = ("spmm", "spmm_t", "sddmm", "linear")


@dataclass
class Layout:
    """One storage layout.

    ``name``: the layout string users pass (``"csr"``). ``matrix``: its ``SparseMatrix``
    subclass, which provides ``from_dense(dense, **options)`` and
    ``from_parts(tensors, shape, params, validate)``. ``family``: which entries compete for the
    kept slots when pruning (``"unstructured"``: any entry; ``"block"``: whole blocks;
    ``"nm"``: n of every m). ``options``: the ``to_sparse`` keyword arguments it needs
    (``("blocksize",)``, ``("n", "m")``), read back from a matrix's ``params()`` by
    ``options_of``. ``fakes``: product name → fake kernel (signatures of ``reference.py``).
    ``check``: O(1) check that a matrix's tensors fit its shape (``consistency.py``).
    ``torch_layouts``: the ``torch.sparse_*`` layouts ``matrix.from_torch`` takes directly
    (others are densified first).
    ``ops``: backend name → ``ProductOps``, filled by the backends (``register_ops``).
    """

    name: str
    matrix: type[SparseMatrix]
    family: str
    options: tuple[str, ...]
    fakes: dict[str, Callable[..., Any]]
    check: Callable[[SparseMatrix], None]
    options_of: Callable[[tuple[int, ...]], dict[str, Any]] = lambda params: {}
    torch_layouts: tuple[torch.layout, ...] = ()
    ops: dict[str, ProductOps] = field(default_factory=dict)

    @property
    def n_struct(self) -> int:
        """How many index tensors lead each product's arguments."""
        return len(self.matrix._structure_names)

    @property
    def takes_density(self) -> bool:
        """Pruned to a ``density=`` (csr, bitmap, bsr) rather than to ``n:m``."""
        return self.family != "nm"


_LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    """Add ``layout`` to the registry (its name must be new); returns it."""
    if layout.family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {layout.family!r}")
    missing = [p for p in PRODUCTS if p not in layout.fakes]
    if missing:
        raise ValueError(f"fakes: layout {layout.name!r} has no fake kernel for {missing}")
    if layout.name in _LAYOUTS:
        raise ValueError(f"name: layout {layout.name!r} is already registered")
    _LAYOUTS[layout.name] = layout
    layout.matrix.layout = layout.name
    return layout


def register_ops(layout: str, backend: str, ops: ProductOps) -> None:
    """Attach ``backend``'s products of ``layout``."""
    get_layout(layout).ops[backend] = ops


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
    """The entry of a matrix (by its ``layout`` attribute)."""
    return _LAYOUTS[s.layout]
