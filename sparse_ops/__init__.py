"""sparse-ops: fast sparse x dense matmul (CSR, BSR, N:M) for PyTorch."""

from . import dst
from .bsr import BSRMatrix
from .convert import to_sparse
from .csr import CSRMatrix
from .format import SparseMatrix
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
    "dst",
    "linear",
    "matmul",
    "prune",
    "sparsify",
    "to_sparse",
]
