"""The kernel tests' calling convention over the torch operators: numpy in, numpy out.

Each function calls ``torch.ops.sparse_ops.<product>`` (the only way into the C++ kernels) on
``torch.from_numpy`` views of its arguments, on ``num_threads`` torch threads, and writes the
result into the caller's ``out`` (checked: shape and dtype), so the tests can poison ``out``
with NaN first and compare it with a float64 numpy reference. Anything that is not a numpy
array goes to the operator as it is (it must raise TypeError / ValueError there).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import numpy as np
import torch

import sparse_ops  # noqa: F401  (registers torch.ops.sparse_ops.*)
from sparse_ops import _C

ops = torch.ops.sparse_ops


def simd_level() -> str:
    return _C.simd_level()


def _set_simd_level(level: str) -> str:
    return _C._set_simd_level(level)


def _supported_simd_levels() -> list[str]:
    return list(_C._supported_simd_levels())


def _set_tile_bytes(n: int) -> None:
    _C._set_tile_bytes(n)


def _t(a: object, name: str) -> object:
    """A numpy array as a tensor sharing its memory (native byte order only); else as is."""
    if not isinstance(a, np.ndarray):
        return a
    if a.dtype.byteorder not in ("=", "|", "<" if sys.byteorder == "little" else ">"):
        raise TypeError(f"{name}: expected a native byte order array, got dtype {a.dtype}")
    return torch.from_numpy(a)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads: need num_threads >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(min(n, 64))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write(out: object, got: torch.Tensor) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
    if not out.flags.writeable:
        raise ValueError("out: array is read-only")
    want = got.numpy()
    if out.shape != want.shape:
        raise ValueError(f"out: expected shape {want.shape}, got {out.shape}")
    if out.dtype != want.dtype:
        raise TypeError(f"out: expected dtype {want.dtype}, got {out.dtype}")
    out[...] = want


def csr_spmm(crow, col, values, x, out, num_threads):
    with _threads(num_threads):
        _write(out, ops.csr_spmm(_t(crow, "crow_indices"), _t(col, "col_indices"),
                                 _t(values, "values"), _t(x, "x")))


def csr_sddmm(crow, col, a, b, out, num_threads):
    with _threads(num_threads):
        _write(out, ops.csr_sddmm(_t(crow, "crow_indices"), _t(col, "col_indices"),
                                  _t(a, "a"), _t(b, "b")))


def csr_transpose(crow, col, num_cols):
    crow_t, col_t, perm = ops.csr_transpose(_t(crow, "crow_indices"), _t(col, "col_indices"),
                                            num_cols)
    return crow_t.numpy(), col_t.numpy(), perm.numpy()


def bsr_spmm(crow, col, values, x, out, num_threads):
    v = _t(values, "values")
    r, c = (v.shape[1], v.shape[2]) if isinstance(v, torch.Tensor) and v.dim() == 3 else (1, 1)
    with _threads(num_threads):
        _write(out, ops.bsr_spmm(_t(crow, "crow_indices"), _t(col, "col_indices"), v,
                                 _t(x, "x"), r, c))


def bsr_sddmm(crow, col, a, b, out, num_threads):
    r, c = (out.shape[1], out.shape[2]) if isinstance(out, np.ndarray) and out.ndim == 3 else (1, 1)
    with _threads(num_threads):
        _write(out, ops.bsr_sddmm(_t(crow, "crow_indices"), _t(col, "col_indices"),
                                  _t(a, "a"), _t(b, "b"), r, c))


def nm_spmm(values, metadata, x, out, n, m, num_threads):
    with _threads(num_threads):
        _write(out, ops.nm_spmm(_t(metadata, "metadata"), _t(values, "values"), _t(x, "x"),
                                n, m))


def nm_spmm_t(values, metadata, d, out, n, m, num_threads):
    k = out.shape[0] if isinstance(out, np.ndarray) else 0
    with _threads(num_threads):
        _write(out, ops.nm_spmm_t(_t(metadata, "metadata"), _t(values, "values"), _t(d, "d"),
                                  k, n, m))


def nm_sddmm(metadata, a, b, out, n, m, num_threads):
    with _threads(num_threads):
        _write(out, ops.nm_sddmm(_t(metadata, "metadata"), _t(a, "a"), _t(b, "b"), n, m))
