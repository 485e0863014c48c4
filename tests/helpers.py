"""Test helpers: random sparse matrices of odd shapes in each format, float64 references."""

from __future__ import annotations

import os

import torch

import sparse_ops as so

# (layout, shape, to_sparse kwargs): odd shapes, not multiples of blocks or groups.
CASES = [
    ("csr", (37, 53), {}),
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
    """A pruned random matrix in ``layout`` and its float64 dense twin."""
    g = torch.Generator().manual_seed(seed if seed is not None else int.from_bytes(
        os.urandom(4), "little"))
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


