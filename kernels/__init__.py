"""Triton kernels for sparse x dense products (CSR, BSR, N:M, bitmap); see kernels/README.md.

Installed as ``sparse_ops.kernels``. They need the ``triton`` package (the ``triton`` extra);
``sparse_ops`` itself imports without it and runs its C++ kernels on the CPU.
"""

try:
    import triton  # noqa: F401
except ModuleNotFoundError as e:  # pragma: no cover - exercised by .ci/wheel_check.sh
    raise ImportError(
        "sparse_ops.kernels: the Triton kernels need the triton package, which is not "
        "installed (pip install 'sparse-ops[triton]', or the triton that matches your torch); "
        "sparse_ops itself runs without it on the CPU"
    ) from e

from .bitmap import (
    bitmap_sddmm,
    bitmap_spmm,
    bitmap_spmm_t,
    bitmap_width,
    bitmap_word_prefix,
)
from .bsr import bsr_sddmm, bsr_spmm, bsr_spmm_t, bsr_transpose
from .csr import csr_sddmm, csr_spmm, csr_spmm_t, csr_transpose
from .nm import metadata_bits, nm_sddmm, nm_spmm, nm_spmm_t

__all__ = [
    "bitmap_sddmm",
    "bitmap_spmm",
    "bitmap_spmm_t",
    "bitmap_width",
    "bitmap_word_prefix",
    "bsr_sddmm",
    "bsr_spmm",
    "bsr_spmm_t",
    "bsr_transpose",
    "csr_sddmm",
    "csr_spmm",
    "csr_spmm_t",
    "csr_transpose",
    "metadata_bits",
    "nm_sddmm",
    "nm_spmm",
    "nm_spmm_t",
]
