"""Real weight patterns for a sweep: one ``K x N`` mask per layer, bit-packed to travel.

A sweep ships its workload to every worker process (a local pool or Dask workers). Real
patterns (``workload_from_model``, or ``sweep(..., weights=...)``) go with it as packed bits
(``K * N / 8`` bytes a layer) plus a SHA-256 digest that enters the workload's fingerprint,
so a results directory never mixes rows of two different models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from .sparsity import to_numpy
from .workload import Layer


def gemm_mask(name: str, weight: Any, layer: Layer) -> np.ndarray:
    """The ``K x N`` nonzero pattern of ``weight`` for ``layer`` (bool, C-contiguous).

    ``weight``: ``K x N``, or for a convolution layer ``(num_filters, channels, filter_h,
    filter_w)`` (PyTorch's layout, lowered as im2col: K channel-major). ``ValueError``
    naming the layer when the shape does not fit.
    """
    arr = to_numpy(weight)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"weights[{name!r}]: expected numbers, got dtype {arr.dtype}")
    if arr.ndim == 4 and layer.conv is not None:
        c = layer.conv
        want4 = (c.num_filters, c.channels, c.filter_h, c.filter_w)
        if tuple(arr.shape) != want4:
            raise ValueError(f"weights[{name!r}]: shape {tuple(arr.shape)}, the convolution "
                             f"needs {want4} (num_filters, channels, filter_h, filter_w)")
        arr = arr.reshape(c.num_filters, -1).T
    if tuple(arr.shape) != (layer.K, layer.N):
        raise ValueError(f"weights[{name!r}]: shape {tuple(arr.shape)}, the layer needs K x N = "
                         f"({layer.K}, {layer.N}) (inputs M x K, weights K x N)")
    return np.ascontiguousarray(arr != 0)


class PackedPatterns:
    """Layer name -> ``K x N`` bool mask, stored as packed bits; hashable by content.

    Args:
        weights: layer name -> weight (array or tensor; its zeros are the pattern).
        layers: the workload's layers; every name must be one of them.
    """

    def __init__(self, weights: Mapping[str, Any], layers: list[Layer]) -> None:
        by_name = {layer.name: layer for layer in layers}
        self._packed: dict[str, tuple[tuple[int, int], bytes]] = {}
        h = hashlib.sha256()
        for name in sorted(weights):
            if name not in by_name:
                raise ValueError(f"weights: no layer named {name!r} in the workload (layers: "
                                 f"{list(by_name)[:5]}...)")
            mask = gemm_mask(name, weights[name], by_name[name])
            bits = np.packbits(mask, axis=None).tobytes()
            self._packed[name] = (mask.shape, bits)
            h.update(f"{name}\0{mask.shape}\0".encode())
            h.update(bits)
        self.digest = h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self._packed)

    def names(self) -> list[str]:
        return list(self._packed)

    def unpack(self) -> dict[str, np.ndarray]:
        """Layer name -> ``K x N`` bool mask."""
        out = {}
        for name, (shape, bits) in self._packed.items():
            flat = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=shape[0] * shape[1])
            out[name] = flat.reshape(shape).astype(bool)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PackedPatterns) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"PackedPatterns({len(self)} layers, digest {self.digest})"
