"""Workloads: GEMMs, and convolutions lowered to GEMMs by im2col (as SCALE-Sim does).

Convention (SCALE-Sim's): inputs ``X`` are ``M x K``, weights ``W`` are ``K x N``, outputs
``M x N``. A convolution with an ``H x W x C`` input, ``N`` filters of ``R x S x C`` and
strides ``(sh, sw)`` becomes ``M = Ho * Wo`` output pixels, ``K = R * S * C`` and ``N``
filters, with ``Ho = ceil((H - R) / sh) + 1`` and ``Wo = ceil((W - S) / sw) + 1``: SCALE-Sim's
rounding, which counts a last, partial window when the stride does not divide ``H - R``
(give ``H = (Ho - 1) * sh + R`` to get a framework's ``floor`` convention exactly).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .sparsity import to_numpy


def check_dim(name: str, value: Any) -> int:
    """A positive integer dimension, or ``TypeError``/``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


@dataclass(frozen=True)
class ConvShape:
    """A convolution layer in SCALE-Sim's terms (sizes in elements)."""

    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride_h: int = 1
    stride_w: int = 1

    def __post_init__(self) -> None:
        for f in ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters",
                  "stride_h", "stride_w"):
            object.__setattr__(self, f, check_dim(f, getattr(self, f)))
        if self.filter_h > self.ifmap_h:
            raise ValueError(f"filter_h ({self.filter_h}) exceeds ifmap_h ({self.ifmap_h})")
        if self.filter_w > self.ifmap_w:
            raise ValueError(f"filter_w ({self.filter_w}) exceeds ifmap_w ({self.ifmap_w})")

    @property
    def ofmap_h(self) -> int:
        return -(-(self.ifmap_h - self.filter_h) // self.stride_h) + 1

    @property
    def ofmap_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w) // self.stride_w) + 1

    def gemm(self) -> tuple[int, int, int]:
        """``(M, K, N)`` of the im2col lowering."""
        return (self.ofmap_h * self.ofmap_w, self.filter_h * self.filter_w * self.channels,
                self.num_filters)


def conv_weight_to_gemm(weight: Any, conv: ConvShape) -> np.ndarray:
    """A convolution weight as the ``K x N`` GEMM weight of its im2col lowering.

    Accepts ``(num_filters, channels, filter_h, filter_w)`` (PyTorch's layout; K is then
    ordered channel-major, so N:M groups run along input channels) or ``K x N`` already.

    Raises:
        ValueError: a 4-D weight whose shape is not the convolution's.
    """
    arr = to_numpy(weight)
    if arr.ndim == 4:
        want = (conv.num_filters, conv.channels, conv.filter_h, conv.filter_w)
        if tuple(arr.shape) != want:
            raise ValueError(f"conv weight has shape {tuple(arr.shape)}, expected {want} "
                             f"(num_filters, channels, filter_h, filter_w)")
        return arr.reshape(conv.num_filters, -1).T
    return arr


@dataclass(frozen=True)
class Layer:
    """One GEMM to simulate, with where it came from.

    ``nm``: the layer's N:M weight sparsity from a topology file's sparsity column
    (``None`` when dense); used when the architecture runs in ``"nm"`` mode.
    """

    name: str
    M: int
    K: int
    N: int
    conv: ConvShape | None = None
    nm: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for f in ("M", "K", "N"):
            object.__setattr__(self, f, check_dim(f, getattr(self, f)))

    @classmethod
    def from_conv(cls, name: str, conv: ConvShape, nm: tuple[int, int] | None = None) -> Layer:
        M, K, N = conv.gemm()
        return cls(name, M, K, N, conv=conv, nm=nm)

    @property
    def macs(self) -> int:
        return self.M * self.K * self.N
