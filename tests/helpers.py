"""Test helpers: random sparse matrices of odd shapes in each format, float64 references.

Every random matrix comes from a seed drawn with :func:`draw_seed` (``os.urandom`` unless
replaying). The seeds a test drew are kept; ``tests/conftest.py`` prints them, with the command
that replays the test, when the test fails. To replay, set ``SPARSE_OPS_SEED`` to the printed
seeds (comma-separated, used in order of drawing; a single seed serves every draw).
"""

from __future__ import annotations

import os

import torch

import sparse_ops as so

SEED_ENV = "SPARSE_OPS_SEED"

_drawn: list[int] = []  # the seeds drawn since the last reset_seeds(), in order


def _replay_seeds() -> list[int]:
    text = os.environ.get(SEED_ENV, "").strip()
    if not text:
        return []
    try:
        return [int(part, 0) for part in text.replace(" ", "").split(",") if part]
    except ValueError as e:
        raise ValueError(f"{SEED_ENV}: expected comma-separated integers, got {text!r}") from e


def draw_seed() -> int:
    """A fresh 32-bit seed from ``os.urandom``, or the next ``SPARSE_OPS_SEED`` seed; recorded."""
    replay = _replay_seeds()
    if replay:
        seed = replay[min(len(_drawn), len(replay) - 1)]
    else:
        seed = int.from_bytes(os.urandom(4), "little")
    _drawn.append(seed)
    return seed


def seeds_drawn() -> list[int]:
    """The seeds drawn since the last :func:`reset_seeds` (the current test's), in order."""
    return list(_drawn)


def reset_seeds() -> None:
    """Forget the recorded seeds (conftest calls this as each test starts)."""
    _drawn.clear()

# (layout, shape, to_sparse kwargs): odd shapes, not multiples of blocks or groups.
CASES = [
    ("csr", (37, 53), {}),
    ("bitmap", (37, 53), {}),
    ("bitmap", (19, 130), {}),
    ("bsr", (21, 35), {"blocksize": (3, 5)}),
    ("bsr", (64, 96), {"blocksize": (32, 32)}),
    ("nm", (37, 53), {"n": 2, "m": 4}),
    ("nm", (19, 45), {"n": 1, "m": 4}),
    ("nm", (13, 41), {"n": 3, "m": 8}),
    ("nm", (9, 33), {"n": 1, "m": 2}),
    ("nm", (11, 50), {"n": 5, "m": 16}),
]
CASE_IDS = [f"{lay}-{s[0]}x{s[1]}-" + "-".join(f"{k}{v}" for k, v in kw.items()) for lay, s, kw in
            CASES]


def random_sparse(layout: str, shape, kw: dict, dtype=torch.float32, density: float = 0.3,
                  seed: int | None = None) -> tuple[so.SparseMatrix, torch.Tensor]:
    """A pruned random matrix in ``layout`` and its float64 dense twin.

    Without ``seed``, the generator's seed comes from :func:`draw_seed` (recorded for replay).
    """
    g = torch.Generator().manual_seed(seed if seed is not None else draw_seed())
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    if layout == "nm":
        p = so.prune(w, "nm", n=kw["n"], m=kw["m"])
    else:
        p = so.prune(w, layout, density, **kw)
    s = so.to_sparse(p.to(dtype), layout, **kw)
    return s, s.to_dense().double()


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """Norm-wise relative error, safe when ``want`` is zero."""
    got, want = got.double(), want.double()
    denom = want.norm().item()
    return (got - want).norm().item() / (denom if denom > 0 else 1.0)


def err_vs_magnitude(got: torch.Tensor, want: torch.Tensor, magnitude: torch.Tensor) -> float:
    """Norm of ``got - want`` over the norm of ``magnitude`` (e.g. ``|A| @ |x|``): the error of
    a product relative to the size of its terms, meaningful when cancellation makes the
    result itself small (a one-element output summing terms of both signs)."""
    denom = magnitude.double().norm().item()
    return (got.double() - want.double()).norm().item() / (denom if denom > 0 else 1.0)


def dense_at_slots(s: so.SparseMatrix, dense: torch.Tensor) -> torch.Tensor:
    """``dense (M, K)`` read at each stored slot of ``s``: a tensor shaped like ``s.values``.

    Built from the index tensors alone (no sparse_ops product), so a gradient of the values can
    be checked against the dense weight gradient computed by plain torch.
    """
    if s.layout == "csr":
        return dense[s.row_indices(), s.col_indices.long()]
    if s.layout == "bsr":
        r, c = s.blocksize
        rows = s.block_row_indices()[:, None, None] * r + torch.arange(r)[None, :, None]
        cols = s.col_indices.long()[:, None, None] * c + torch.arange(c)[None, None, :]
        return dense[rows, cols]
    if s.layout == "nm":
        return dense.gather(1, s.columns())
    if s.layout == "bitmap":
        return dense[s.mask()]
    raise ValueError(f"s: unknown layout {s.layout!r}")


def repeat_nm24_positions(s: so.SparseMatrix, g: torch.Generator, rows: torch.Tensor,
                          values: torch.Tensor | None = None
                          ) -> tuple[so.SparseMatrix, torch.Tensor]:
    """``s`` (2:4) with slot 1 of one group in each of ``rows`` (drawn from ``g``) given slot
    0's position (the format allows it; the reference sums both slots), with ``values``
    (default ``s.values``); returns that matrix and the column of every slot (M, slots)."""
    from sparse_ops.nm import pack_positions, unpack_positions

    slots = s.values.shape[1]
    pos = unpack_positions(s.metadata, slots, 4)
    grp = torch.randint(0, slots // 2, (len(rows),), generator=g)
    pos[rows, 2 * grp + 1] = pos[rows, 2 * grp]
    r = type(s).from_parts({"metadata": pack_positions(pos, 4),
                            "values": s.values if values is None else values},
                           s.shape, s.params())
    return r, (torch.arange(slots) // 2) * 4 + pos


def dense_of_slots(cols: torch.Tensor, weights: torch.Tensor, shape) -> torch.Tensor:
    """float64 ``shape`` (M, K) summing each slot's weight into its column ``cols`` (M,
    slots): repeated columns add up; columns past K dropped."""
    w = torch.zeros(shape[0], shape[1] + 4, dtype=torch.float64)
    w.scatter_add_(1, cols, weights.double())
    return w[:, :shape[1]]
