"""Drawing a sweep and its Pareto front as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

LABELS = {"elapsed_cycles": "elapsed cycles", "energy_total_pj": "energy (pJ)",
          "area_mm2": "area (mm$^2$)", "total_cycles": "total cycles"}


def plot_front(rows: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]],
               objectives: Sequence[str], path: str | Path, *, title: str = "") -> Path:
    """Scatter every row on the first two objectives (log axes), coloured by the third when
    there is one, with the front's points circled; writes ``path`` (PNG) and returns it."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(objectives) < 2:
        raise ValueError("plotting a front needs at least two objectives")
    x, y = objectives[0], objectives[1]
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=120)
    xs = np.array([r[x] for r in rows], dtype=float)
    ys = np.array([r[y] for r in rows], dtype=float)
    if len(objectives) >= 3:
        c = np.array([r[objectives[2]] for r in rows], dtype=float)
        sc = ax.scatter(xs, ys, c=c, s=9, cmap="viridis", alpha=0.6, linewidths=0,
                        norm=matplotlib.colors.LogNorm() if (c > 0).all() else None)
        fig.colorbar(sc, ax=ax, label=LABELS.get(objectives[2], objectives[2]))
    else:
        ax.scatter(xs, ys, s=9, color="0.6", alpha=0.6, linewidths=0)
    fx = np.array([r[x] for r in front], dtype=float)
    fy = np.array([r[y] for r in front], dtype=float)
    ax.scatter(fx, fy, s=36, facecolors="none", edgecolors="crimson", linewidths=1.2,
               label=f"Pareto front ({len(front)} of {len(rows)} points)")
    if (xs > 0).all() and (ys > 0).all():
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.set_title(title or f"{len(rows)} design points")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
