"""Which weight pattern a layer runs with on an architecture: the one rule, in one place.

``simulate_gemm`` (through ``prepare_mask``) and ``PreparedWorkload`` (which keeps each
pattern for many architectures) both ask ``mask_choice``; neither decides on its own. The
choice is a small value (``MaskChoice``): what kind of ``K x N`` pattern, of which density
and block shape, and which N:M ratio a given weight must satisfy. ``MaskChoice.build`` then
makes the mask; ``MaskChoice.key`` names the pattern, so a cache can keep one per layer and
key instead of drawing it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .arch import Arch
from .sparsity import check_density, check_nm, synthetic_mask, weight_mask

# "closed_form": no mask (dense W on a dense array; exactly n of every m on an "nm" array);
# "weight": the given weight's zeros; "ones": every weight nonzero; "uniform" / "block": a
# synthetic pattern of the density (positions uniform at random / whole blocks).
MASK_KINDS = ("closed_form", "weight", "ones", "uniform", "block")


@dataclass(frozen=True)
class MaskChoice:
    """The pattern a layer runs with (``mask_choice`` decides it).

    Attributes:
        kind: one of ``MASK_KINDS``.
        density: fraction of nonzero weights (``"uniform"``; ``"block"``: of nonzero blocks).
        block: ``(bk, bn)`` block shape of ``"block"``, in weights.
        nm: ``(n, m)`` a given weight must satisfy (``"weight"`` on an ``"nm"`` array), else
            ``None``.
    """

    kind: str
    density: float | None = None
    block: tuple[int, int] | None = None
    nm: tuple[int, int] | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies the pattern (not the N:M check): equal keys, equal masks."""
        return (self.kind, self.density, self.block)

    def check(self, mask: np.ndarray) -> None:
        """Raise ``ValueError`` if a given weight's ``mask`` breaks ``nm`` (when set)."""
        if self.nm is not None:
            check_nm(mask, *self.nm)

    def build(self, K: int, N: int, *, weight_mask: np.ndarray | None = None,
              seed: int = 0) -> np.ndarray | None:
        """The ``K x N`` bool mask, or ``None`` for ``"closed_form"``.

        ``weight_mask``: the given weight's pattern (``"weight"`` only, returned as is);
        ``seed``: of the synthetic kinds. Does not check ``nm`` (see ``check``).
        """
        if self.kind == "closed_form":
            return None
        if self.kind == "weight":
            if weight_mask is None:
                raise ValueError("a 'weight' mask choice needs the weight's mask")
            return weight_mask
        if self.kind == "ones":
            return np.ones((K, N), dtype=bool)
        return synthetic_mask(K, N, self.density, self.kind, seed=seed,
                              block=self.block or (16, 16))


def layer_arch(arch: Arch, layer_nm: tuple[int, int] | None) -> Arch:
    """The architecture a layer runs on: an ``"nm"`` array takes the layer's own N:M ratio
    (``layer_nm``, from a topology file's sparsity column; ``None`` or ``n == m``: dense
    layer, the array's own ratio)."""
    if (arch.sparsity == "nm" and layer_nm is not None and layer_nm[0] < layer_nm[1]
            and tuple(layer_nm) != arch.nm):
        return arch.with_(nm=tuple(layer_nm))
    return arch


def mask_choice(arch: Arch, *, weight: bool = False, density: float | None = None,
                layer_nm: tuple[int, int] | None = None) -> MaskChoice:
    """The pattern a layer runs with on ``arch``: the only place that decides it.

    Args:
        arch: the accelerator (its ``sparsity`` mode, ``nm`` and ``block``).
        weight: the layer has a weight of its own (its zeros are the pattern).
        density: fraction of nonzero weights of a synthetic pattern, or ``None``.
        layer_nm: the layer's N:M ratio from a topology file (``layer_arch``).

    The rule, by the array's sparsity mode:

    ============== ======================= ============================ ===================
    mode           a weight                no weight, ``density``       no weight, no
                                                                        density
    ============== ======================= ============================ ===================
    dense          its zeros (gated)       uniform (zeros gated)        closed form (None)
    nm             its zeros, checked      closed form: exactly n of    closed form
                   against the N:M ratio   every m (density is n/m)
    block          its zeros               whole ``arch.block`` blocks  all ones
    unstructured   its zeros               uniform                      all ones
    ============== ======================= ============================ ===================

    A block or unstructured array given a dense workload (no weight, no density) runs it on
    its sparse datapath: there is no dense bypass in this model, so every weight is stored
    in the array's format with its index (metadata words, per-lane pointers) and nothing is
    skipped. Its pattern is therefore all ones, not "no pattern": both engines simulate
    exactly that, and ``simulate_gemm`` and ``PreparedWorkload`` now say so alike (before,
    ``prepare_mask`` returned ``None`` there while ``PreparedWorkload`` gave all ones). A
    dense array has no sparse format, so a dense workload stays closed form.

    Raises:
        ValueError: both a weight and a density, or a density outside (0, 1].
        TypeError: a density that is not a number.
    """
    if weight and density is not None:
        raise ValueError("give either weight or density, not both")
    density = check_density(density)
    arch = layer_arch(arch, layer_nm)
    mode = arch.sparsity
    if weight:
        return MaskChoice("weight", nm=arch.nm if mode == "nm" else None)
    if mode == "nm":
        return MaskChoice("closed_form")
    if density is None:
        return MaskChoice("closed_form") if mode == "dense" else MaskChoice("ones")
    if mode == "block":
        return MaskChoice("block", density, arch.block)
    return MaskChoice("uniform", density)


def prepare_mask(arch: Arch, K: int, N: int, weight: Any = None, density: float | None = None,
                 seed: int = 0, *, layer_nm: tuple[int, int] | None = None
                 ) -> np.ndarray | None:
    """The ``K x N`` nonzero pattern to simulate, or ``None`` for the closed-form cases.

    ``mask_choice`` decides the pattern (see its table); a given ``weight`` (``K x N`` array
    or tensor) is used as is and checked against the N:M ratio in ``"nm"`` mode, a synthetic
    pattern is drawn with ``seed``. ``layer_nm``: the layer's N:M ratio from a topology.

    Raises:
        ValueError: both ``weight`` and ``density``; a weight of the wrong shape, or breaking
            the N:M ratio.
        TypeError: a weight that is not numeric.
    """
    choice = mask_choice(arch, weight=weight is not None, density=density, layer_nm=layer_nm)
    mask = weight_mask(weight, K, N) if weight is not None else None
    if mask is not None:
        choice.check(mask)
    return choice.build(K, N, weight_mask=mask, seed=seed)
