"""``to_sparse``: dense or torch.sparse tensors into any registered layout."""

from __future__ import annotations

from typing import Any

import torch

from ._checks import check_blocksize, check_nm
from .format import SparseMatrix
from .registry import get_layout

_NEEDS = {"blocksize": "blocksize=(R, C)", "n": "n=", "m": "m="}


def _options(layout: str, opts: tuple[str, ...], given: dict[str, Any]) -> dict[str, Any]:
    missing = [o for o in opts if given.get(o) is None]
    if missing:
        raise ValueError(
            f"{', '.join(missing)}: layout {layout!r} needs "
            f"{' and '.join(_NEEDS[o] for o in missing)}"
        )
    kw = {o: given[o] for o in opts}
    if "n" in kw:
        kw["n"], kw["m"] = check_nm(kw["n"], kw["m"])
    return kw


def to_sparse(
    tensor: torch.Tensor,
    layout: str,
    *,
    blocksize: tuple[int, int] | None = None,
    n: int | None = None,
    m: int | None = None,
) -> SparseMatrix:
    """Store a 2-D tensor ``(M, K)`` in ``layout``: ``"csr"``, ``"bitmap"``, ``"bsr"`` or ``"nm"``.

    ``tensor`` may be dense (zeros are dropped: CSR and bitmap keep nonzeros, BSR keeps blocks
    holding a nonzero, N:M requires at most ``n`` nonzeros per group of ``m``), or a
    ``torch.sparse_csr`` tensor (for ``"csr"`` and ``"bitmap"``; ``"bitmap"`` also takes COO)
    or a ``torch.sparse_bsr`` tensor (for ``"bsr"``, its own blocksize), whose indices are
    validated and whose explicitly stored zeros are kept. Another sparse layout is densified
    first. ``bsr`` needs ``blocksize=(R, C)``, ``nm`` needs ``n=`` and ``m=``.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor: expected a torch.Tensor, got {type(tensor).__name__}")
    entry = get_layout(layout)
    if tensor.layout in entry.matrix.torch_layouts:
        s = entry.matrix.from_torch(tensor)
        if blocksize is not None and "blocksize" in entry.option_names:
            check_blocksize(blocksize, s.shape)
            if tuple(blocksize) != s.params():
                raise ValueError(
                    f"blocksize: {tuple(blocksize)} differs from the sparse tensor's {s.params()}"
                )
        return s
    kw = _options(entry.name, entry.option_names, {"blocksize": blocksize, "n": n, "m": m})
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    return entry.matrix.from_dense(tensor, **kw)
