"""The dtypes the package takes: one table, read by the formats' checks, the products and the
Triton kernels (``sparse_ops/kernels``).

Adding a value dtype (say fp8) is one entry of ``VALUE_DTYPES`` (and of ``REDUCED_DTYPES``
when it is stored narrower than it computes) here, plus its C++ trait (csrc/value_types.h)
and load / widen kernels: see docs/formats.md, "Adding a dtype".
"""

from __future__ import annotations

import torch

# Values and dense operands: stored in these, computed in float32 (float64 for float64).
VALUE_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.bfloat16,
                                         torch.float16)
# Stored narrower than they compute: widened to float32 in registers or per row chunk.
REDUCED_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16)
# Index tensors the products take (CSR column indices: int16 when K fits, else int32; row
# pointers, BSR block columns and bitmap offsets: int32).
INDEX_DTYPES: tuple[torch.dtype, ...] = (torch.int16, torch.int32)
# Index tensors the formats accept when built from parts (converted to INDEX_DTYPES).
INPUT_INDEX_DTYPES: tuple[torch.dtype, ...] = (torch.int16, torch.int32, torch.int64)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels accumulate values of ``dtype`` in."""
    return torch.float64 if dtype == torch.float64 else torch.float32
