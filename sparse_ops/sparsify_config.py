"""``sparsify_(model, config, filter_fn)``: torchao's removed ``torchao.sparsity`` API, kept.

torchao deleted ``torchao.sparsity`` in 2026. Its entry point changed a model in place::

    sparsify_(model, SemiSparseWeightConfig())                      # 2:4
    sparsify_(model, BlockSparseWeightConfig(blocksize=64), filter_fn=lambda mod, fqn: ...)

The same calls work here (``so.sparsify_``), on the CPU kernels of this package, with each
config naming a layout of ``so.sparsify``:

- ``SemiSparseWeightConfig()``: ``"nm"`` 2:4, the 2 largest of every 4 input weights.
- ``BlockSparseWeightConfig(blocksize=64, density=None)``: ``"bsr"`` with square (or
  ``(R, C)``) blocks. ``density=None`` keeps the blocks that hold a nonzero, as torchao did
  for a weight pruned beforehand; a density prunes whole blocks by their L2 norm first.
- ``UnstructuredSparseWeightConfig(density=None, layout="bitmap")``: ``"bitmap"`` (or
  ``"csr"``); ``density=None`` keeps the nonzeros as they are.
- Every config takes ``method="wanda"`` with ``calibration=`` a batch (a tensor, a dict
  such as a tokenizer's output, or a tuple): Wanda's ``|W| * ||x||`` scores, as torchao's
  ``WandaSparsifier`` computed them.

``filter_fn(module, fqn) -> bool`` is called for each ``nn.Linear`` with its fully qualified
name, as in torchao; without it every ``nn.Linear`` is a candidate (``lm_head`` included,
unlike ``so.sparsify``'s default), except the ones ``so.sparsify`` always leaves dense
(tied weights, layers inside ``nn.MultiheadAttention``, Linear subclasses, blocks that do not
divide the weight), listed in ``model.sparsify_skipped``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .sparsify import sparsify

METHODS = ("magnitude", "wanda")


def _check_common(method: str, density: float | None, calibration: Any) -> None:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if density is not None:
        if isinstance(density, bool) or not isinstance(density, numbers.Real):
            raise TypeError(f"density: expected a number in (0, 1] or None, got {density!r}")
        if not 0 < density <= 1:
            raise ValueError(f"density: expected a number in (0, 1] or None, got {density}")
    if method == "wanda" and calibration is None:
        raise ValueError("calibration: method='wanda' needs calibration= (a batch of inputs)")
    if method != "wanda" and calibration is not None:
        raise ValueError("calibration: only used with method='wanda'")


@dataclass(frozen=True)
class SemiSparseWeightConfig:
    """2:4 semi-structured weights (torchao's ``SemiSparseWeightConfig`` /
    ``semi_sparse_weight()``): layout ``"nm"``, ``n=2``, ``m=4``, values ``(out, in / 2)``.

    ``method``: ``"magnitude"`` (keep the 2 largest ``|w|`` of every 4) or ``"wanda"``
    (``|w| * ||x||``, needs ``calibration``). ``backend``: as ``SparseLinear``'s.
    """

    method: str = "magnitude"
    calibration: Any = field(default=None, compare=False, repr=False)
    backend: str | None = None

    def __post_init__(self) -> None:
        _check_common(self.method, None, self.calibration)

    def layout_args(self) -> tuple[str, dict[str, Any]]:
        """The ``so.sparsify`` layout and its pattern arguments."""
        return "nm", {"n": 2, "m": 4}


@dataclass(frozen=True)
class BlockSparseWeightConfig:
    """Block-sparse weights (torchao's ``BlockSparseWeightConfig`` /
    ``block_sparse_weight(blocksize=64)``): layout ``"bsr"``.

    ``blocksize``: an int (square ``blocksize x blocksize`` blocks) or ``(R, C)``; a layer
    whose weight it does not divide stays dense. ``density``: ``None`` keeps every block that
    holds a nonzero (a weight pruned beforehand, as torchao expected); a number in (0, 1]
    keeps that fraction of blocks by L2 norm.
    """

    blocksize: int | tuple[int, int] = 64
    density: float | None = None
    method: str = "magnitude"
    calibration: Any = field(default=None, compare=False, repr=False)
    backend: str | None = None

    def __post_init__(self) -> None:
        b = self.blocksize
        pair = (b, b) if isinstance(b, numbers.Integral) and not isinstance(b, bool) else b
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(
                isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= 1
                for x in pair)):
            raise ValueError(f"blocksize: expected a positive int or (R, C), got {b!r}")
        object.__setattr__(self, "blocksize", (int(pair[0]), int(pair[1])))
        _check_common(self.method, self.density, self.calibration)
        if self.method == "wanda" and self.density is None:
            raise ValueError("density: method='wanda' prunes to a density; give density=")

    def layout_args(self) -> tuple[str, dict[str, Any]]:
        d = 1.0 if self.density is None else float(self.density)
        return "bsr", {"density": d, "blocksize": self.blocksize}


@dataclass(frozen=True)
class UnstructuredSparseWeightConfig:
    """Unstructured weights: layout ``"bitmap"`` (one bit a position; for 30-70 % density)
    or ``"csr"`` (below about 6 %).

    ``density``: ``None`` keeps the weight's nonzeros as they are (a model pruned
    elsewhere); a number in (0, 1] keeps that fraction of each layer by magnitude or Wanda
    score.
    """

    density: float | None = None
    layout: str = "bitmap"
    method: str = "magnitude"
    calibration: Any = field(default=None, compare=False, repr=False)
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.layout not in ("bitmap", "csr"):
            raise ValueError(f"layout: expected 'bitmap' or 'csr', got {self.layout!r}")
        _check_common(self.method, self.density, self.calibration)
        if self.method == "wanda" and self.density is None:
            raise ValueError("density: method='wanda' prunes to a density; give density=")

    def layout_args(self) -> tuple[str, dict[str, Any]]:
        return self.layout, {"density": 1.0 if self.density is None else float(self.density)}


CONFIGS = (SemiSparseWeightConfig, BlockSparseWeightConfig, UnstructuredSparseWeightConfig)
SparseWeightConfig = SemiSparseWeightConfig | BlockSparseWeightConfig | \
    UnstructuredSparseWeightConfig


def sparsify_(
    model: nn.Module,
    config: SparseWeightConfig,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
) -> nn.Module:
    """Swap, in place, the ``nn.Linear`` layers of ``model`` for ``SparseLinear`` per ``config``.

    torchao's ``sparsify_`` semantics: ``model`` is changed in place (and returned);
    ``filter_fn(module, fqn)`` picks the layers (default: every ``nn.Linear``, ``lm_head``
    included). It runs ``so.sparsify(model, layout, ..., keep_dense=())`` with the
    config's layout, so the layers are exactly those of that call; ``model.sparsified`` and
    ``model.sparsify_skipped`` say which layers were swapped and why others were not.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not isinstance(config, CONFIGS):
        raise TypeError(f"config: expected one of {', '.join(c.__name__ for c in CONFIGS)}, "
                        f"got {type(config).__name__}")
    if filter_fn is not None and not callable(filter_fn):
        raise TypeError(f"filter_fn: expected a callable (module, fqn) -> bool, got "
                        f"{type(filter_fn).__name__}")
    layout, kwargs = config.layout_args()

    def pick(name: str, module: nn.Linear) -> bool:
        return bool(filter_fn(module, name))  # type: ignore[misc]

    return sparsify(model, layout, keep_dense=(), filter=None if filter_fn is None else pick,
                    method=config.method, calibration=config.calibration,
                    backend=config.backend, **kwargs)
