"""Autotuning and numerics choices shared by every kernel family.

Under the Triton interpreter (``TRITON_INTERPRET=1``) the autotuner would run every config of
every kernel on the CPU; :func:`configs` then keeps only one small config so tests stay quick.
On a GPU the full list is kept and tuned per key (shape and density bucket).
"""

import math
import os

import torch
import triton

from ..dtypes import VALUE_DTYPES

# The same switch `@triton.jit` reads when it decides between the compiler and the interpreter,
# read once at import: the decorators below every kernel have already made that choice.
INTERPRET: bool = bool(triton.knobs.runtime.interpret)

# The value dtypes the Triton kernels take (the package's one table); outputs have the dtype of
# the inputs. Sums run in fp32, or in fp64 for fp64 inputs (gradcheck, the formats' fp64 paths).
FLOAT_DTYPES = VALUE_DTYPES


# SPARSE_OPS_TRITON_AUTOTUNE=0: on a GPU too, each kernel keeps only the first config of its
# list and nothing is tuned: a quick compiled run of every kernel (a GPU test run, where each
# odd test shape would otherwise be a new key to tune), not a setting for speed.
TUNE: bool = os.environ.get("SPARSE_OPS_TRITON_AUTOTUNE", "1") != "0"


def configs(gpu: list[triton.Config], interpret: triton.Config) -> list[triton.Config]:
    """The autotune configs: ``gpu`` on a device (its first alone where autotuning is off),
    only ``interpret`` under the interpreter."""
    if INTERPRET:
        return [interpret]
    return gpu if TUNE else gpu[:1]


def density_bucket(nnz: int, numel: int) -> int:
    """``round(-log2(density))`` clamped to ``[0, 20]``: an autotune key that changes only
    when the density changes by about 2x, so a new sparsity pattern of the same density
    reuses the tuned config."""
    if numel <= 0 or nnz <= 0:
        return 20
    return int(min(20, max(0, round(-math.log2(nnz / numel)))))


def dot_precision(dtype: torch.dtype) -> str:
    """``input_precision`` of `tl.dot`, following PyTorch's own switch for fp32 operands.

    ``torch.get_float32_matmul_precision() == "highest"`` (PyTorch's default) gives exact fp32
    products (``"ieee"``); ``"high"`` or ``"medium"`` allow TF32 tensor cores (``"tf32"``: 10-bit
    mantissa operands, fp32 accumulation), as they do for dense ``torch.matmul``. fp16 and bf16
    operands ignore it; fp64 always gets ``"ieee"``. The interpreter computes in numpy.
    """
    if dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return "ieee"


def dot_in_fp32(dtype: torch.dtype) -> bool:
    """Whether kernels must cast `tl.dot` operands to fp32 first.

    True only for bf16 under the interpreter, whose `tl.dot` multiplies bf16's raw 16-bit
    patterns as integers. On a GPU bf16 goes to the tensor cores as it is.
    """
    return INTERPRET and dtype == torch.bfloat16


def next_pow2(n: int) -> int:
    """The smallest power of two ``>= max(n, 1)``: `tl.arange` sizes must be powers of two."""
    return 1 << max(0, int(n) - 1).bit_length()
