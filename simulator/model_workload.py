"""A PyTorch model as a simulator workload: its GEMM layers, each with its real weight pattern.

``workload_from_model(model, example_inputs)`` runs the model once on the example inputs
with forward hooks on its GEMM layers and records, per call, the GEMM the layer performed
(SCALE-Sim's convention: inputs ``M x K``, weights ``K x N``):

- ``nn.Linear`` (and subclasses): input ``(..., in_features)`` -> ``M`` = the product of the
  leading dims (tokens), ``K = in_features``, ``N = out_features``; the weight
  ``(out, in)`` transposed is the ``K x N`` pattern.
- a sparse layer, found by duck typing (a module with ``sparse_weight()`` returning a matrix
  with ``to_dense()``, ``layout`` and ``params()``, and ``in_features`` /
  ``out_features``; ``sparse_ops.SparseLinear`` is one): the same GEMM, its pattern the
  stored matrix's nonzeros (the mask, the N:M groups, the blocks as they are), and for
  layout ``"nm"`` the layer's ``nm = (n, m)`` (SCALE-Sim's ``Sparsity`` column).
- ``nn.Conv2d``: im2col, ``M = Ho * Wo`` (times the batch), ``K = C / groups * R * S``,
  ``N = out_channels / groups``, one layer per group. The input size is the one that gives
  the real output size with SCALE-Sim's rounding, ``(Ho - 1) * stride + R`` (SCALE-Sim has no
  padding field; dilation is folded in the same way); a batch of one keeps the convolution
  shape (``Layer.conv``), a larger batch becomes a plain GEMM.

A layer called several times (a shared module, several steps) gives one layer per call
(``name``, ``name#1``, ...). Products of two activations (attention scores) are not weights
and are not recorded. This module imports torch only inside ``workload_from_model`` and never
imports ``sparse_ops``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .arch import Arch
from .prepared import PreparedWorkload
from .result import Result
from .workload import ConvShape, Layer


@dataclass
class ModelWorkload:
    """The GEMM layers of a model run and their real weight patterns.

    ``layers``: in call order. ``weights``: layer name -> ``K x N`` bool mask (True where
    the weight is nonzero). ``layouts``: layer name -> ``"dense"`` for a plain layer, else
    the sparse matrix's layout (``"csr"``, ``"bitmap"``, ``"bsr"``, ``"nm"``).
    ``sweep(points, workload)`` and ``PreparedWorkload`` take it as it is.
    """

    layers: list[Layer]
    weights: dict[str, np.ndarray]
    layouts: dict[str, str] = field(default_factory=dict)

    @property
    def densities(self) -> dict[str, float]:
        """Layer name -> fraction of nonzero weights."""
        return {name: float(mask.mean()) if mask.size else 0.0
                for name, mask in self.weights.items()}

    @property
    def macs(self) -> int:
        """Dense multiply-accumulates of all layers (``M * K * N`` summed)."""
        return sum(layer.macs for layer in self.layers)

    def prepared(self, density: float | None = None, seed: int = 0) -> PreparedWorkload:
        """A ``PreparedWorkload`` of the layers with their real patterns."""
        return PreparedWorkload(self.layers, weights=self.weights, density=density, seed=seed)

    def simulate(self, arch: Arch, **kwargs: Any) -> list[Result]:
        """One ``Result`` per layer on ``arch`` (``PreparedWorkload.simulate``'s keywords)."""
        return self.prepared().simulate(arch, **kwargs)

    def to_scalesim_csv(self, path: str | Path, kind: str = "auto") -> Path:
        """SCALE-Sim v3 topology CSV (see ``workload_export.write_scalesim_topology``)."""
        from .workload_export import write_scalesim_topology

        return write_scalesim_topology(self.layers, path, kind=kind)

    def to_zigzag_yaml(self, path: str | Path, precision: int = 8) -> Path:
        """ZigZag workload YAML (see ``workload_export.write_zigzag_workload``)."""
        from .workload_export import write_zigzag_workload

        return write_zigzag_workload(self.layers, path, densities=self.densities,
                                     layouts=self.layouts, precision=precision)


def _is_sparse_layer(mod: Any) -> bool:
    return (callable(getattr(mod, "sparse_weight", None))
            and isinstance(getattr(mod, "in_features", None), int)
            and isinstance(getattr(mod, "out_features", None), int))


def _numpy_mask(t: Any) -> np.ndarray:
    """bool numpy array of ``t != 0`` (a torch tensor)."""
    return (t.detach() != 0).cpu().numpy()


def _run(model: Any, example_inputs: Any) -> None:
    if isinstance(example_inputs, Mapping):
        model(**example_inputs)
    elif isinstance(example_inputs, (tuple, list)):
        model(*example_inputs)
    else:
        model(example_inputs)


def workload_from_model(model: Any, example_inputs: Any) -> ModelWorkload:
    """Trace ``model`` (a ``torch.nn.Module``) on ``example_inputs`` into simulator layers.

    Args:
        model: the model; run once in eval mode under ``torch.no_grad()`` (its training
            flags are restored afterwards).
        example_inputs: a tensor (``model(x)``), a tuple or list (``model(*x)``) or a dict
            (``model(**x)``, e.g. a tokenizer's output). The shapes decide ``M``: a decode
            step of a language model is a batch of one token per sequence.
    Returns:
        A ``ModelWorkload``: one ``Layer`` per GEMM call (Linear, sparse Linear, Conv2d),
        and each layer's ``K x N`` weight pattern, taken from the layer itself (a sparse
        layer's stored matrix, a dense layer's zeros).
    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
        ValueError: the run reached no GEMM layer.
    """
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    names = {id(m): n for n, m in model.named_modules()}
    calls: dict[str, int] = {}
    layers: list[Layer] = []
    weights: dict[str, np.ndarray] = {}
    layouts: dict[str, str] = {}
    patterns: dict[int, tuple[np.ndarray, str, tuple[int, int] | None]] = {}

    def unique(name: str) -> str:
        k = calls.get(name, 0)
        calls[name] = k + 1
        return name if k == 0 else f"{name}#{k}"

    def linear_pattern(mod: Any) -> tuple[np.ndarray, str, tuple[int, int] | None]:
        if id(mod) not in patterns:
            if _is_sparse_layer(mod):
                s = mod.sparse_weight()
                layout = str(s.layout)
                nm = tuple(int(p) for p in s.params())[:2] if layout == "nm" else None
                mask = _numpy_mask(s.to_dense()).T
            else:
                layout, nm = "dense", None
                mask = _numpy_mask(mod.weight).T
            patterns[id(mod)] = (np.ascontiguousarray(mask), layout, nm)
        return patterns[id(mod)]

    def on_linear(mod: Any, args: tuple[Any, ...], output: Any) -> None:
        x = args[0]
        k = int(mod.in_features)
        m = int(x.numel() // k) if k else 0
        if m < 1:
            return
        mask, layout, nm = linear_pattern(mod)
        name = unique(names.get(id(mod), type(mod).__name__))
        layers.append(Layer(name, m, k, int(mod.out_features), nm=nm))
        weights[name] = mask
        layouts[name] = layout

    def on_conv(mod: Any, args: tuple[Any, ...], output: Any) -> None:
        x = args[0]
        batch = int(x.shape[0]) if x.dim() == 4 else 1
        ho, wo = (int(v) for v in output.shape[-2:])
        fh, fw = (int(v) for v in mod.kernel_size)
        sh, sw = (int(v) for v in mod.stride)
        dh, dw = (int(v) for v in mod.dilation)
        groups = int(mod.groups)
        cin, cout = int(mod.in_channels) // groups, int(mod.out_channels) // groups
        # SCALE-Sim has no padding or dilation: the input that gives this output size
        eh, ew = (fh - 1) * dh + 1, (fw - 1) * dw + 1
        ih, iw = (ho - 1) * sh + eh, (wo - 1) * sw + ew
        w = mod.weight.detach()
        base = names.get(id(mod), type(mod).__name__)
        for g in range(groups):
            wg = w[g * cout:(g + 1) * cout]
            mask = np.ascontiguousarray(_numpy_mask(wg.reshape(cout, -1)).T)
            gname = base if groups == 1 else f"{base}.g{g}"
            name = unique(gname)
            if batch == 1 and dh == dw == 1:
                conv = ConvShape(ih, iw, fh, fw, cin, cout, sh, sw)
                layer = Layer.from_conv(name, conv)
                if (layer.M, layer.K, layer.N) != (ho * wo, cin * fh * fw, cout):
                    layer = Layer(name, ho * wo, cin * fh * fw, cout)
            else:
                layer = Layer(name, batch * ho * wo, cin * fh * fw, cout)
            layers.append(layer)
            weights[name] = mask
            layouts[name] = "dense"

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(on_conv))
        elif isinstance(mod, nn.Linear) or _is_sparse_layer(mod):
            handles.append(mod.register_forward_hook(on_linear))
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            _run(model, example_inputs)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    if not layers:
        raise ValueError("model: the run on example_inputs reached no Linear, sparse Linear "
                         "or Conv2d layer")
    return ModelWorkload(layers, weights, layouts)
