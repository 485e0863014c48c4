"""Aggregate the runs and compute the verdict on the paper's headline from them.

Nowak et al. 2023: "criteria perform alike at high density; magnitude is best or tied at the
lowest densities". Two means are *tied* when they differ by at most
``max(2 · SE_diff, tol)`` (``SE_diff = sqrt(sd_a²/n_a + sd_b²/n_b)``, ``tol`` = 0.5 accuracy
points): about a 95% band over the seeds, with a floor for the test set's granularity.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

TOL = 0.005


def aggregate(runs: list[dict]) -> dict:
    """``{(task, grow, mode, density): (mean, sd, n)}``; dense/static have grow None."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in runs:
        groups[(r["task"], r["grow"], r["mode"], r["density"])].append(r["acc"])
    out = {}
    for key, accs in groups.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        out[key] = (statistics.fmean(accs), sd, len(accs))
    return out


def tied(a: tuple, b: tuple) -> bool:
    se = math.sqrt(a[1] ** 2 / a[2] + b[1] ** 2 / b[2])
    return abs(a[0] - b[0]) <= max(2 * se, TOL)


def ranking(agg: dict, task: str, grow: str, density: float, criteria) -> list[tuple[str, tuple]]:
    rows = [(c, agg[(task, grow, c, density)]) for c in criteria
            if (task, grow, c, density) in agg]
    return sorted(rows, key=lambda kv: -kv[1][0])


def verdict(agg: dict, task: str, grow: str, densities, criteria) -> dict:
    """Both halves of the headline for one task and growth, with the evidence."""
    ds = sorted(densities, reverse=True)
    n = max(1, len(ds) // 2) if len(ds) < 4 else 2
    high, low = ds[:n], ds[-n:]
    alike = {}
    for d in high:
        rank = ranking(agg, task, grow, d, criteria)
        best = rank[0][1]
        outliers = [c for c, s in rank if not tied(s, best)]
        alike[d] = {"spread": rank[0][1][0] - rank[-1][1][0], "not_tied": outliers,
                    "best": rank[0][0]}
    mag = {}
    for d in low:
        rank = ranking(agg, task, grow, d, criteria)
        best_c, best = rank[0]
        m = agg.get((task, grow, "magnitude", d))
        mag[d] = {"best": best_c, "magnitude_rank": [c for c, _ in rank].index("magnitude") + 1
                  if m else None, "magnitude_tied": bool(m and tied(m, best)),
                  "gap": best[0] - m[0] if m else None}
    part1 = all(not v["not_tied"] for v in alike.values())
    part2 = all(v["magnitude_tied"] for v in mag.values())
    return {"high": alike, "low": mag, "alike_at_high": part1, "magnitude_at_low": part2,
            "supported": part1 and part2}
