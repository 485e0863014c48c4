"""The Triton kernels (``kernels/``) as ``torch.library.triton_op`` custom ops.

The twin of ``ops_cpp.py``: the same products (three per layout), with the same signatures
(argument order of the formats' reference products), fake kernels and autograd (registered by
``registry.register_backend``),
named ``sparse_ops::<product>_triton``. ``triton_op`` lets ``torch.compile`` trace into the
launchers and see the Triton kernels themselves. On CUDA tensors the kernels are compiled; on
CPU tensors they run only under the Triton interpreter (``TRITON_INTERPRET=1`` set before triton
is imported), which is how the tests run them.

Under the interpreter the ops are registered with ``torch.library.custom_op`` instead: there
``@triton.jit`` makes interpreted functions, which ``wrap_triton`` passes through untraced, so
tracing a ``triton_op`` (``torch.compile``, ``opcheck``'s AOT tests) would run the interpreter on
fake tensors. As opaque custom ops they keep the same names, schemas, fake kernels and
autograd, and ``torch.compile`` treats them like the C++ ops.

Inputs may be fp16, bf16, fp32 or fp64; outputs take the input dtype; sums run in fp32 (fp64
for fp64). fp32 ``tl.dot`` follows ``torch.get_float32_matmul_precision()`` (TF32 unless
"highest"); see kernels/README.md. The ``*_spmm_triton`` ops also take int8 ``values`` with an
fp32, bf16 or fp16 ``x`` (W8A16, inference only: the integers multiplied as they are, no
scales; output and fake in ``x``'s dtype); the other ops, and so the backward, refuse int8.
"""

from __future__ import annotations

from torch import Tensor
from torch.library import custom_op, triton_op

from .kernels.autotune import INTERPRET
from .kernels.bitmap import bitmap_sddmm as _bitmap_sddmm
from .kernels.bitmap import bitmap_spmm as _bitmap_spmm
from .kernels.bitmap import bitmap_spmm_t as _bitmap_spmm_t
from .kernels.bsr import bsr_sddmm as _bsr_sddmm
from .kernels.bsr import bsr_spmm as _bsr_spmm
from .kernels.bsr import bsr_spmm_t as _bsr_spmm_t
from .kernels.csr import csr_sddmm as _csr_sddmm
from .kernels.csr import csr_spmm as _csr_spmm
from .kernels.csr import csr_spmm_t as _csr_spmm_t
from .kernels.nm import nm_sddmm as _nm_sddmm
from .kernels.nm import nm_spmm as _nm_spmm
from .kernels.nm import nm_spmm_t as _nm_spmm_t
from .registry import ProductOps, register_backend


def _define(name: str):
    """``triton_op`` on a real Triton backend; an opaque ``custom_op`` under the interpreter."""
    register = custom_op if INTERPRET else triton_op
    return register(name, mutates_args=())


def _transposed(crow_t: Tensor | None, col_t: Tensor | None,
                perm_t: Tensor | None) -> tuple[Tensor, Tensor, Tensor] | None:
    """The matrix's transposed structure (all three tensors), or None to compute it."""
    if crow_t is None and col_t is None and perm_t is None:
        return None
    if crow_t is None or col_t is None or perm_t is None:
        raise ValueError("crow_t, col_t, perm_t: give the whole transposed structure or none")
    return crow_t, col_t, perm_t


def _check_blocks(values: Tensor, r: int, c: int) -> None:
    if tuple(values.shape[1:]) != (r, c):
        raise ValueError(
            f"values: blocks are {tuple(values.shape[1:])}, but r, c = ({r}, {c}) were passed"
        )


# --- CSR ------------------------------------------------------------------------------------
@_define("sparse_ops::csr_spmm_triton")
def csr_spmm(crow: Tensor, col: Tensor, values: Tensor, x: Tensor, crow_t: Tensor | None = None,
             col_t: Tensor | None = None, perm_t: Tensor | None = None) -> Tensor:
    """``S @ x`` for CSR ``S (M, K)``, ``x (K, N)`` → ``(M, N)``."""
    return _csr_spmm(crow, col, values, x)


@_define("sparse_ops::csr_spmm_t_triton")
def csr_spmm_t(crow: Tensor, col: Tensor, values: Tensor, d: Tensor, num_cols: int,
               crow_t: Tensor | None = None, col_t: Tensor | None = None,
               perm_t: Tensor | None = None) -> Tensor:
    """``S^T @ d`` for CSR ``S (M, K)``, ``d (M, N)`` → ``(K, N)``, on the matrix's transposed
    structure when given."""
    return _csr_spmm_t(crow, col, values, d, num_cols,
                       transposed=_transposed(crow_t, col_t, perm_t))


@_define("sparse_ops::csr_sddmm_triton")
def csr_sddmm(crow: Tensor, col: Tensor, a: Tensor, b: Tensor, crow_t: Tensor | None = None,
              col_t: Tensor | None = None, perm_t: Tensor | None = None) -> Tensor:
    """``<a[i], b[j]>`` at each stored ``(i, j)``: ``a (M, N)``, ``b (K, N)`` → ``(nnz,)``."""
    return _csr_sddmm(crow, col, a, b)


