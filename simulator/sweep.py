"""Design-space sweeps: many design points x one workload, on this machine or a Dask cluster.

``sweep`` expands the points (a grid, or a list of architectures / ``DesignPoint``s), cuts
them into chunks and runs the chunks on an executor: ``"local"`` (a process pool,
``local_executor``) or ``"dask"`` (a ``dask.distributed`` cluster, ``dask_executor``). With
``out=DIR`` every finished chunk is written to a Parquet dataset (``results_store``) and points
already there are skipped, so an interrupted sweep resumes where it stopped. The rows are the
same, in the same order, whatever the executor, the chunking or the resumption.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .arch import Arch
from .area import AreaTable, resolve_area_table
from .design_point import DesignPoint, design_points, to_point
from .energy import EnergyTable, resolve_table
from .evaluate import WorkloadSpec
from .local_executor import LocalExecutor
from .packed_patterns import PackedPatterns
from .results_store import ResultsStore
from .workload import Layer

EXECUTORS = ("local", "dask")
MAX_CHUNK = 500


def grid_points(grid: dict[str, Iterable[Any]], base: Arch | None = None) -> list[Arch]:
    """Every combination of the listed ``Arch`` field values (other fields from ``base``).

    ``grid`` maps field names to lists of values; ``"sram_kb"`` sets all three buffers.
    Invalid combinations raise the ``Arch`` error for the first bad point.
    """
    if "density" in grid:
        raise ValueError("'density' is a workload axis: use design_points (or sweep) for it")
    return [p.arch for p in design_points(grid, base)]


def expand_points(archs: Iterable[Any] | dict[str, Iterable[Any]], base: Arch | None = None,
                  density: float | None = None) -> list[DesignPoint]:
    """The design points of ``archs``: a grid (``design_points``, may sweep ``"density"``),
    or architectures, ``DesignPoint``s or ``(Arch, density)`` pairs (``density`` for bare
    architectures)."""
    if isinstance(archs, dict):
        return design_points(archs, base, density)
    if isinstance(archs, (str, bytes)) or not isinstance(archs, Iterable):
        raise TypeError(f"sweep points must be a grid dict or an iterable of Arch, got "
                        f"{type(archs).__name__}")
    return [to_point(a, i, density) for i, a in enumerate(archs)]


def split_workload(workload: Any, weights: dict[str, Any] | None
                   ) -> tuple[Layer | list[Layer], dict[str, Any] | None]:
    """Layers and real weights of ``workload``: a layer, a layer list, or an object with
    ``layers`` and ``weights`` (``workload_from_model``'s ``ModelWorkload``), whose weights
    an explicit ``weights=`` overrides."""
    if hasattr(workload, "layers") and hasattr(workload, "weights") \
            and not isinstance(workload, Layer):
        return list(workload.layers), dict(workload.weights) if weights is None else weights
    return workload, weights


def workload_spec(workload: Layer | list[Layer], *, seed: int = 0,
                  energy_table: EnergyTable | str | Path | None = None,
                  area_table: AreaTable | str | Path | None = None,
                  weights: dict[str, Any] | None = None) -> WorkloadSpec:
    """The shared part of every point: layers, seed, real weight patterns (``weights``:
    layer name -> ``K x N`` weight, its zeros the pattern) and the resolved cost tables."""
    layers = [workload] if isinstance(workload, Layer) else list(workload)
    if not layers:
        raise ValueError("sweep needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"workload[{i}] must be a simulator.Layer, got "
                            f"{type(layer).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    packed = PackedPatterns(weights, layers) if weights else None
    return WorkloadSpec(tuple(layers), int(seed), resolve_table(energy_table),
                        resolve_area_table(area_table), weights=packed)


def make_executor(executor: Any = "local", *, processes: int | None = None,
                  address: str | None = None, n_workers: int | None = None) -> Any:
    """An executor object from a name (``"local"`` or ``"dask"``); objects pass through."""
    if hasattr(executor, "map_chunks"):
        return executor
    if executor == "local":
        if address is not None:
            raise ValueError("address is for executor='dask'")
        return LocalExecutor(processes)
    if executor == "dask":
        from .dask_executor import DaskExecutor

        return DaskExecutor(address, n_workers=n_workers or processes)
    raise ValueError(f"executor must be one of {EXECUTORS} or an executor object, "
                     f"got {executor!r}")


def default_chunk(points: int, workers: int) -> int:
    """Points per chunk: about 8 chunks per worker, at most ``MAX_CHUNK``."""
    return max(1, min(MAX_CHUNK, math.ceil(points / (max(1, workers) * 8))))


def run_points(points: list[DesignPoint], spec: WorkloadSpec, executor: Any, *,
               chunk: int | None = None, out: str | Path | ResultsStore | None = None,
               progress: bool = True, desc: str = "sweep") -> list[dict[str, Any]]:
    """Rows of ``points`` (``point`` = their index), run on ``executor`` in chunks.

    With ``out``, rows already stored there are reused and every finished chunk is written
    as soon as it arrives. Equal points are simulated once.
    """
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                              or chunk < 1):
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    store = out if isinstance(out, ResultsStore) or out is None else ResultsStore(out)
    done = store.load() if store is not None else {}
    ids = [spec.point_id(p) for p in points]
    rows: list[dict[str, Any] | None] = [None] * len(points)
    first: dict[str, int] = {}
    todo: list[tuple[int, DesignPoint]] = []
    for i, (pid, p) in enumerate(zip(ids, points, strict=True)):
        if pid in done:
            rows[i] = {**done[pid], "point": i}
        elif pid not in first:
            first[pid] = i
            todo.append((i, p))
    size = chunk or default_chunk(len(todo), executor.workers)
    chunks = [todo[k:k + size] for k in range(0, len(todo), size)]
    computed = len(points) - len(todo)
    bar = tqdm(total=len(points), initial=computed, desc=desc, unit="pt",
               disable=not progress)
    try:
        for got in executor.map_chunks(spec, chunks):
            if store is not None:
                store.write_chunk(got)
            for row in got:
                rows[row["point"]] = row
            bar.update(len(got))
    finally:
        bar.close()
    for i, pid in enumerate(ids):
        if rows[i] is None:
            rows[i] = {**rows[first[pid]], "point": i}
    return rows  # type: ignore[return-value]


def sweep(archs: Iterable[Any] | dict[str, Iterable[Any]], workload: Layer | list[Layer], *,
          processes: int | None = None, progress: bool = True, density: float | None = None,
          seed: int = 0, energy_table: EnergyTable | str | Path | None = None,
          base: Arch | None = None, executor: Any = "local", address: str | None = None,
          chunk: int | None = None, out: str | Path | None = None,
          area_table: AreaTable | str | Path | None = None, n_workers: int | None = None,
          weights: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Simulate ``workload`` (a layer, a layer list, or ``workload_from_model``'s result) on
    every design point.

    Args:
        archs: a grid (see ``design_points``: ``Arch`` fields, ``"sram_kb"`` and the workload
            axis ``"density"``) expanded around ``base``, or architectures, ``DesignPoint``s
            or ``(Arch, density)`` pairs.
        workload: what to run on each; the layers run one after another. A
            ``ModelWorkload`` brings its layers' real weight patterns.
        processes: local worker processes (default: all cores; 1 runs in this process).
        progress: show a tqdm progress bar (points done / all points).
        density: density of the synthetic weight patterns of points that give none.
        seed: layer ``i`` draws its pattern with seed ``seed + i``.
        energy_table, area_table: cost tables (objects, YAML paths, or ``None``: 45 nm).
        executor: ``"local"``, ``"dask"``, or an executor object (kept open by the caller).
        address: with ``"dask"``: a running scheduler (``"tcp://host:8786"``); ``None``
            starts a LocalCluster of ``n_workers`` (default ``processes``, else all cores).
        chunk: points per task (default: about 8 tasks per worker, at most 500).
        out: a directory: finished chunks are written there as a Parquet dataset and points
            already there are not simulated again.
        weights: layer name -> weight (``K x N``; a convolution's may be ``(N, C, R, S)``):
            those layers run their weight's zeros at every point (the point's density is
            for the others); their digest enters ``point_id``.
    Returns:
        One flat row per point, in the order of the points: ``Result.to_row`` of the summed
        result plus ``point`` (index), ``layers``, ``arch_name``, ``density``, ``seed``,
        ``point_id`` and ``area_pe_mm2``, ``area_sram_mm2``, ``area_mm2`` (mm^2).
    """
    points = expand_points(archs, base, density)
    workload, weights = split_workload(workload, weights)
    spec = workload_spec(workload, seed=seed, energy_table=energy_table, area_table=area_table,
                         weights=weights)
    ex = make_executor(executor, processes=processes, address=address, n_workers=n_workers)
    try:
        return run_points(points, spec, ex, chunk=chunk, out=out, progress=progress)
    finally:
        if ex is not executor:
            ex.close()
