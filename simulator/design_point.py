"""Design points of a sweep: an architecture and a weight density, and their stable ids.

A point is what one row of a sweep describes: an ``Arch`` (sparsity mode included) and the
density of the synthetic weight patterns (``None`` = dense weights, or, for ``"nm"``, exactly
n of every m). Its ``point_id`` hashes the architecture, the point's density, the workload
(layers, seed, energy and area tables) and the simulator version, so a results directory can
tell which points it already holds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .arch import Arch, current_fields
from .layout import DEFAULT_LAYOUT
from .sparsity import check_density

# Bump when a change alters any figure a row holds: stored rows then no longer match.
SIMULATOR_VERSION = "1.1.0"

WORKLOAD_AXES = ("density",)
# Arch fields renamed since they were first hashed -> the name a point's hash uses for them:
# the hash keeps the first name, so the ids of stored points stay valid.
HASHED_NAMES = {"layout": "weight_format"}
# Arch fields added after SIMULATOR_VERSION 1.1.0 (by hashed name), with the default that
# gives the rows of before: left out of a point's hash at that default, so stored point ids
# stay valid.
LATER_FIELDS = {"weight_format": DEFAULT_LAYOUT}


@dataclass(frozen=True)
class DesignPoint:
    """One point: ``arch`` running the workload with synthetic patterns of ``density``."""

    arch: Arch
    density: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.arch, Arch):
            raise TypeError(f"DesignPoint.arch must be a simulator.Arch, got "
                            f"{type(self.arch).__name__}")
        object.__setattr__(self, "density", check_density(self.density))


def to_point(item: Any, index: int, density: float | None = None) -> DesignPoint:
    """A sweep item as a ``DesignPoint``: an ``Arch`` (with ``density``), a ``DesignPoint``
    or an ``(Arch, density)`` pair; ``TypeError`` naming the item otherwise."""
    if isinstance(item, DesignPoint):
        return item
    if isinstance(item, Arch):
        return DesignPoint(item, density)
    if (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Arch)):
        return DesignPoint(item[0], item[1])
    raise TypeError(f"sweep point {index} is not a simulator.Arch, a DesignPoint or an "
                    f"(Arch, density) pair: {type(item).__name__}")


def design_points(grid: dict[str, Iterable[Any]], base: Arch | None = None,
                  density: float | None = None) -> list[DesignPoint]:
    """Every combination of a grid of ``Arch`` fields and the workload axis ``"density"``.

    ``grid`` maps field names (plus ``"sram_kb"`` for all three buffers, and ``"density"``)
    to lists of values; fields not in it come from ``base``, the density from ``density``.
    The last key varies fastest. Invalid combinations raise the ``Arch`` error of the first.
    A former field name (``weight_format``) is read as the current one, with a warning.
    """
    base = base or Arch()
    grid = current_fields(dict(grid), "sweep grid")
    fields = set(Arch.__dataclass_fields__) | {"sram_kb"} | set(WORKLOAD_AXES)
    for key in grid:
        if key not in fields:
            raise ValueError(f"unknown Arch field in sweep grid: {key!r}")
    keys = list(grid)
    values = [list(grid[k]) for k in keys]
    for k, v in zip(keys, values, strict=True):
        if not v:
            raise ValueError(f"sweep grid field {k!r} has no values")
    points = []
    for combo in itertools.product(*values):
        change = dict(zip(keys, combo, strict=True))
        d = change.pop("density", density)
        if "sram_kb" in change:
            kb = change.pop("sram_kb")
            change.update(ifmap_sram_kb=kb, filter_sram_kb=kb, ofmap_sram_kb=kb)
        points.append(DesignPoint(base.with_(**change), d))
    return points


def canonical(obj: Any) -> str:
    """A stable JSON text of ``obj`` (sorted keys, no spaces) for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def point_id(point: DesignPoint, workload_key: str) -> str:
    """16 hex digits identifying ``point`` on the workload whose fingerprint is
    ``workload_key`` (see ``evaluate.WorkloadSpec.key``) with this simulator version.

    Fields of ``LATER_FIELDS`` at their default are not hashed, so a point that existed
    before such a field did keeps its id (and a results directory its points); renamed
    fields are hashed under their first name (``HASHED_NAMES``)."""
    arch = {HASHED_NAMES.get(k, k): v for k, v in point.arch.to_dict().items()}
    for key, default in LATER_FIELDS.items():
        if arch.get(key) == default:
            del arch[key]
    text = canonical({"v": SIMULATOR_VERSION, "arch": arch, "density": point.density,
                      "workload": workload_key})
    return hashlib.sha256(text.encode()).hexdigest()[:16]
