"""Evaluating chunks of design points on a worker (a local process or a Dask worker).

A ``WorkloadSpec`` is what every point of a sweep shares: the layers, the seed and the energy
and area tables. It is small and pickles cheaply; each worker process turns it into a
``PreparedWorkload`` once (kept in a per-process cache keyed by the spec's fingerprint), so
weight patterns are drawn and derived once per worker, not once per point or per chunk.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .arch import Arch
from .area import AreaTable, estimate_area
from .design_point import SIMULATOR_VERSION, DesignPoint, canonical, point_id
from .energy import EnergyTable
from .prepared import PreparedWorkload
from .result import summarize
from .workload import Layer

# Prepared workloads kept per process (each holds its weight patterns).
CACHE_SIZE = 2
_CACHE: OrderedDict[str, PreparedWorkload] = OrderedDict()


@dataclass(frozen=True)
class WorkloadSpec:
    """The workload of a sweep: ``layers`` run one after another, layer ``i`` drawing its
    synthetic pattern with seed ``seed + i`` unless ``weights`` (``PackedPatterns``) holds
    its real one, priced with ``energy_table`` and ``area_table`` (resolved tables, not
    paths)."""

    layers: tuple[Layer, ...]
    seed: int
    energy_table: EnergyTable
    area_table: AreaTable
    weights: Any = None

    @property
    def key(self) -> str:
        """Fingerprint of everything here that changes a row (16 hex digits)."""
        cached = self.__dict__.get("_key")
        if cached is None:
            layers = [[x.name, x.M, x.K, x.N, list(x.nm) if x.nm else None,
                       dataclasses.astuple(x.conv) if x.conv else None] for x in self.layers]
            payload = {"v": SIMULATOR_VERSION, "layers": layers, "seed": self.seed,
                       "energy": _table_dict(self.energy_table),
                       "area": _table_dict(self.area_table)}
            if self.weights is not None:  # real patterns: their digest (absent: keys as before)
                payload["weights"] = self.weights.digest
            text = canonical(payload)
            cached = hashlib.sha256(text.encode()).hexdigest()[:16]
            object.__setattr__(self, "_key", cached)
        return cached

    def point_id(self, point: DesignPoint) -> str:
        return point_id(point, self.key)


def _table_dict(table: Any) -> dict[str, Any]:
    return {f.name: getattr(table, f.name) for f in dataclasses.fields(table) if f.compare}


def prepared(spec: WorkloadSpec) -> PreparedWorkload:
    """This process's ``PreparedWorkload`` for ``spec`` (built on first use, then kept)."""
    work = _CACHE.get(spec.key)
    if work is None:
        weights = spec.weights.unpack() if spec.weights is not None else None
        work = PreparedWorkload(list(spec.layers), seed=spec.seed, weights=weights)
        _CACHE[spec.key] = work
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(spec.key)
    return work


def evaluate_point(spec: WorkloadSpec, point: DesignPoint) -> dict[str, Any]:
    """One row: the summed result of the layers on ``point`` (``Result.to_row``), plus
    ``layers``, ``arch_name``, ``density``, ``seed``, ``point_id`` and the area in mm^2
    (``area_pe_mm2``, ``area_sram_mm2``, ``area_mm2``)."""
    arch: Arch = point.arch
    results = prepared(spec).simulate(arch, density=point.density,
                                      energy_table=spec.energy_table)
    row = summarize(results, name="total").to_row()
    row["layers"] = len(results)
    row["arch_name"] = arch.name
    row["density"] = point.density
    row["seed"] = spec.seed
    area = estimate_area(arch, spec.area_table)
    row["area_pe_mm2"] = area["pe"]
    row["area_sram_mm2"] = area["sram"]
    row["area_mm2"] = area["total"]
    row["point_id"] = spec.point_id(point)
    return row


def evaluate_chunk(spec: WorkloadSpec, chunk: list[tuple[int, DesignPoint]]
                   ) -> list[dict[str, Any]]:
    """Rows of ``(index, point)`` pairs, each row with ``point = index``."""
    rows = []
    for index, point in chunk:
        row = evaluate_point(spec, point)
        row["point"] = index
        rows.append(row)
    return rows
