"""The C++ kernels in child processes, as torch's own ops behave there (README: "Fork").

The kernels run on torch's intra-op thread team (GNU OpenMP). OpenMP's team does not survive
``fork()``: a fork child of a parent that already ran parallel work must call
``torch.set_num_threads(1)`` (as torch's DataLoader workers do), or the child should be
started with ``spawn``. Both are tested here with a parent that ran the kernels on 2 threads:

- a ``fork`` pool whose workers set one thread and run ``so.matmul`` / ``SparseLinear``;
- a ``spawn`` pool whose workers run them on 2 threads.

Each waits for its workers at most ``TIMEOUT_S`` and fails with a message instead of hanging.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import nn

import sparse_ops as so

TIMEOUT_S = 120
WORKERS = 2
TASKS = 4  # more tasks than workers: each worker runs the kernels more than once

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the fork start method is the Linux default case"
)

# Set by the parent before a fork pool starts; fork children inherit them. Spawn children
# rebuild them from the same seeds (_build), so both sides hold the same weights.
_MATRIX: so.SparseMatrix | None = None
_LAYER: so.SparseLinear | None = None
_INPUTS: list[torch.Tensor] = []


def _build(kind: str) -> None:
    """The matrix or layer and the inputs, from fixed seeds (the same in every process)."""
    global _MATRIX, _LAYER
    g = torch.Generator().manual_seed(0 if kind == "matmul" else 1)
    if kind == "matmul":
        w = torch.randn(512, 512, generator=g)
        _MATRIX = so.to_sparse(so.prune(w, "csr", density=0.1), "csr")
        # 26k nonzeros x 64 columns: enough work for 2 threads
        _INPUTS[:] = [torch.randn(512, 64, generator=g) for _ in range(TASKS)]
    else:
        lin = nn.Linear(2048, 512)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(512, 2048, generator=g))
            lin.bias.copy_(torch.randn(512, generator=g))
        _LAYER = so.SparseLinear.from_dense(lin, "csr", density=0.1)
        _INPUTS[:] = [torch.randn(8, 2048, generator=g) for _ in range(TASKS)]


def _run(kind: str, i: int) -> np.ndarray:
    with torch.no_grad():
        if kind == "matmul":
            assert _MATRIX is not None
            return so.matmul(_MATRIX, _INPUTS[i]).numpy()
        assert _LAYER is not None
        return _LAYER(_INPUTS[i]).numpy()


def _fork_task(args: tuple[str, int]) -> np.ndarray:
    """Fork worker: one thread, as torch's own ops need in a fork child."""
    torch.set_num_threads(1)
    return _run(*args)


def _spawn_task(args: tuple[str, int]) -> tuple[np.ndarray, int]:
    """Spawn worker: a fresh process, 2 threads."""
    torch.set_num_threads(2)
    if (_MATRIX if args[0] == "matmul" else _LAYER) is None:
        _build(args[0])
    return _run(*args), torch.get_num_threads()


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Run the parent's kernels on 2 threads; restore the thread count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        global _MATRIX, _LAYER
        _MATRIX, _LAYER = None, None
        _INPUTS.clear()


def _map(method: str, task: Callable, kind: str) -> list:
    pool = multiprocessing.get_context(method).Pool(WORKERS)
    try:
        try:
            return pool.map_async(task, [(kind, i) for i in range(TASKS)]).get(
                timeout=TIMEOUT_S)
        except multiprocessing.TimeoutError:
            pytest.fail(f"{method} pool workers did not finish within {TIMEOUT_S} s")
    finally:
        pool.terminate()
        pool.join()


def _parent(kind: str) -> list[torch.Tensor]:
    """The parent's results on 2 threads, checked against float64."""
    _build(kind)
    with torch.no_grad():
        want = [torch.from_numpy(_run(kind, i)) for i in range(TASKS)]
    for x, y in zip(_INPUTS, want, strict=True):
        if kind == "matmul":
            ref = _MATRIX.to_dense().double() @ x.double()
        else:
            ref = nn.functional.linear(x.double(), _LAYER.weight.double(),
                                       _LAYER.bias.double())
        torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)
    return want


@pytest.mark.parametrize("kind", ["matmul", "layer"])
def test_fork_child_on_one_thread_after_parent_used_two(two_threads: None, kind: str) -> None:
    want = _parent(kind)  # the parent's OpenMP team is now live
    got = _map("fork", _fork_task, kind)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        # One thread in the child, two in the parent: the same sums up to rounding order.
        torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-5, atol=1e-5,
                                   msg=f"task {i}: fork child != parent")


@pytest.mark.parametrize("kind", ["matmul", "layer"])
def test_spawn_child_on_two_threads(two_threads: None, kind: str) -> None:
    want = _parent(kind)
    got = _map("spawn", _spawn_task, kind)
    for i, ((g, threads), w) in enumerate(zip(got, want, strict=True)):
        assert threads == 2
        torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-6, atol=1e-6,
                                   msg=f"task {i}: spawn child != parent")
