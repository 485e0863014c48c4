"""A workload prepared once for many architectures: layers plus their weight patterns.

Everything about a layer's weights that no architecture changes (the mask, drawn from a seed
or read from a weight, and what ``pattern.WeightPattern`` derives from it) is computed the
first time an architecture needs it and kept, keyed by (layer, ``MaskChoice.key``). Which
pattern a layer runs with is decided by ``mask_choice.mask_choice``, the rule
``simulate_gemm`` follows too. Every further architecture only folds those counts.
``simulate_layers`` builds a throw-away one per call; sweeps keep one per worker process
(``evaluate.prepared``).
"""

from __future__ import annotations

import dataclasses
import numbers
from pathlib import Path
from typing import Any

import numpy as np

from .arch import Arch, check_arch
from .energy import EnergyTable, resolve_table
from .gemm_engine import check_engine, run_gemm
from .mask_choice import layer_arch, mask_choice
from .pattern import WeightPattern
from .result import Result
from .sparsity import check_density, weight_mask
from .workload import Layer, conv_weight_to_gemm

_DEFAULT = object()


class PreparedWorkload:
    """Layers whose weight patterns are derived once and reused by every ``simulate`` call.

    Args:
        layers: the layers, run one after another.
        weights: layer name -> weight (``K x N``, or ``(N, C, R, S)`` for a convolution);
            these layers use their weight's zeros, the others ``density``.
        density: default density of the synthetic patterns (``None`` = dense weights).
        seed: layer ``i`` draws its synthetic pattern with seed ``seed + i``.
    """

    def __init__(self, layers: list[Layer] | Layer, *, weights: dict[str, Any] | None = None,
                 density: float | None = None, seed: int = 0) -> None:
        self.layers = [layers] if isinstance(layers, Layer) else list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a simulator.Layer, got "
                                f"{type(layer).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.density = check_density(density)
        self._weight_masks: dict[int, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            w = (weights or {}).get(layer.name)
            if w is None:
                continue
            if layer.conv is not None:
                w = conv_weight_to_gemm(w, layer.conv)
            self._weight_masks[i] = weight_mask(w, layer.K, layer.N)
        self._patterns: dict[tuple, WeightPattern] = {}
        self._nm_checked: set[tuple[int, tuple[int, int]]] = set()

    @property
    def nbytes(self) -> int:
        """Bytes held by the prepared patterns (masks and nonzero lists)."""
        return sum(p.nbytes for p in self._patterns.values())

    def pattern(self, i: int, arch: Arch, density: float | None | object = _DEFAULT
                ) -> WeightPattern | None:
        """The pattern layer ``i`` runs with on ``arch`` (``None``: closed form).

        ``mask_choice.mask_choice`` decides it, with the layer's own N:M ratio (``Layer.nm``):
        a given weight is used as is (checked against the N:M ratio in ``"nm"`` mode);
        otherwise ``density`` (default: the workload's) draws a pattern of the
        architecture's kind, and block and unstructured arrays without a density run an
        all-nonzero pattern. Patterns are kept, one per (layer, ``MaskChoice.key``).
        """
        layer = self.layers[i]
        d = self.density if density is _DEFAULT else check_density(density)
        has_weight = i in self._weight_masks
        # a layer's own weight wins over the workload's density
        choice = mask_choice(arch, weight=has_weight, density=None if has_weight else d,
                             layer_nm=layer.nm)
        if choice.kind == "closed_form":
            return None
        if choice.nm is not None and (i, choice.nm) not in self._nm_checked:
            choice.check(self._weight_masks[i])
            self._nm_checked.add((i, choice.nm))
        key = (i, choice.key)
        if key not in self._patterns:
            self._patterns[key] = WeightPattern(choice.build(
                layer.K, layer.N, weight_mask=self._weight_masks.get(i), seed=self.seed + i))
        return self._patterns[key]

    def simulate(self, arch: Arch, *, density: float | None | object = _DEFAULT,
                 engine: str = "fast", energy_table: EnergyTable | str | Path | None = None
                 ) -> list[Result]:
        """One ``Result`` per layer of ``arch`` running the layers one after another.

        ``density`` overrides the workload's default for this call (patterns of every
        density used are kept).
        """
        arch = check_arch(arch)
        check_engine(engine)
        d = self.density if density is _DEFAULT else check_density(density)
        table = resolve_table(energy_table)
        out = []
        same: dict[tuple, Result] = {}  # closed-form (pattern-free) GEMMs of equal shape
        for i, layer in enumerate(self.layers):
            la = layer_arch(arch, layer.nm)
            pat = self.pattern(i, la, d)
            key = (la, layer.M, layer.K, layer.N)
            if pat is None and key in same:
                out.append(dataclasses.replace(same[key], name=layer.name))
                continue
            r = run_gemm(la, layer.M, layer.K, layer.N, pat, engine=engine,
                         energy_table=table, name=layer.name)
            if pat is None:
                same[key] = r
            out.append(r)
        return out
