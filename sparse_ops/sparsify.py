"""``sparsify``: swap a model's ``nn.Linear`` layers for ``SparseLinear``."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._checks import check_blocksize
from .convert import to_sparse
from .density import check_distribution, layer_densities
from .layer import SparseLinear
from .prune import check_args, check_method, prune, takes_density
from .quantize import (
    check_activation_dtype,
    check_group_size,
    check_weight_dtype,
    quantization_error,
    quantize,
)
from .registry import get_layout

log = logging.getLogger(__name__)

# Module names (fnmatch patterns) kept dense when ``keep_dense`` is not given: a language
# model's output projection. The model's ``get_output_embeddings()`` is kept dense as well.
DEFAULT_KEEP_DENSE = ("lm_head", "*.lm_head")


@dataclass
class _Candidate:
    name: str
    parent: nn.Module
    attr: str
    module: nn.Linear


def _unsafe_reason(name: str, module: nn.Linear, parents: list[nn.Module]) -> str | None:
    """Why swapping this Linear would break its model, or None when it is safe."""
    if type(module) is not nn.Linear:
        # Subclasses such as NonDynamicallyQuantizableLinear are read through .weight by
        # their owners (nn.MultiheadAttention's out_proj).
        return f"a {type(module).__name__}, a subclass of nn.Linear read by its owner"
    for p in parents:
        if isinstance(p, nn.MultiheadAttention):
            return "inside nn.MultiheadAttention, which reads .weight directly"
    return None


def _check_keep_dense(keep_dense: object) -> tuple[str, ...] | None:
    if keep_dense is None:
        return None
    if isinstance(keep_dense, str):
        return (keep_dense,)
    if not isinstance(keep_dense, Iterable):
        raise TypeError(
            f"keep_dense: expected module names or fnmatch patterns, got "
            f"{type(keep_dense).__name__}"
        )
    out = tuple(keep_dense)
    for p in out:
        if not isinstance(p, str):
            raise TypeError(f"keep_dense: expected strings, got {type(p).__name__} ({p!r})")
    return out


def _parameter_owners(model: nn.Module) -> dict[int, list[str]]:
    """``id(parameter)`` -> every ``module_path.param_name`` that holds it (ties included)."""
    owners: dict[int, list[str]] = {}
    for mod_name, mod in model.named_modules(remove_duplicate=False):
        for p_name, p in mod._parameters.items():
            if p is not None:
                owners.setdefault(id(p), []).append(f"{mod_name}.{p_name}" if mod_name else p_name)
    return owners


def _output_embeddings(model: nn.Module) -> nn.Module | None:
    get = getattr(model, "get_output_embeddings", None)
    if not callable(get):
        return None
    try:
        out = get()
    except (NotImplementedError, AttributeError):
        return None
    return out if isinstance(out, nn.Module) else None


def sparsify(
    model: nn.Module,
    layout: str,
    *,
    density: float | None = None,
    blocksize: tuple[int, int] | None = None,
    n: int | None = None,
    m: int | None = None,
    distribution: str = "uniform",
    keep_dense: Iterable[str] | str | None = None,
    method: str = "magnitude",
    calibration: Any = None,
    filter: Callable[[str, nn.Linear], bool] | None = None,
    backend: str | None = None,
    weight_dtype: str | None = None,
    group_size: int | None = None,
    activation_dtype: str | None = None,
) -> nn.Module:
    """Replace, in place, each plain ``nn.Linear`` of ``model`` by a pruned ``SparseLinear``.

    Weights ``(out_features, in_features)`` are pruned (``so.prune``) to ``layout``
    (``"csr"``/``"bitmap"``/``"bsr"`` take ``density=``, ``"bsr"`` also ``blocksize=``,
    ``"nm"`` takes ``n=``, ``m=``) and stored sparse.

    - ``method``: ``"magnitude"`` (default) or ``"wanda"`` (``|W_ij| * ||x_j||_2``, Sun et al.
      2023). Wanda needs ``calibration``: a batch the model is run on once, in eval mode and
      without gradients, before any swap: a tensor (``model(batch)``), a dict of tensors
      (``model(**batch)``, e.g. a tokenizer's ``input_ids`` / ``attention_mask``) or a tuple
      (``model(*batch)``). Forward pre-hooks on the layers to swap sum the squares of each
      input feature over every token they see (padding tokens included); they are removed
      afterwards. Every layer pruned by wanda sees the dense model's activations.

    - ``distribution``: how ``density`` is spread over the swapped layers. ``"uniform"``: each
      gets ``density``. ``"erk"`` (Erdős–Rényi-kernel, RigL): a layer's density is
      proportional to ``(n_in + n_out) / (n_in * n_out)``, scaled so the swapped layers hold
      ``density`` times their parameters in total, capped at 1 (see ``sparse_ops.density``).
      Only for layouts pruned by ``density=``.
    - ``keep_dense``: module names or ``fnmatch`` patterns (``"*.lm_head"``,
      ``"encoder.layer.0.*"``) left as ``nn.Linear``. By default (``None``) a language model's
      output projection and embeddings stay dense: modules named ``lm_head`` and the model's
      ``get_output_embeddings()`` (``nn.Embedding`` is never swapped). An explicit value
      replaces that default (``keep_dense=()`` sparsifies ``lm_head`` too, unless tied).
    - ``filter(name, module) -> bool`` picks which layers to consider at all (default: all).
    - ``weight_dtype``: None keeps the weights' dtype; ``"int8"`` quantizes each pruned
      layer's kept values (``so.quantize``: symmetric int8, one scale per output row, or per
      ``group_size`` columns along K when ``group_size`` is given, e.g. 32/64/128; scales in
      the weight's dtype for float32 / bfloat16 weights, else float32).
      Prune first, then quantize. int8 layers are inference only. The quantization error
      report is ``model.sparsify_quant_errors``: per swapped layer, the relative error of its
      output against the unquantized sparse layer on 16 standard-normal input columns.
    - ``activation_dtype``: with ``weight_dtype="int8"``, ``"int8"`` lets the wide products
      (prefill) quantize the activations per token and multiply in integers (W8A8,
      ``sparse_ops/w8a8.py``: bitmap and N:M on the CPU, where measured faster than W8A16).

    Left dense and listed with the reason in ``model.sparsify_skipped``: layers matched by
    ``keep_dense``; tied layers, whose weight ``Parameter`` is shared with another module
    (a Hugging Face ``lm_head`` tied to the input embeddings, BERT's MLM decoder), so that
    ``model.tie_weights()`` keeps working; layers whose owner reads ``.weight`` directly
    (inside ``nn.MultiheadAttention``, Linear subclasses); and layers whose shape does not fit
    the pattern (a BSR block that does not divide the weight).

    Returns ``model``; ``model.sparsified`` lists the swapped layers' names,
    ``model.sparsify_skipped`` maps each skipped name to the reason, and
    ``model.sparsify_densities`` maps each swapped name to the density it was pruned to
    (``None`` for N:M).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    entry = get_layout(layout)
    check_args(layout, density, blocksize, n, m)  # before any layer is swapped
    distribution = check_distribution(distribution)
    method = check_method(method)
    if method == "wanda" and calibration is None:
        raise ValueError("calibration: method 'wanda' needs calibration= (a batch of inputs)")
    if method != "wanda" and calibration is not None:
        raise ValueError("calibration: only used by method='wanda'")
    keep = _check_keep_dense(keep_dense)
    weight_dtype = check_weight_dtype(weight_dtype)
    group_size = check_group_size(group_size)
    if group_size is not None and weight_dtype is None:
        raise ValueError("group_size: only used with weight_dtype='int8'")
    activation_dtype = check_activation_dtype(activation_dtype)
    if activation_dtype is not None and weight_dtype is None:
        raise ValueError("activation_dtype: only used with weight_dtype='int8'")
    by_density = takes_density(layout)
    if distribution != "uniform" and not by_density:
        raise ValueError(
            f"distribution: {distribution!r} spreads density= over layers; layout {layout!r} "
            f"is pruned by its own parameters, use distribution='uniform'"
        )
    patterns = DEFAULT_KEEP_DENSE if keep is None else keep
    out_emb = _output_embeddings(model) if keep is None else None
    owners = _parameter_owners(model)

    candidates: list[_Candidate] = []
    skipped: dict[str, str] = {}
    seen: dict[int, str] = {}

    def skip_reason(name: str, child: nn.Linear, parents: list[nn.Module]) -> str | None:
        if id(child) in seen:
            return f"the same module as {seen[id(child)]} (shared): left dense"
        seen[id(child)] = name
        for pat in patterns:
            if fnmatch.fnmatchcase(name, pat):
                return f"kept dense: matches keep_dense pattern {pat!r}"
        if out_emb is not None and child is out_emb:
            return "kept dense: the model's output embeddings (get_output_embeddings())"
        reason = _unsafe_reason(name, child, parents)
        if reason is not None:
            return reason
        for attr in ("weight", "bias"):
            p = getattr(child, attr)
            others = [o for o in owners.get(id(p), []) if o != f"{name}.{attr}"]
            if p is not None and others:
                return (
                    f"tied: its {attr} Parameter is shared with {', '.join(others)}; left "
                    f"dense so that tie_weights() keeps working"
                )
        if "blocksize" in entry.option_names and blocksize is not None:
            try:
                check_blocksize(blocksize, tuple(child.weight.shape))
            except ValueError as e:
                return str(e)
        return None

    def visit(module: nn.Module, prefix: str, parents: list[nn.Module]) -> None:
        for child_name, child in list(module.named_children()):
            name = f"{prefix}{child_name}"
            if isinstance(child, nn.Linear):
                if filter is not None and not filter(name, child):
                    continue
                reason = skip_reason(name, child, parents + [module])
                if reason is None:
                    candidates.append(_Candidate(name, module, child_name, child))
                else:
                    skipped[name] = reason
            else:
                visit(child, f"{name}.", parents + [module])

    visit(model, "", [])
    if keep:
        for pat in keep:
            if not any(fnmatch.fnmatchcase(name, pat) for name in skipped):
                log.warning("sparsify: keep_dense pattern %r matched no nn.Linear", pat)

    if by_density and candidates:
        shapes = [tuple(c.module.weight.shape) for c in candidates]
        dens: list[float | None] = list(layer_densities(shapes, density, distribution))
    else:
        dens = [density] * len(candidates)

    norms: list[torch.Tensor | None] = [None] * len(candidates)
    if method == "wanda" and candidates:
        norms = list(input_norms(model, [c.module for c in candidates], calibration,
                                 [c.name for c in candidates]))

    swapped: list[str] = []
    densities: dict[str, float | None] = {}
    quant_errors: dict[str, float] = {}
    for cand, d, v in zip(candidates, dens, norms, strict=True):
        w = cand.module.weight.detach()
        pruned = prune(w, layout, d, blocksize=blocksize, n=n, m=m, method=method,
                       input_norms=v)
        s = to_sparse(pruned, layout, blocksize=blocksize, n=n, m=m)
        if weight_dtype is not None:
            sdt = w.dtype if w.dtype in (torch.float32, torch.bfloat16) else torch.float32
            q = quantize(s, weight_dtype, group_size=group_size, scale_dtype=sdt,
                         activation_dtype=activation_dtype)
            probe = torch.randn(q.shape[1], 16, generator=torch.Generator().manual_seed(0))
            quant_errors[cand.name] = quantization_error(s, q, probe.to(w.device))
            s = q
        setattr(cand.parent, cand.attr, SparseLinear(s, cand.module.bias, backend=backend))
        swapped.append(cand.name)
        densities[cand.name] = d if by_density else None

    model.sparsified = swapped
    model.sparsify_skipped = skipped
    model.sparsify_densities = densities
    if weight_dtype is not None:
        model.sparsify_quant_errors = quant_errors
    log.info("sparsify: swapped %d Linear layers %s; left dense %s", len(swapped), swapped,
             skipped)
    return model


def run_model(model: nn.Module, batch: Any) -> Any:
    """``model(batch)``, ``model(**batch)`` for a mapping, ``model(*batch)`` for a tuple/list."""
    if isinstance(batch, torch.Tensor):
        return model(batch)
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    raise TypeError(
        f"calibration: expected a tensor, a dict of tensors or a tuple, got "
        f"{type(batch).__name__}"
    )


def input_norms(
    model: nn.Module,
    layers: list[nn.Linear],
    calibration: Any,
    names: list[str] | None = None,
) -> list[torch.Tensor]:
    """L2 norm over all tokens of each input feature of each of ``layers``: ``(in_features,)``.

    Runs ``model`` once on ``calibration`` (see ``run_model``) in eval mode under
    ``torch.no_grad()``, with a forward pre-hook on each layer that adds up ``x**2`` over every
    leading dim of its input ``(..., in_features)`` in float64; the hooks are removed and the
    modules' training flags restored afterwards, also on error. Norms are float64 for float64
    weights, float32 otherwise. Raises ValueError naming a layer the batch never reached.
    """
    names = names or [str(i) for i in range(len(layers))]
    sums: list[torch.Tensor | None] = [None] * len(layers)

    def make_hook(i: int, mod: nn.Linear) -> Callable[..., None]:
        def hook(_mod: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach().reshape(-1, mod.in_features)
            sq = x.float().square().sum(0, dtype=torch.float64)
            prev = sums[i]
            sums[i] = sq if prev is None else prev + sq

        return hook

    handles = [mod.register_forward_pre_hook(make_hook(i, mod)) for i, mod in enumerate(layers)]
    modes = [(mod, mod.training) for mod in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            run_model(model, calibration)
    finally:
        for h in handles:
            h.remove()
        for mod, mode in modes:
            mod.training = mode
    out = []
    for name, mod, sq in zip(names, layers, sums, strict=True):
        if sq is None:
            raise ValueError(f"calibration: layer {name} saw no input in the calibration pass")
        dt = torch.float64 if mod.weight.dtype == torch.float64 else torch.float32
        out.append(sq.sqrt().to(dt))
    return out
