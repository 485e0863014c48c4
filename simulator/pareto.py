"""Pareto fronts of sweep rows: the points no other point beats on every objective.

Point ``q`` dominates ``p`` when ``q`` is no worse on every objective and better on one. All
objectives are minimised unless named in ``maximize``. Points with equal objective vectors do
not dominate each other, so all of them stay on the front.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OBJECTIVES = ("elapsed_cycles", "energy_total_pj", "area_mm2")
_BATCH = 512


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """``True`` for the rows of ``values`` (``n x k``, all minimised) that no row dominates.

    Points are visited in lexicographic order, since a point can only be dominated by one
    that comes earlier in it, in batches checked against the front found so far and against
    each other: ``O(n * front)`` work, vectorised.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"values must be n x k, got shape {v.shape}")
    n = v.shape[0]
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    order = np.lexsort(v.T[::-1])
    front = np.empty((0, v.shape[1]))
    for s in range(0, n, _BATCH):
        idx = order[s:s + _BATCH]
        b = v[idx]
        alive = ~_dominated_by(front, b)
        # within the batch: only earlier points (lexicographically) can dominate later ones
        cand = b[alive]
        inner = _dominates(cand, cand)  # inner[i, j]: cand[i] dominates cand[j]
        ok = ~inner.any(axis=0)
        chosen = idx[alive][ok]
        keep[chosen] = True
        front = np.vstack([front, cand[ok]])
    return keep


def _dominates(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``out[i, j]``: ``a[i]`` dominates ``b[j]``."""
    le = (a[:, None, :] <= b[None, :, :]).all(axis=2)
    lt = (a[:, None, :] < b[None, :, :]).any(axis=2)
    return le & lt


def _dominated_by(front: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``out[j]``: some row of ``front`` dominates ``b[j]``."""
    out = np.zeros(b.shape[0], dtype=bool)
    for s in range(0, front.shape[0], _BATCH):
        out |= _dominates(front[s:s + _BATCH], b).any(axis=0)
    return out


def objective_matrix(rows: Sequence[dict[str, Any]], objectives: Sequence[str],
                     maximize: Iterable[str] = ()) -> np.ndarray:
    """The ``n x k`` matrix of objectives to minimise (maximised ones negated).

    Raises:
        ValueError: an objective is missing from a row, or not a finite number.
    """
    objectives = list(objectives)
    if not objectives:
        raise ValueError("pareto needs at least one objective")
    maximize = set(maximize)
    unknown = maximize - set(objectives)
    if unknown:
        raise ValueError(f"maximize names {sorted(unknown)}, which are not objectives")
    out = np.empty((len(rows), len(objectives)))
    for i, row in enumerate(rows):
        for j, key in enumerate(objectives):
            if key not in row:
                raise ValueError(f"objective {key!r} is not a column of row {i} "
                                 f"(columns: {', '.join(sorted(row))})")
            x = row[key]
            if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
                raise ValueError(f"objective {key!r} of row {i} is not a finite number: {x!r}")
            out[i, j] = -x if key in maximize else x
    return out


def pareto(rows: Sequence[dict[str, Any]] | str | Path,
           objectives: Sequence[str] = DEFAULT_OBJECTIVES, *, maximize: Iterable[str] = ()
           ) -> list[dict[str, Any]]:
    """The non-dominated rows, in their original order.

    Args:
        rows: sweep rows (dicts), or a results directory written by ``sweep(out=...)``.
        objectives: row columns to minimise (default cycles, energy in pJ, area in mm^2).
        maximize: objectives to maximise instead (e.g. ``"utilization"``).
    """
    if isinstance(rows, (str, Path)):
        from .results_store import ResultsStore

        if not Path(rows).is_dir():
            raise ValueError(f"{rows}: not a results directory")
        rows = ResultsStore(rows).rows()
    rows = list(rows)
    mask = pareto_mask(objective_matrix(rows, objectives, maximize))
    return [r for r, k in zip(rows, mask, strict=True) if k]