# --- BSR ------------------------------------------------------------------------------------
@_define("sparse_ops::bsr_spmm_triton")
def bsr_spmm(crow: Tensor, col: Tensor, values: Tensor, x: Tensor, r: int, c: int,
             crow_t: Tensor | None = None, col_t: Tensor | None = None,
             perm_t: Tensor | None = None) -> Tensor:
    """``S @ x`` for BSR ``S (M, K)`` of ``r x c`` blocks → ``(M, N)``."""
    _check_blocks(values, r, c)
    return _bsr_spmm(crow, col, values, x)


@_define("sparse_ops::bsr_spmm_t_triton")
def bsr_spmm_t(
    crow: Tensor, col: Tensor, values: Tensor, d: Tensor, num_cols: int, r: int, c: int,
    crow_t: Tensor | None = None, col_t: Tensor | None = None, perm_t: Tensor | None = None,
) -> Tensor:
    """``S^T @ d`` for BSR ``S (M, K)`` of ``r x c`` blocks, ``d (M, N)`` → ``(K, N)``, on the
    matrix's transposed block structure when given."""
    _check_blocks(values, r, c)
    return _bsr_spmm_t(crow, col, values, d, num_cols,
                       transposed=_transposed(crow_t, col_t, perm_t))


@_define("sparse_ops::bsr_sddmm_triton")
def bsr_sddmm(crow: Tensor, col: Tensor, a: Tensor, b: Tensor, r: int, c: int,
              crow_t: Tensor | None = None, col_t: Tensor | None = None,
              perm_t: Tensor | None = None) -> Tensor:
    """Block-sampled ``a @ b^T`` → ``(nnzb, r, c)``."""
    return _bsr_sddmm(crow, col, a, b, r, c)


# --- N:M ------------------------------------------------------------------------------------
@_define("sparse_ops::nm_spmm_triton")
def nm_spmm(metadata: Tensor, values: Tensor, x: Tensor, n: int, m: int) -> Tensor:
    """``S @ x`` for N:M ``S (M, K)`` → ``(M, N)``."""
    return _nm_spmm(metadata, values, x, n, m)


@_define("sparse_ops::nm_spmm_t_triton")
def nm_spmm_t(
    metadata: Tensor, values: Tensor, d: Tensor, num_cols: int, n: int, m: int
) -> Tensor:
    """``S^T @ d`` for N:M ``S (M, K)``, ``d (M, N)`` → ``(K, N)``."""
    return _nm_spmm_t(metadata, values, d, num_cols, n, m)


@_define("sparse_ops::nm_sddmm_triton")
def nm_sddmm(metadata: Tensor, a: Tensor, b: Tensor, n: int, m: int) -> Tensor:
    """``<a[i], b[col]>`` at each N:M slot → ``(M, ceil(K/m) * n)``."""
    return _nm_sddmm(metadata, a, b, n, m)


# --- bitmap ---------------------------------------------------------------------------------
@_define("sparse_ops::bitmap_spmm_triton")
def bitmap_spmm(
    row_offsets: Tensor, bitmap: Tensor, values: Tensor, x: Tensor, nnz: int
) -> Tensor:
    """``S @ x`` for bitmap ``S (M, K)``, ``x (K, N)`` → ``(M, N)``."""
    _check_nnz(values, nnz)
    return _bitmap_spmm(row_offsets, bitmap, values, x)


@_define("sparse_ops::bitmap_spmm_t_triton")
def bitmap_spmm_t(
    row_offsets: Tensor, bitmap: Tensor, values: Tensor, d: Tensor, num_cols: int, nnz: int
) -> Tensor:
    """``S^T @ d`` for bitmap ``S (M, K)``, ``d (M, N)`` → ``(K, N)``."""
    _check_nnz(values, nnz)
    return _bitmap_spmm_t(row_offsets, bitmap, values, d, num_cols)


@_define("sparse_ops::bitmap_sddmm_triton")
def bitmap_sddmm(row_offsets: Tensor, bitmap: Tensor, a: Tensor, b: Tensor, nnz: int) -> Tensor:
    """``<a[i], b[j]>`` at each stored ``(i, j)``, in the order of the values → ``(nnz,)``."""
    return _bitmap_sddmm(row_offsets, bitmap, a, b, nnz=nnz)


def _check_nnz(values: Tensor, nnz: int) -> None:
    if values.dim() != 1 or values.shape[0] != nnz:
        raise ValueError(f"nnz: {nnz} differs from values' shape {tuple(values.shape)}")


OPS = {
    "csr": ProductOps(csr_spmm, csr_spmm_t, csr_sddmm, n_struct=2),
    "bitmap": ProductOps(bitmap_spmm, bitmap_spmm_t, bitmap_sddmm, n_struct=2),
    "bsr": ProductOps(bsr_spmm, bsr_spmm_t, bsr_sddmm, n_struct=2),
    "nm": ProductOps(nm_spmm, nm_spmm_t, nm_sddmm, n_struct=1),
}

# triton_op registers the launcher itself as the fake kernel; the shared shape functions are
# what the C++ ops use, and cheaper (no argsort, no launch bookkeeping on fake tensors). When
# torch.compile decomposes a triton_op it still traces the launcher, kernels included.
register_backend(OPS, "triton")
