"""The C++ kernels after ``fork``: a parent that already ran them on 2 threads, then a fork
pool whose workers run them on 2 threads too (the ``DataLoader`` / ``multiprocessing`` case).

GNU OpenMP's thread pool does not survive ``fork``: a child that enters a parallel region the
parent had already used can block forever (torch's CPU wheel and the extension share one
libgomp, so torch's own parallel ops in the parent are enough to set this up). Each test
waits for its workers at most ``FORK_TIMEOUT_S`` and fails with a message instead of hanging
the suite.
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

FORK_TIMEOUT_S = 60
THREADS = 2
WORKERS = 2
TASKS = 4  # more tasks than workers: each worker runs the kernels more than once

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the fork start method is the Linux default case"
)

# Set by the parent before the pool forks; the children inherit them (nothing is pickled in).
_MATRIX: so.SparseMatrix | None = None
_LAYER: so.SparseLinear | None = None
_INPUTS: list[torch.Tensor] = []


def _matmul_task(i: int) -> np.ndarray:
    """Worker: ``so.matmul`` of the inherited matrix with input ``i``, on ``THREADS`` threads."""
    torch.set_num_threads(THREADS)
    assert _MATRIX is not None
    with torch.no_grad():
        return so.matmul(_MATRIX, _INPUTS[i]).numpy()


def _layer_task(i: int) -> np.ndarray:
    """Worker: the inherited ``SparseLinear`` on input ``i``, on ``THREADS`` threads."""
    torch.set_num_threads(THREADS)
    assert _LAYER is not None
    with torch.no_grad():
        return _LAYER(_INPUTS[i]).numpy()


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Run the parent's kernels on 2 threads; restore the thread count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        global _MATRIX, _LAYER
        _MATRIX, _LAYER = None, None
        _INPUTS.clear()


def _run_in_fork_pool(task: Callable[[int], np.ndarray], want: list[torch.Tensor]) -> None:
    """Map ``task`` over the inputs in a fork pool; compare with the parent's results."""
    pool = multiprocessing.get_context("fork").Pool(WORKERS)
    try:
        try:
            got = pool.map_async(task, range(len(want))).get(timeout=FORK_TIMEOUT_S)
        except multiprocessing.TimeoutError:
            pytest.fail(
                f"fork pool workers did not finish within {FORK_TIMEOUT_S} s: the kernels hang "
                f"in a child forked after the parent ran them on {THREADS} threads (the OpenMP "
                "runtime's thread pool does not survive fork)"
            )
    finally:
        pool.terminate()
        pool.join()
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g = torch.from_numpy(g)
        assert g.shape == w.shape, f"task {i}: shape {tuple(g.shape)} != {tuple(w.shape)}"
        # Same kernel, same inputs, same thread count: the child's result is the parent's.
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6, msg=f"task {i}: child != parent")


def _inputs(shape: tuple[int, int], g: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(shape, generator=g) for _ in range(TASKS)]


def test_matmul_in_fork_pool_after_parent_ran_it(two_threads: None) -> None:
    global _MATRIX
    g = torch.Generator().manual_seed(0)
    w = torch.randn(512, 512, generator=g)
    _MATRIX = so.to_sparse(so.prune(w, "csr", density=0.1), "csr")
    _INPUTS[:] = _inputs((512, 64), g)  # 26k nonzeros x 64 columns: big enough for 2 threads
    want = [so.matmul(_MATRIX, x) for x in _INPUTS]  # the parent's OpenMP pool is now live
    dense = _MATRIX.to_dense().double()
    for x, y in zip(_INPUTS, want, strict=True):
        torch.testing.assert_close(y.double(), dense @ x.double(), rtol=1e-4, atol=1e-4)
    _run_in_fork_pool(_matmul_task, want)


def test_sparse_linear_in_fork_pool_after_parent_ran_it(two_threads: None) -> None:
    global _LAYER
    g = torch.Generator().manual_seed(1)
    lin = nn.Linear(2048, 512)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(512, 2048, generator=g))
    _LAYER = so.SparseLinear.from_dense(lin, "csr", density=0.1)
    # Batch 8: 105k nonzeros x 8 columns put the sparse product on 2 threads, while torch's own
    # element-wise work in the layer (the input's transpose copy, the bias add: <= 16k elements)
    # stays under torch's parallel grain (32k), so the test is about sparse_ops' kernels and not
    # about torch's OpenMP ops, which also block in a forked child once the parent used them.
    _INPUTS[:] = _inputs((8, 2048), g)
    with torch.no_grad():
        want = [_LAYER(x) for x in _INPUTS]
        for x, y in zip(_INPUTS, want, strict=True):
            ref = nn.functional.linear(x.double(), _LAYER.weight.double(), lin.bias.double())
            torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)
    _run_in_fork_pool(_layer_task, want)
