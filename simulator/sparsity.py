"""Weight patterns: reading a user's weight, checking N:M, and making synthetic patterns.

A pattern is a boolean ``K x N`` array: ``True`` where the weight is nonzero. ``K`` is the
reduction dimension (rows of W), ``N`` the output channels (columns of W), as in SCALE-Sim's
GEMM convention ``X (M x K) @ W (K x N)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

PATTERN_KINDS = ("uniform", "powerlaw", "block", "nm")


def to_numpy(weight: Any) -> np.ndarray:
    """An array from a numpy array, a list, or a tensor (duck-typed: no torch import)."""
    if isinstance(weight, np.ndarray):
        return weight
    if hasattr(weight, "detach") and hasattr(weight, "cpu") and hasattr(weight, "numpy"):
        weight = weight.detach().cpu()
        if str(getattr(weight, "dtype", "")) == "torch.bfloat16":
            weight = weight.float()
        if getattr(weight, "is_sparse", False) or "sparse" in str(getattr(weight, "layout", "")):
            weight = weight.to_dense()
        return np.asarray(weight.numpy())
    try:
        return np.asarray(weight)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"weight must be an array or tensor, got {type(weight).__name__}") from exc


def weight_mask(weight: Any, K: int, N: int) -> np.ndarray:
    """The nonzero pattern of ``weight`` as a ``K x N`` bool array (C-contiguous).

    Raises:
        TypeError: ``weight`` is not numeric.
        ValueError: its shape is not ``(K, N)``.
    """
    arr = to_numpy(weight)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"weight must hold numbers, got dtype {arr.dtype}")
    if arr.shape != (K, N):
        raise ValueError(f"weight has shape {tuple(arr.shape)} but the GEMM needs K x N = "
                         f"({K}, {N}) (inputs M x K, weights K x N)")
    return np.ascontiguousarray(arr != 0)


def check_nm(mask: np.ndarray, n: int, m: int) -> None:
    """Raise ``ValueError`` if some group of ``m`` weights along K holds more than ``n``."""
    K, N = mask.shape
    pad = (-K) % m
    counts = np.pad(mask, ((0, pad), (0, 0))).reshape(-1, m, N).sum(axis=1)
    bad = np.argwhere(counts > n)
    if bad.size:
        g, col = bad[0]
        raise ValueError(f"weight is not {n}:{m} sparse: column n={col} holds {counts[g, col]} "
                         f"nonzeros in rows k={g * m}..{min(K, g * m + m) - 1}")


def nm_slots(K: int, n: int, m: int) -> int:
    """Compressed length of one weight column of K rows stored n:m (slots, padding included)."""
    return (K // m) * n + min(n, K % m)


def block_mask(mask: np.ndarray, bk: int, bn: int) -> np.ndarray:
    """``True`` for each ``bk x bn`` block of ``mask`` holding a nonzero (edge blocks clipped)."""
    K, N = mask.shape
    kb, nb = -(-K // bk), -(-N // bn)
    padded = np.zeros((kb * bk, nb * bn), dtype=bool)
    padded[:K, :N] = mask
    return padded.reshape(kb, bk, nb, bn).any(axis=(1, 3))


def _check_dims(K: Any, N: Any) -> tuple[int, int]:
    for name, v in (("K", K), ("N", N)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {v!r}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    return int(K), int(N)


def synthetic_weight(K: int, N: int, density: float | None = None, kind: str = "uniform", *,
                     seed: int = 0, nm: tuple[int, int] = (2, 4),
                     block: tuple[int, int] = (16, 16), alpha: float = 1.0,
                     lanes: str = "cols", dtype: Any = np.float32) -> np.ndarray:
    """A random ``K x N`` weight whose zeros follow a chosen pattern.

    Args:
        K, N: weight shape (K = reduction dimension, N = output channels).
        density: fraction of nonzeros (0 < density <= 1). The count is exact:
            ``round(density * K * N)`` weights (``"block"``: that fraction of blocks).
            Ignored by ``"nm"``, whose density is n/m.
        kind: ``"uniform"`` (positions uniform at random), ``"powerlaw"`` (nonzeros per lane
            follow a power law ``count ~ rank ** -alpha``, positions within a lane uniform),
            ``"block"`` (whole ``block`` tiles nonzero), ``"nm"`` (exactly n nonzeros in every
            group of m along K; a last partial group gets min(n, its size)).
        seed: seed of the generator (same seed, same pattern).
        lanes: for ``"powerlaw"``: ``"cols"`` skews nonzeros per column of W (per output
            channel, i.e. per row of the sparse matrix S = W.T as kernels store it), ``"rows"``
            per row of W.
    Returns:
        ``K x N`` array of ``dtype``; nonzeros are drawn from N(0, 1) away from zero.
    """
    mask, rng = _synthetic_mask(K, N, density, kind, seed=seed, nm=nm, block=block, alpha=alpha,
                                lanes=lanes)
    values = rng.standard_normal(mask.shape).astype(dtype)
    values[np.abs(values) < 1e-3] = 1.0
    return np.where(mask, values, np.zeros((), dtype=dtype))


def synthetic_mask(K: int, N: int, density: float | None = None, kind: str = "uniform", *,
                   seed: int = 0, nm: tuple[int, int] = (2, 4),
                   block: tuple[int, int] = (16, 16), alpha: float = 1.0,
                   lanes: str = "cols") -> np.ndarray:
    """The ``K x N`` nonzero pattern of ``synthetic_weight`` (same arguments, same pattern),
    without drawing the values."""
    return _synthetic_mask(K, N, density, kind, seed=seed, nm=nm, block=block, alpha=alpha,
                           lanes=lanes)[0]


def _synthetic_mask(K: int, N: int, density: float | None, kind: str, *, seed: int,
                    nm: tuple[int, int], block: tuple[int, int], alpha: float, lanes: str
                    ) -> tuple[np.ndarray, np.random.Generator]:
    K, N = _check_dims(K, N)
    if kind not in PATTERN_KINDS:
        raise ValueError(f"kind must be one of {PATTERN_KINDS}, got {kind!r}")
    if kind != "nm":
        if density is None:
            raise ValueError(f"synthetic_weight(kind={kind!r}) needs a density")
        if isinstance(density, bool) or not isinstance(density, numbers.Real):
            raise TypeError(f"density must be a number, got {density!r}")
        if not 0 < density <= 1:
            raise ValueError(f"density must be in (0, 1], got {density}")
    rng = np.random.default_rng(seed)
    mask = np.zeros((K, N), dtype=bool)
    if kind == "uniform":
        count = int(round(density * K * N))
        mask.flat[rng.choice(K * N, size=count, replace=False)] = True
    elif kind == "powerlaw":
        if lanes not in ("cols", "rows"):
            raise ValueError(f"lanes must be 'cols' or 'rows', got {lanes!r}")
        n_lanes, length = (N, K) if lanes == "cols" else (K, N)
        counts = _powerlaw_counts(n_lanes, length, int(round(density * K * N)), alpha, rng)
        lane_mask = np.zeros((n_lanes, length), dtype=bool)
        keys = rng.random((n_lanes, length))
        order = np.argsort(keys, axis=1)
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(length)[None, :].repeat(n_lanes, 0), axis=1)
        lane_mask = ranks < counts[:, None]
        mask = lane_mask.T.copy() if lanes == "cols" else lane_mask
    elif kind == "block":
        bk, bn = block
        kb, nb = -(-K // bk), -(-N // bn)
        count = max(1, int(round(density * kb * nb)))
        bm = np.zeros(kb * nb, dtype=bool)
        bm[rng.choice(kb * nb, size=count, replace=False)] = True
        mask = np.repeat(np.repeat(bm.reshape(kb, nb), bk, 0), bn, 1)[:K, :N].copy()
    else:  # nm
        n, m = nm
        if not 1 <= n <= m:
            raise ValueError(f"nm must satisfy 1 <= n <= m, got {nm}")
        groups = -(-K // m)
        keys = rng.random((groups, m, N))
        ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
        full = (ranks < n).reshape(groups * m, N)
        mask = full[:K].copy()
        tail = K % m
        if tail:  # the last group is shorter: keep min(n, tail) of its rows per column
            last = mask[K - tail:]
            sub = rng.random(last.shape).argsort(axis=0).argsort(axis=0) < min(n, tail)
            mask[K - tail:] = sub
    return mask, rng


def _powerlaw_counts(n_lanes: int, length: int, total: int, alpha: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Nonzeros per lane, ``~ rank ** -alpha`` in a random lane order, summing to ``total``."""
    share = np.arange(1, n_lanes + 1, dtype=float) ** -float(alpha)
    rng.shuffle(share)
    counts = np.zeros(n_lanes, dtype=np.int64)
    remaining = total
    free = np.ones(n_lanes, dtype=bool)
    while remaining > 0 and free.any():
        want = share * free
        want = want / want.sum() * remaining
        add = np.minimum(np.floor(want).astype(np.int64), length - counts)
        if add.sum() == 0:  # hand the remainder out one by one to the largest shares
            order = np.argsort(-want)
            for i in order:
                if remaining == 0:
                    break
                if counts[i] < length:
                    counts[i] += 1
                    remaining -= 1
            break
        counts += add
        remaining -= int(add.sum())
        free = counts < length
    return counts


def pattern_summary(mask: np.ndarray) -> dict[str, float]:
    """Density and per-column nonzero statistics of a pattern (for reports)."""
    col = mask.sum(axis=0)
    return {"density": float(mask.mean()), "col_nnz_max": int(col.max(initial=0)),
            "col_nnz_mean": float(col.mean()) if col.size else 0.0,
            "imbalance": float(col.max(initial=0) / col.mean()) if col.mean() else math.nan}


def check_density(density: Any) -> float | None:
    """``density`` as a float in (0, 1], or ``None``; ``TypeError``/``ValueError`` otherwise."""
    if density is None:
        return None
    if isinstance(density, bool) or not isinstance(density, numbers.Real):
        raise TypeError(f"density must be a number, got {density!r}")
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    return float(density)
