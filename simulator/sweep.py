"""Design-space sweeps: many architectures x one workload, in parallel across cores."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from .arch import Arch
from .engine import simulate_layers
from .result import summarize
from .workload import Layer

_WORK: dict[str, Any] = {}


def grid_points(grid: dict[str, Iterable[Any]], base: Arch | None = None) -> list[Arch]:
    """Every combination of the listed ``Arch`` field values (other fields from ``base``).

    ``grid`` maps field names to lists of values; ``"sram_kb"`` sets all three buffers.
    Invalid combinations raise the ``Arch`` error for the first bad point.
    """
    base = base or Arch()
    fields = set(Arch.__dataclass_fields__) | {"sram_kb"}
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
        if "sram_kb" in change:
            kb = change.pop("sram_kb")
            change.update(ifmap_sram_kb=kb, filter_sram_kb=kb, ofmap_sram_kb=kb)
        points.append(base.with_(**change))
    return points


def _init(layers: list[Layer], kwargs: dict[str, Any]) -> None:
    _WORK["layers"] = layers
    _WORK["kwargs"] = kwargs


def _run_point(item: tuple[int, Arch]) -> dict[str, Any]:
    index, arch = item
    results = simulate_layers(arch, _WORK["layers"], **_WORK["kwargs"])
    row = summarize(results, name="total").to_row()
    row["point"] = index
    row["layers"] = len(results)
    row["arch_name"] = arch.name
    return row


def sweep(archs: Iterable[Arch] | dict[str, Iterable[Any]], workload: Layer | list[Layer], *,
          processes: int | None = None, progress: bool = True, density: float | None = None,
          seed: int = 0, energy_table: Any = None, base: Arch | None = None
          ) -> list[dict[str, Any]]:
    """Simulate ``workload`` (a layer or a layer list) on every architecture.

    Args:
        archs: architectures, or a grid (see ``grid_points``) expanded around ``base``.
        workload: what to run on each; the layers run one after another.
        processes: worker processes (default: all cores; 1 runs in this process).
        progress: show a tqdm progress bar.
        density, seed, energy_table: passed to ``simulate_layers``.
    Returns:
        One flat row per point (``Result.to_row`` of the summed result, plus ``point``),
        in the order of ``archs``.
    """
    points = grid_points(archs, base) if isinstance(archs, dict) else list(archs)
    for i, a in enumerate(points):
        if not isinstance(a, Arch):
            raise TypeError(f"sweep point {i} is not a simulator.Arch: {type(a).__name__}")
    layers = [workload] if isinstance(workload, Layer) else list(workload)
    if not layers:
        raise ValueError("sweep needs at least one layer")
    kwargs = {"density": density, "seed": seed, "energy_table": energy_table}
    n = len(points)
    procs = processes if processes is not None else (os.cpu_count() or 1)
    if procs < 1:
        raise ValueError(f"processes must be >= 1, got {procs}")
    procs = min(procs, max(n, 1))
    items = list(enumerate(points))
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=n, desc="sweep", unit="pt", disable=not progress)
    try:
        if procs == 1:
            _init(layers, kwargs)
            for item in items:
                rows.append(_run_point(item))
                bar.update(1)
        else:
            methods = mp.get_all_start_methods()
            ctx = mp.get_context("fork" if "fork" in methods else "spawn")
            chunk = max(1, n // (procs * 16))
            with ctx.Pool(procs, initializer=_init, initargs=(layers, kwargs)) as pool:
                for row in pool.imap(_run_point, items, chunksize=chunk):
                    rows.append(row)
                    bar.update(1)
    finally:
        bar.close()
    return rows
