"""sparse-ops: fast sparse x dense matmul (CSR, BSR, N:M) for PyTorch."""

from . import dst
from . import ops_cpp as _ops_cpp  # noqa: F401  (registers torch.ops.sparse_ops.*)
from .bsr import BSRMatrix
from .convert import to_sparse
from .csr import CSRMatrix
from .format import SparseMatrix
from .hf import densify, load_sparse, save_sparse
from .layer import SparseLinear
from .matmul import linear, matmul
from .nm import NMMatrix
from .prune import prune
from .sparsify import sparsify

__all__ = [
    "BSRMatrix",
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
