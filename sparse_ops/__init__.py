"""sparse-ops: fast sparse x dense matmul (CSR, bitmap, BSR, N:M) for PyTorch."""

# The formats first: each registers its layout (registry.py) before the backends look them up.
from .csr import CSRMatrix  # noqa: I001  (registration order: csr, bitmap, bsr, nm)
from .bitmap import BitmapMatrix
from .bsr import BSRMatrix
from .nm import NMMatrix
from .format import SparseMatrix

from . import ops_cpp as _ops_cpp  # noqa: F401, I001  (registers torch.ops.sparse_ops.*)
from . import dst
from .convert import to_sparse
from .hf import densify, load_sparse, save_sparse
from .layer import SparseLinear
from .matmul import linear, matmul
from .prune import prune
from .sparsify import sparsify

__all__ = [
    "BSRMatrix",
    "BitmapMatrix",
    "CSRMatrix",
    "NMMatrix",
    "SparseLinear",
    "SparseMatrix",
    "densify",
    "dst",
    "linear",
    "load_sparse",
    "matmul",
    "prune",
    "save_sparse",
    "sparsify",
    "to_sparse",
]
