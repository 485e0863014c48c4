"""The sparse weights the claims run on: what to build (``Spec``), what to run (``Job``), and
the built weight in every form the kernels and the simulator take (``Workload``).

A weight is ``rows x cols`` (out x in features). ``magnitude`` patterns are pruned by
``so.prune`` from one seeded Gaussian weight (for i.i.d. weights the kept positions are
uniformly random); ``uniform`` and ``powerlaw`` patterns come from
``simulator.synthetic_weight`` so kernels and simulator see the very same nonzeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import sparse_accel_sim as sim
import sparse_ops as so
from sparse_ops.registry import get_layout

PRODUCTS = ("spmm", "spmm_t", "sddmm")
PATTERNS = ("magnitude", "uniform", "powerlaw")


@dataclass(frozen=True)
class Spec:
    """A sparse weight to build: ``layout`` csr/bitmap/bsr/nm at ``density`` (fraction
    nonzero).

    ``block``: BSR square block side (1 for CSR and bitmap); ``n``, ``m``: N:M pattern
    (density n/m).
    """

    layout: str
    density: float
    block: int = 1
    n: int = 0
    m: int = 0
    pattern: str = "magnitude"
    alpha: float = 1.0

    @classmethod
    def csr(cls, density: float, pattern: str = "magnitude", alpha: float = 1.0) -> Spec:
        """CSR at ``density``; ``pattern`` magnitude, uniform or powerlaw (exponent ``alpha``)."""
        return cls("csr", float(density), pattern=pattern, alpha=alpha)

    @classmethod
    def bitmap(cls, density: float, pattern: str = "magnitude", alpha: float = 1.0) -> Spec:
        """Bitmap (one bit a position, packed values) at ``density``; patterns as ``csr``."""
        return cls("bitmap", float(density), pattern=pattern, alpha=alpha)

    @classmethod
    def bsr(cls, density: float, block: int) -> Spec:
        """Block side 1 is CSR (the unstructured end of the block-size sweep)."""
        return cls.csr(density) if block == 1 else cls("bsr", float(density), block=block)

    @classmethod
    def nm(cls, n: int, m: int) -> Spec:
        """The N:M pattern ``n`` of every ``m`` (density n/m)."""
        return cls("nm", n / m, n=n, m=m)

    @property
    def fmt(self) -> str:
        """A short label: ``csr``, ``bitmap``, ``bsr 4x4``, ``2:4``, ``csr powerlaw``."""
        family = get_layout(self.layout).family
        if family == "block":
            label = f"bsr {self.block}x{self.block}"
        elif family == "nm":
            label = f"{self.n}:{self.m}"
        else:
            label = self.layout
        return label if self.pattern == "magnitude" else f"{label} {self.pattern}"


@dataclass(frozen=True)
class Job:
    """One workload: ``spec`` times a dense operand of ``batch`` columns, one product.

    ``measure``: time the kernel and its dense equivalent; ``balance``: simulate with
    SparTen-style lane balancing; ``sram_kb``: simulate with buffers of this size instead of
    the preset's (simulator-only jobs set ``measure=False``).
    """

    spec: Spec
    batch: int
    product: str = "spmm"
    measure: bool = True
    balance: bool = False
    sram_kb: float | None = None

    def __post_init__(self) -> None:
        if self.product not in PRODUCTS:
            raise ValueError(f"product: expected one of {PRODUCTS}, got {self.product!r}")


@dataclass
class Workload:
    """A built weight: ``pruned`` dense ``(rows, cols)`` with zeros, ``sparse`` its format."""

    spec: Spec
    pruned: torch.Tensor
    sparse: so.SparseMatrix
    mask: torch.Tensor

    def sim_weight(self, product: str) -> np.ndarray:
        """The simulator's ``K x N`` weight of a GEMM ``product`` (fp32 numpy).

        ``spmm`` reduces over the in features: ``W = pruned.T``; ``spmm_t`` over the out
        features: ``W = pruned``.
        """
        w = self.pruned.detach().float().cpu()
        return np.ascontiguousarray((w if product == "spmm_t" else w.T).numpy())


def base_weight(rows: int, cols: int, seed: int) -> torch.Tensor:
    """The seeded Gaussian fp32 weight every magnitude pattern is pruned from (CPU)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g)


def build(spec: Spec, base: torch.Tensor, device: str, dtype: torch.dtype,
          seed: int) -> Workload:
    """Build ``spec`` from ``base`` (CPU fp32), then move it to ``device`` in ``dtype``."""
    rows, cols = base.shape
    entry = get_layout(spec.layout, "spec.layout")
    kw: dict = {}
    if "blocksize" in entry.option_names:
        kw["blocksize"] = (spec.block, spec.block)
    elif "n" in entry.option_names:
        kw.update(n=spec.n, m=spec.m)
    if spec.pattern == "magnitude":
        density = None if entry.family == "nm" else spec.density
        pruned = so.prune(base, spec.layout, density, **kw)
    elif spec.pattern in ("uniform", "powerlaw"):
        if entry.family != "unstructured":
            raise ValueError(f"pattern {spec.pattern!r}: only for unstructured layouts (csr, "
                             f"bitmap), got {spec.layout!r}")
        w = sim.synthetic_weight(cols, rows, spec.density, spec.pattern, seed=seed,
                                 alpha=spec.alpha, lanes="cols")
        pruned = torch.from_numpy(np.ascontiguousarray(w.T)).float()
    else:
        raise ValueError(f"pattern: expected one of {PATTERNS}, got {spec.pattern!r}")
    pruned = pruned.to(dtype)
    sparse = so.to_sparse(pruned, spec.layout, **kw).to(device)
    pruned = pruned.to(device)
    return Workload(spec=spec, pruned=pruned, sparse=sparse, mask=pruned != 0)
