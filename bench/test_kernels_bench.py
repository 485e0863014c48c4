"""pytest-benchmark suite of the CPU kernels against torch (``make bench``; not part of tests).

Groups put torch dense, torch.sparse and sparse_ops side by side for each cell, so
``--benchmark-compare`` and the group table give the ratios from one run.
"""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so

M = K = 4096
CELLS = [(n, d) for n in (1, 512) for d in (0.1, 0.01)]


@pytest.fixture(scope="module")
def weight():
    return torch.randn(M, K, generator=torch.Generator().manual_seed(0))


def _x(n):
    return torch.randn(K, n, generator=torch.Generator().manual_seed(n))


@pytest.mark.parametrize("n", [1, 512])
def test_dense(benchmark, weight, n):
    benchmark.group = f"N={n}"
    x = _x(n)
    benchmark(torch.mm, weight, x)


@pytest.mark.parametrize("n,density", CELLS)
@pytest.mark.parametrize("layout,kw", [("csr", {}), ("bsr", {"blocksize": (32, 32)})])
def test_sparse(benchmark, weight, layout, kw, n, density):
    benchmark.group = f"N={n}"
    x = _x(n)
    p = so.prune(weight, layout, density, **kw)
    s = so.to_sparse(p, layout, **kw)
    benchmark.extra_info.update(layout=layout, density=density)
    benchmark(so.matmul, s, x)


@pytest.mark.parametrize("n,density", CELLS)
@pytest.mark.parametrize("layout,kw", [("csr", {}), ("bsr", {"blocksize": (32, 32)})])
def test_torch_sparse(benchmark, weight, layout, kw, n, density):
    benchmark.group = f"N={n}"
    x = _x(n)
    p = so.prune(weight, layout, density, **kw)
    t = p.to_sparse_csr() if layout == "csr" else p.to_sparse_bsr(kw["blocksize"])
    benchmark(torch.mm, t, x)


@pytest.mark.parametrize("n", [1, 512])
@pytest.mark.parametrize("nm", [(2, 4), (1, 4)])
def test_nm(benchmark, weight, nm, n):
    benchmark.group = f"N={n}"
    x = _x(n)
    s = so.to_sparse(so.prune(weight, "nm", n=nm[0], m=nm[1]), "nm", n=nm[0], m=nm[1])
    benchmark(so.matmul, s, x)
