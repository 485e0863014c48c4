"""sparse-ops: fast sparse x dense matmul (CSR, bitmap, BSR, N:M) for PyTorch."""

# The formats first: each registers its layout (registry.py) before the backends look them up.
from .csr import CSRMatrix  # noqa: I001  (registration order: csr, bitmap, bsr, nm)
from .bitmap import BitmapMatrix
from .bsr import BSRMatrix
from .nm import NMMatrix
from .format import SparseMatrix

from . import ops_cpp as _ops_cpp  # noqa: F401, I001  (registers torch.ops.sparse_ops.*)
from . import dst
from .compressed_checkpoint import load_compressed, save_compressed
from .convert import to_sparse
from .hf import densify, load_sparse, save_sparse
from .layer import SparseLinear
from .matmul import linear, matmul
from .prune import prune
from .quantize import quantize
from .w8a8 import quantize_activations
from .sparsify import sparsify
from .sparsify_config import (
    BlockSparseWeightConfig,
    SemiSparseWeightConfig,
    UnstructuredSparseWeightConfig,
    sparsify_,
)

__all__ = [
    "BSRMatrix",
    "BitmapMatrix",
    "BlockSparseWeightConfig",
    "CSRMatrix",
    "NMMatrix",
    "SemiSparseWeightConfig",
    "SparseLinear",
    "SparseMatrix",
    "UnstructuredSparseWeightConfig",
    "densify",
    "dst",
    "linear",
    "load_compressed",
    "load_sparse",
    "matmul",
    "prune",
    "quantize",
    "quantize_activations",
    "save_compressed",
    "save_sparse",
    "sparsify",
    "sparsify_",
    "to_sparse",
]
