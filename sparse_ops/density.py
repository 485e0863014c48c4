"""Per-layer densities for a global budget: uniform or Erdős–Rényi-kernel (ERK).

ERK follows RigL (Evci et al., 2020, ``sparse_utils.get_sparsities``): a layer of shape
``(n_out, n_in)`` gets density ``eps * (n_in + n_out) / (n_in * n_out)``, with the one scale
``eps`` chosen so that the layers' nonzeros add up to ``density * sum(n_out * n_in)``. A layer
whose ERK density would exceed 1 is made dense (density 1) and ``eps`` is solved again for the
rest; as in RigL's code, the layers at the largest raw ERK factor are capped first, one value of
the factor per round, until no density exceeds 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DISTRIBUTIONS = ("uniform", "erk")


def check_distribution(distribution: object) -> str:
    """The distribution's name, or TypeError / ValueError naming ``distribution``."""
    if not isinstance(distribution, str):
        raise TypeError(
            f"distribution: expected one of {DISTRIBUTIONS}, got {type(distribution).__name__}"
        )
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution: expected one of {DISTRIBUTIONS}, got {distribution!r}")
    return distribution


def layer_densities(
    shapes: Sequence[tuple[int, int]], density: float, distribution: str = "uniform"
) -> list[float]:
    """Density of each layer so that ``sum(d_i * n_out_i * n_in_i) == density * total``.

    ``shapes``: the weights' ``(n_out, n_in)`` (any order of the two: the ERK factor is
    symmetric). ``density`` in (0, 1]. ``distribution``: ``"uniform"`` (every layer gets
    ``density``) or ``"erk"`` (see the module docstring: smaller layers, relative to their
    fan-in + fan-out, get higher density, capped at 1). Returns one float in (0, 1] per shape;
    the budget is met exactly in real numbers (pruning then rounds each layer's count).
    """
    from ._checks import check_density

    density = check_density(density)
    distribution = check_distribution(distribution)
    dims: list[tuple[int, int]] = []
    for i, s in enumerate(shapes):
        if (
            not isinstance(s, (tuple, list))
            or len(s) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in s)
        ):
            raise TypeError(f"shapes: entry {i} must be a pair of ints (n_out, n_in), got {s!r}")
        if s[0] < 1 or s[1] < 1:
            raise ValueError(f"shapes: entry {i} must have positive dims, got {tuple(s)}")
        dims.append((int(s[0]), int(s[1])))
    if distribution == "uniform" or not dims:
        return [density] * len(dims)

    numel = [a * b for a, b in dims]
    raw = [(a + b) / (a * b) for a, b in dims]  # the ERK factor, RigL's power scale 1
    dense: set[int] = set()
    while True:
        # Ones left for the sparse layers once the dense ones take all their entries.
        budget = density * sum(numel) - sum(numel[i] for i in dense)
        divisor = sum(raw[i] * numel[i] for i in range(len(dims)) if i not in dense)
        if divisor == 0:  # every layer dense: only possible at density 1
            return [1.0] * len(dims)
        eps = budget / divisor
        free = [i for i in range(len(dims)) if i not in dense]
        top = max(raw[i] for i in free)
        if top * eps > 1.0 and not math.isclose(top * eps, 1.0, rel_tol=1e-12):
            dense.update(i for i in free if raw[i] == top)
            continue
        return [1.0 if i in dense else min(1.0, raw[i] * eps) for i in range(len(dims))]
