"""The C++ CPU kernels as torch operators: ``torch.ops.sparse_ops.<product>``.

The operators are defined and implemented in C++ (``csrc/torch_ops.cpp``, ``TORCH_LIBRARY``
on ``at::Tensor``): they validate their arguments, allocate their outputs and release the
GIL there. Importing ``sparse_ops._C`` registers them; this module gives them their layouts'
fake kernels and the shared autograd (``registry.register_backend``). Each product ``P`` has
a twin ``P_call`` that ``so.matmul`` / ``so.linear`` invoke: it runs ``P`` below the autograd
layer when no input needs a gradient (one dispatcher hop, no Python on the way), and ``P``
with its autograd otherwise; under ``torch.compile`` it decomposes into ``P``.

Arguments are the formats' plain tensors (docs/formats.md), in the order of the formats'
reference products.
The dense operand of ``spmm`` / ``linear`` may be row-strided (no copy); values and dense
operands compute in float32 or float64 (bfloat16 / float16 are computed in float32 and
rounded back). Every call checks the structure it reads (O(rows) up front, indices chunk by
chunk in the products). C++ keeps no state between calls: the transposed structure that
``S^T @ d`` reads (CSR, BSR) is data of the matrix, passed in as ``crow_t, col_t, perm_t``
(computed by ``torch.ops.sparse_ops.csr_transpose`` once per structure, see ``csr.py``), and
computed for that call alone when they are omitted.
"""

from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers torch.ops.sparse_ops.*)
from .registry import ProductOps, get_layout, names, register_backend

_ops = torch.ops.sparse_ops


_PRODUCTS = ("spmm", "spmm_t", "sddmm", "linear")


def _products(layout: str, n_struct: int) -> ProductOps:
    ops = {p: getattr(_ops, f"{layout}_{p}").default for p in _PRODUCTS}
    calls = {p: getattr(_ops, f"{layout}_{p}_call").default for p in _PRODUCTS}
    raw = {p: op._op for p, op in calls.items()}
    return ProductOps(n_struct=n_struct, call=calls, raw=raw, **ops)


# Every registered layout whose operators csrc/torch_ops.cpp defines.
OPS = {
    name: _products(name, get_layout(name).n_struct)
    for name in names()
    if hasattr(_ops, f"{name}_spmm")
}

register_backend(OPS, "cpp")
