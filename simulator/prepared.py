"""A workload prepared once for many architectures: layers plus their weight patterns.

Everything about a layer's weights that no architecture changes (the mask, drawn from a seed
or read from a weight, and what ``pattern.WeightPattern`` derives from it) is computed the
first time an architecture needs it and kept, keyed by (layer, pattern kind, density). Every
further architecture only folds those counts. ``simulate_layers`` builds a throw-away one per
call; sweeps keep one per worker process (``workload_cache``).
"""

from __future__ import annotations

import dataclasses
import numbers
from pathlib import Path
from typing import Any

import numpy as np

from .arch import Arch
from .energy import EnergyTable, resolve_table
from .pattern import WeightPattern
from .result import Result
from .sparsity import check_density, check_nm, synthetic_mask, weight_mask
from .workload import Layer

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
        from .engine import conv_weight_to_gemm

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
        self._patterns: dict[tuple, WeightPattern | None] = {}
        self._nm_checked: set[tuple[int, tuple[int, int]]] = set()

    @property
    def nbytes(self) -> int:
        """Bytes held by the prepared patterns (masks and nonzero lists)."""
        return sum(p.nbytes for p in self._patterns.values() if p is not None)

    def pattern(self, i: int, arch: Arch, density: float | None | object = _DEFAULT
                ) -> WeightPattern | None:
        """The pattern layer ``i`` runs with on ``arch`` (``None``: dense, closed form).

        A given weight is used as is (checked against ``arch.nm`` in ``"nm"`` mode). Otherwise
        ``density`` draws a pattern of the architecture's kind: whole ``arch.block`` blocks for
        ``"block"``, uniform for ``"dense"`` and ``"unstructured"``; ``"nm"`` assumes exactly
        n nonzeros per group of m. Block and unstructured arrays without a density run an
        all-nonzero pattern.
        """
        layer = self.layers[i]
        d = self.density if density is _DEFAULT else check_density(density)
        mode = arch.sparsity
        if i in self._weight_masks:
            if mode == "nm" and (i, arch.nm) not in self._nm_checked:
                check_nm(self._weight_masks[i], *arch.nm)
                self._nm_checked.add((i, arch.nm))
            key: tuple = (i, "weight")
        elif d is None:
            if mode not in ("block", "unstructured"):
                return None
            key = (i, "ones")
        elif mode == "nm":
            return None
        elif mode == "block":
            key = (i, "block", d, arch.block)
        else:
            key = (i, "uniform", d)
        if key not in self._patterns:
            if key[1] == "weight":
                mask = self._weight_masks[i]
            elif key[1] == "ones":
                mask = np.ones((layer.K, layer.N), dtype=bool)
            else:
                mask = synthetic_mask(layer.K, layer.N, d, key[1], seed=self.seed + i,
                                      block=arch.block)
            self._patterns[key] = WeightPattern(mask)
        return self._patterns[key]

    def simulate(self, arch: Arch, *, density: float | None | object = _DEFAULT,
                 engine: str = "fast", energy_table: EnergyTable | str | Path | None = None
                 ) -> list[Result]:
        """One ``Result`` per layer of ``arch`` running the layers one after another.

        ``density`` overrides the workload's default for this call (patterns of every
        density used are kept).
        """
        from .engine import _check_arch, layer_arch, simulate_gemm

        arch = _check_arch(arch)
        d = self.density if density is _DEFAULT else check_density(density)
        table = resolve_table(energy_table)
        out = []
        same: dict[tuple, Result] = {}  # closed-form (pattern-free) GEMMs of equal shape
        for i, layer in enumerate(self.layers):
            la = layer_arch(arch, layer)
            pat = self.pattern(i, la, d)
            key = (la, layer.M, layer.K, layer.N)
            if pat is None and key in same:
                out.append(dataclasses.replace(same[key], name=layer.name))
                continue
            r = simulate_gemm(la, layer.M, layer.K, layer.N, engine=engine,
                              energy_table=table, name=layer.name, pattern=pat)
            if pat is None:
                same[key] = r
            out.append(r)
        return out
