"""``SparseLinear``: an ``nn.Linear`` whose weight is stored sparse."""

from __future__ import annotations

from operator import is_
from typing import Any

import torch
from torch import nn

from .convert import to_sparse
from .format import SparseMatrix
from .matmul import linear
from .prune import prune
from .registry import get_layout


class SparseLinear(nn.Module):
    """``y = x @ W^T + b`` with ``W (out_features, in_features)`` held in a sparse format.

    The values are a trainable ``nn.Parameter`` (``self.values``); the pattern's index tensors
    are buffers, so ``state_dict`` carries them and ``.to(device)`` moves them. A quantized
    weight (``so.quantize``, int8 values) keeps its values as a frozen parameter and its
    ``scales`` as a buffer; such a layer is inference only. The pattern is
    fixed: training updates the stored values only (``so.dst`` rewrites it in place).

    CSR and BSR layers also hold their transposed structure (``crow_t``, ``col_t``,
    ``perm_t``: non-persistent buffers, ``None`` until needed), which the backward of the
    product reads: computed at the first forward that records a gradient of the values (in
    eager mode), kept while the structure buffers stay the same tensors, refreshed by
    ``refresh_transposed()`` (``so.dst`` calls it after each rewrite) and dropped when a state
    dict loads another structure.
    """

    def __init__(
        self, weight: SparseMatrix, bias: torch.Tensor | None = None, backend: str | None = None
    ) -> None:
        super().__init__()
        if isinstance(weight, nn.Linear):
            raise TypeError(
                "weight: got an nn.Linear module; SparseLinear takes a sparse_ops matrix. To "
                "convert a dense layer use SparseLinear.from_dense(linear, layout, ...), e.g. "
                "SparseLinear.from_dense(linear, 'csr', density=0.1)"
            )
        if isinstance(weight, torch.Tensor):
            raise TypeError(
                f"weight: got a torch.Tensor of shape {tuple(weight.shape)}; SparseLinear takes "
                "a sparse_ops matrix: convert it with so.to_sparse(so.prune(w, layout, ...), "
                "layout, ...) or build the layer with SparseLinear.from_dense(nn.Linear)"
            )
        if not isinstance(weight, SparseMatrix):
            raise TypeError(
                f"weight: expected a sparse_ops matrix, got {type(weight).__name__}"
            )
        self.out_features, self.in_features = weight.shape
        self.layout = weight.layout
        self._matrix = get_layout(weight.layout).matrix
        self.params_ = weight.params()
        self.backend = backend
        quantized = weight.scales is not None
        self.values = nn.Parameter(weight.values.detach().clone(), requires_grad=not quantized)
        # int8 weights (so.quantize): their scales are a buffer, the layer inference only.
        self.group_size = weight.group_size
        self.activation_dtype = weight.activation_dtype  # "int8": W8A8 allowed (w8a8.py)
        if quantized:
            self.register_buffer("scales", weight.scales.detach().clone())
        for name in weight.structure_names:
            self.register_buffer(name, getattr(weight, name).clone())
        self.structure_names = weight.structure_names
        self.aux_names = weight.aux_names
        for name, t in zip(weight.aux_names, weight.aux(), strict=True):
            self.register_buffer(name, None if t is None else t.clone(), persistent=False)
        if bias is not None:
            self.bias = nn.Parameter(bias.detach().clone())
        else:
            self.register_parameter("bias", None)

    @classmethod
    def from_dense(
        cls,
        module: nn.Linear,
        layout: str,
        *,
        density: float | None = None,
        blocksize: tuple[int, int] | None = None,
        n: int | None = None,
        m: int | None = None,
        backend: str | None = None,
    ) -> SparseLinear:
        """Prune ``module.weight`` to ``layout`` (magnitude) and store it sparse."""
        if not isinstance(module, nn.Linear):
            raise TypeError(f"module: expected an nn.Linear, got {type(module).__name__}")
        w = module.weight.detach()
        get_layout(layout)
        pruned = prune(w, layout, density, blocksize=blocksize, n=n, m=m)
        s = to_sparse(pruned, layout, blocksize=blocksize, n=n, m=m)
        return cls(s, module.bias, backend=backend)

    def sparse_weight(self) -> SparseMatrix:
        """The weight as a sparse matrix sharing this module's tensors (no copy).

        In eager mode the matrix is kept between calls while the module holds the same
        tensor objects (a replaced parameter or buffer builds a new one); the products still
        check its tensors against its shape on every call.
        """
        values = self._parameters["values"]
        buffers = self._buffers
        structure = tuple(map(buffers.__getitem__, self.structure_names))
        aux = tuple(map(buffers.__getitem__, self.aux_names))
        scales = buffers.get("scales")
        compiling = torch.compiler.is_compiling()
        if not compiling:
            memo = self.__dict__.get("_weight_memo")
            if (
                memo is not None
                and memo.values is values
                and memo.scales is scales
                and all(map(is_, memo.structure(), structure))
                and all(map(is_, memo.aux(), aux))
            ):
                return memo
        tensors = dict(zip(self.structure_names, structure, strict=True))
        tensors.update(zip(self.aux_names, aux, strict=True))
        tensors["values"] = values
        s = self._matrix.from_parts(
            tensors, (self.out_features, self.in_features), self.params_, validate=False
        )
        if scales is not None:
            s.scales = scales
            s.group_size = self.group_size
            s.activation_dtype = self.activation_dtype
        if not compiling:
            self.__dict__["_weight_memo"] = s
        return s

    def refresh_transposed(self) -> None:
        """(Re)compute the transposed structure buffers from the structure buffers as they are
        now (CSR, BSR; nothing for other layouts)."""
        if not self.aux_names:
            return
        t = self.sparse_weight().transposed(refresh=True)
        for name, v in zip(self.aux_names, t, strict=True):
            self._buffers[name] = v

    @property
    def weight(self) -> torch.Tensor:
        """The weight densified ``(out_features, in_features)``: for code that reads it."""
        return self.sparse_weight().to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            torch.is_grad_enabled()
            and self.aux_names
            and self._buffers[self.aux_names[0]] is None
            and self._parameters["values"].requires_grad
            and not torch.compiler.is_compiling()
        ):
            self.refresh_transposed()  # the backward's S^T @ dY reads it
        return linear(x, self.sparse_weight(), self.bias, backend=self.backend)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args, **kwargs):
        # Another pattern may hold another number of nonzeros: take the incoming shapes.
        names = ("values", *self.structure_names, *(("scales",) if "scales" in self._buffers
                                                      else ()))
        for name in names:
            incoming = state_dict.get(prefix + name)
            current = getattr(self, name)
            if incoming is not None and incoming.shape != current.shape:
                resized = torch.empty(incoming.shape, dtype=current.dtype, device=current.device)
                if name == "values":
                    self.values = nn.Parameter(resized, requires_grad=current.requires_grad)
                else:
                    setattr(self, name, resized)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        for name in self.aux_names:  # of the structure before: computed again when needed
            self._buffers[name] = None
        self.params_ = self.sparse_weight().params()  # bitmap's nnz follows its values

    def extra_repr(self) -> str:
        w = self.sparse_weight()
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"layout={self.layout!r}, params={self.params_}, density={w.density:.4f}, "
            f"bias={self.bias is not None}"
            + ("" if w.scales is None else f", int8, group_size={self.group_size}")
            + ("" if self.activation_dtype is None else
               f", activation_dtype={self.activation_dtype!r}")
        )
