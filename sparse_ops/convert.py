"""``to_sparse``: dense or torch.sparse tensors into the project's formats."""

from __future__ import annotations

import torch

from ._checks import check_nm
from .bsr import BSRMatrix
from .csr import CSRMatrix
from .format import SparseMatrix
from .nm import NMMatrix

LAYOUTS = ("csr", "bsr", "nm")


def to_sparse(
    tensor: torch.Tensor,
    layout: str,
    *,
    blocksize: tuple[int, int] | None = None,
    n: int | None = None,
    m: int | None = None,
) -> SparseMatrix:
    """Store a 2-D tensor ``(M, K)`` in ``layout``: ``"csr"``, ``"bsr"`` or ``"nm"``.

    ``tensor`` may be dense (zeros are dropped: CSR keeps nonzeros, BSR keeps blocks holding a
    nonzero, N:M requires at most ``n`` nonzeros per group of ``m``), a ``torch.sparse_csr``
    tensor (for ``"csr"``) or a ``torch.sparse_bsr`` tensor (for ``"bsr"``, its own blocksize);
    their indices are validated. Another sparse layout is densified first.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor: expected a torch.Tensor, got {type(tensor).__name__}")
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    if tensor.layout == torch.sparse_csr and layout == "csr":
        return CSRMatrix.from_torch(tensor)
    if tensor.layout == torch.sparse_bsr and layout == "bsr":
        s = BSRMatrix.from_torch(tensor)
        if blocksize is not None and tuple(blocksize) != s.blocksize:
            raise ValueError(
                f"blocksize: {tuple(blocksize)} differs from the sparse_bsr tensor's {s.blocksize}"
            )
        return s
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    if layout == "csr":
        return CSRMatrix.from_dense(tensor)
    if layout == "bsr":
        if blocksize is None:
            raise ValueError("blocksize: layout 'bsr' needs blocksize=(R, C)")
        return BSRMatrix.from_dense(tensor, blocksize)
    if n is None or m is None:
        raise ValueError("n, m: layout 'nm' needs both n= and m=")
    return NMMatrix.from_dense(tensor, *check_nm(n, m))
