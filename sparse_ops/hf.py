"""Saving, loading and densifying sparsified models (Hugging Face ``transformers`` or not).

Why: ``save_pretrained`` writes a sparsified model's ``SparseLinear`` tensors under names
(``values``, ``crow_indices``, ...) that the dense architecture does not have, so
``from_pretrained`` reports them unexpected, reports the ``weight`` of every swapped layer
missing, and silently re-initialises those layers at random. The round trip here keeps the
sparse weights::

    so.sparsify(model, "csr", density=0.5)
    so.save_sparse(model, "ckpt/")     # config.json (HF) + sparse_ops.json + .safetensors
    model2 = so.load_sparse(LlamaForCausalLM, "ckpt/")   # a class: built from the saved config
    model3 = so.load_sparse(LlamaForCausalLM(config), "ckpt/")  # or a dense instance, in place

    so.densify(model)                                # SparseLinear -> nn.Linear, for export

``save_sparse`` writes ``sparse_ops.json`` (which layers are sparse: layout, pattern
parameters, backend; which Parameters were tied; the dtypes of non-persistent buffers) and
the whole ``state_dict`` in safetensors, tied tensors once: ``sparse_ops_state.safetensors``,
or shards ``sparse_ops_state-00001-of-0000N.safetensors`` with
``sparse_ops_state.safetensors.index.json`` past ``max_shard_size``; no pickle. Plus, for a
Hugging Face model, ``config.json`` and ``generation_config.json``. ``load_sparse`` swaps the listed
layers of the dense architecture for empty ``SparseLinear`` layers of the right layout, loads
the state dict strictly (every key must match: nothing is left at its random init),
re-validates the sparse indices, and ties the Parameters that were tied when saved. A
checkpoint of the first format (``sparse_ops_state.pt``, a pickle) is still read, with
``torch.load(weights_only=True)`` only. This module never imports ``transformers`` at import
time.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .convert import to_sparse
from .format import SparseMatrix
from .layer import SparseLinear
from .quantize import check_quantized, quantize
from .registry import get_layout, names
from .safetensors_files import Checkpoint, has_checkpoint, parse_size, write_checkpoint

MANIFEST = "sparse_ops.json"
STATE_STEM = "sparse_ops_state"  # <stem>.safetensors, or shards plus <stem>.safetensors.index.json
STATE = STATE_STEM + ".safetensors"
LEGACY_STATE = "sparse_ops_state.pt"  # format 1: a torch.save pickle
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)

def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    return model


def tied_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names that share one Parameter object (ties), each group in module order."""
    groups: dict[int, list[str]] = {}
    for mod_name, mod in model.named_modules(remove_duplicate=False):
        for p_name, p in mod._parameters.items():
            if p is not None:
                full = f"{mod_name}.{p_name}" if mod_name else p_name
                if full not in groups.setdefault(id(p), []):
                    groups[id(p)].append(full)
    return [g for g in groups.values() if len(g) > 1]


def _nonpersistent_dtypes(model: nn.Module) -> dict[str, str]:
    """Dtypes of the floating buffers that ``state_dict`` leaves out (RoPE's ``inv_freq``)."""
    saved = set(model.state_dict().keys())
    return {
        name: str(buf.dtype).removeprefix("torch.")
        for name, buf in model.named_buffers()
        if name not in saved and buf.is_floating_point()
    }


def _state_for_safetensors(model: nn.Module, tied: list[list[str]]) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with each tied group stored under its first name only, and any
    other tensor that shares memory with an earlier one copied (safetensors stores no
    aliases). Raises ValueError for an entry that is not a tensor."""
    drop = {name for group in tied for name in group[1:]}
    out: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, value in model.state_dict().items():
        if key in drop:
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"model: state_dict entry {key} is a {type(value).__name__}, not a "
                             f"tensor; safetensors stores tensors only")
        value = value.detach()
        ptr = value.untyped_storage().data_ptr() if value.numel() else 0
        if ptr and ptr in storages:
            value = value.clone()
        elif ptr:
            storages.add(ptr)
        out[key] = value
    return out


def save_sparse(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str = "5GB",
) -> Path:
    """Write ``model`` (sparsified or not) to ``directory`` so ``load_sparse`` restores it.

    Files: ``sparse_ops.json`` (the sparse layers by name: layout, pattern parameters,
    shape ``(out_features, in_features)``, backend; the tied Parameter groups; the model's
    ``sparsify_skipped``), the ``state_dict`` in safetensors (``sparse_ops_state.safetensors``,
    or shards of at most ``max_shard_size`` bytes (or ``"5GB"``, ``"500MB"``) with
    ``sparse_ops_state.safetensors.index.json``; each tied group under its first name), and
    when the model has a Hugging Face ``config`` (``generation_config``), ``config.json``
    (``generation_config.json``). No pickle is written. Returns the directory as a ``Path``.
    """
    _check_model(model)
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory: expected a path, got {type(directory).__name__}")
    max_bytes = parse_size(max_shard_size, "max_shard_size")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    layers = {}
    for name, mod in model.named_modules():
        if isinstance(mod, SparseLinear):
            if mod.layout not in names():
                raise ValueError(f"model: layer {name} has layout {mod.layout!r}, which "
                                 f"save_sparse does not know (known: {names()})")
            layers[name] = {
                "layout": mod.layout,
                "params": [int(p) for p in mod.sparse_weight().params()],
                "shape": [mod.out_features, mod.in_features],
                "bias": mod.bias is not None,
                "backend": mod.backend,
            }
            if "scales" in mod._buffers:  # int8 values (so.quantize)
                layers[name]["weight_dtype"] = "int8"
                layers[name]["group_size"] = mod.group_size
                if mod.activation_dtype is not None:
                    layers[name]["activation_dtype"] = mod.activation_dtype
    tied = tied_groups(model)
    state = _state_for_safetensors(model, tied)
    manifest = {
        "format": FORMAT_VERSION,
        "model_class": type(model).__name__,
        "layers": layers,
        "tied": tied,
        "sparsify_skipped": dict(getattr(model, "sparsify_skipped", {}) or {}),
        "sparsify_densities": dict(getattr(model, "sparsify_densities", {}) or {}),
        "nonpersistent_buffer_dtypes": _nonpersistent_dtypes(model),
    }
    config = getattr(model, "config", None)
    if config is not None and callable(getattr(config, "save_pretrained", None)):
        config.save_pretrained(out)
    gen = getattr(model, "generation_config", None)
    if gen is not None and callable(getattr(gen, "save_pretrained", None)):
        gen.save_pretrained(out)
    write_checkpoint(state, out, STATE_STEM, max_shard_bytes=max_bytes)
    legacy = out / LEGACY_STATE
    if legacy.is_file():  # an older save in the same directory: the manifest now says format 2
        legacy.unlink()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def _why_unpickling_failed(e: Exception) -> str:
    """The informative line of a failed ``torch.load`` (torch's message spans many lines)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported global" in ln or "WeightsUnpickler error" in ln:
            return ln[:200]
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


def _read_state(src: Path, fmt: int, map_location: str | torch.device
                ) -> dict[str, torch.Tensor]:
    """The saved state dict: safetensors (format 2) or the old pickle (format 1), read with
    ``weights_only=True``."""
    if fmt == 1:
        path = src / LEGACY_STATE
        if not path.is_file():
            raise ValueError(f"directory: {src} holds no {LEGACY_STATE} (its manifest says "
                             f"format 1)")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure gets the same advice
            raise ValueError(
                f"{path}: an old (format 1) pickle checkpoint that torch.load(weights_only=True) "
                f"cannot read ({_why_unpickling_failed(e)}). Only if you trust the file: read it "
                f"with torch.load(path, weights_only=False), rebuild the model from it (an "
                f"earlier sparse_ops release loads it), and save it again with so.save_sparse "
                f"(safetensors)") from None
    state = Checkpoint(src, STATE_STEM).read_all()
    if str(map_location) != "cpu":
        state = {k: v.to(map_location) for k, v in state.items()}
    return state


def _shell(spec: dict[str, Any], dtype: torch.dtype, device: torch.device,
           bias_dtype: torch.dtype | None = None) -> SparseLinear:
    """An all-zero ``SparseLinear`` of ``spec``'s layout (int8 with scales when the spec says
    so); ``load_state_dict`` resizes it."""
    rows, cols = spec["shape"]
    kw = get_layout(spec["layout"]).matrix.options_of(tuple(spec["params"]))
    quantized = spec.get("weight_dtype") is not None
    float_dtype = torch.float32 if quantized else dtype
    s = to_sparse(torch.zeros(rows, cols, dtype=float_dtype, device=device), spec["layout"],
                  **kw)
    if quantized:
        s = quantize(s, spec["weight_dtype"], group_size=spec.get("group_size"),
                     activation_dtype=spec.get("activation_dtype"))
    bdt = bias_dtype or float_dtype
    bias = torch.zeros(rows, dtype=bdt, device=device) if spec["bias"] else None
    return SparseLinear(s, bias, backend=spec["backend"])


def load_sparse(
    model: nn.Module | type,
    directory: str | os.PathLike[str],
    *,
    map_location: str | torch.device | None = None,
) -> nn.Module:
    """Restore a model written by ``save_sparse``: sparse layers, weights, ties.

    ``model``: a dense (or differently sparsified) instance of the saved architecture, changed
    in place; or a class with ``config_class`` (a Hugging Face ``PreTrainedModel`` subclass),
    built from the saved ``config.json`` (and ``generation_config.json``). The saved tensors
    are assigned as they are (their dtype), on ``map_location`` (default: the device of
    ``model``'s first parameter, CPU for a class). Raises ValueError when a saved layer is
    missing from ``model`` or has another shape, and when the state dict does not match
    exactly. Returns the model in eval mode when built from a class; ``model.sparsified``,
    ``model.sparsify_skipped`` and ``model.sparsify_densities`` are restored.
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory: expected a path, got {type(directory).__name__}")
    src = Path(directory)
    if not (src / MANIFEST).is_file():
        raise ValueError(f"directory: {src} holds no {MANIFEST} (see save_sparse)")
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{src / MANIFEST}: not JSON ({e})") from None
    fmt = manifest.get("format") if isinstance(manifest, dict) else None
    if fmt not in READABLE_FORMATS:
        raise ValueError(f"directory: {src / MANIFEST} has format {fmt!r}, expected one of "
                         f"{READABLE_FORMATS}")
    if fmt == 2 and not has_checkpoint(src, STATE_STEM):
        raise ValueError(f"directory: {src} holds no {STATE} (nor its sharded index)")
    if isinstance(model, type):
        config_class = getattr(model, "config_class", None)
        if config_class is None or not issubclass(model, nn.Module):
            raise TypeError(f"model: a class must be a Hugging Face PreTrainedModel subclass "
                            f"(with config_class), got {model.__name__}")
        config = config_class.from_pretrained(src)
        built = model(config)
        if (src / "generation_config.json").is_file():
            from transformers import GenerationConfig

            built.generation_config = GenerationConfig.from_pretrained(src)
        built.eval()
        model = built
    _check_model(model)
    first = next(iter(model.parameters()), None)
    if map_location is None:
        map_location = first.device if first is not None else torch.device("cpu")
    state = _read_state(src, fmt, map_location)
    for group in manifest.get("tied", []):  # stored once: every name of the group gets it
        have = next((n for n in group if n in state), None)
        if have is not None:
            for n in group:
                state.setdefault(n, state[have])

    layers: dict[str, dict[str, Any]] = manifest["layers"]
    for name, spec in layers.items():
        try:
            old = model.get_submodule(name)
        except AttributeError as e:
            raise ValueError(f"model: has no layer {name} that {src} stores sparse") from e
        shape = [getattr(old, "out_features", None), getattr(old, "in_features", None)]
        if not isinstance(old, (nn.Linear, SparseLinear)) or shape != spec["shape"]:
            raise ValueError(f"model: layer {name} is a {type(old).__name__} of shape "
                             f"{shape}; {src} stores a {spec['shape']} {spec['layout']} layer")
        values = state.get(f"{name}.values")
        if values is None:
            raise ValueError(f"directory: {src} stores no {name}.values")
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        bias = state.get(f"{name}.bias")
        setattr(parent, attr, _shell(spec, values.dtype, values.device,
                                     None if bias is None else bias.dtype))
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"directory: {src}'s state does not match the model: missing "
                         f"{result.missing_keys}, unexpected {result.unexpected_keys}")
    for name in layers:
        layer = model.get_submodule(name)
        w = layer.sparse_weight()  # validated in full: the files may be anything
        parts = {t: getattr(w, t) for t in w.tensor_names}
        if w.scales is not None:
            check_quantized(w, f"{name}")
            parts["values"] = parts["values"].float()  # the structure is what is checked
        type(w).from_parts(parts, w.shape, w.params(), validate=True)
    _tie(model, manifest.get("tied", []))
    # A model cast with .to(dtype) also cast its non-persistent buffers: cast them alike.
    for name, dt in manifest.get("nonpersistent_buffer_dtypes", {}).items():
        mod_name, _, attr = name.rpartition(".")
        owner = model.get_submodule(mod_name) if mod_name else model
        buf = getattr(owner, attr, None)
        if isinstance(buf, torch.Tensor) and buf.is_floating_point():
            setattr(owner, attr, buf.to(getattr(torch, dt)))
    model.sparsified = list(layers)
    model.sparsify_skipped = dict(manifest.get("sparsify_skipped", {}))
    model.sparsify_densities = dict(manifest.get("sparsify_densities", {}))
    return model


def _tie(model: nn.Module, groups: list[list[str]]) -> None:
    """Make each group of Parameter names share its first member's Parameter."""
    for group in groups:
        first_mod, _, first_attr = group[0].rpartition(".")
        shared = getattr(model.get_submodule(first_mod) if first_mod else model, first_attr)
        for other in group[1:]:
            mod_name, _, attr = other.rpartition(".")
            setattr(model.get_submodule(mod_name) if mod_name else model, attr, shared)


def densify(model: nn.Module) -> nn.Module:
    """Replace, in place, every ``SparseLinear`` of ``model`` by an ``nn.Linear``.

    The new layer holds the pruned weight densified ``(out_features, in_features)`` (zeros
    where pruned) and the bias, in the same dtype and device, with the same ``requires_grad``:
    for export (ONNX, ``save_pretrained``, other runtimes). ``model.densified`` lists the
    layers turned back; ``model.sparsified`` becomes empty. Returns ``model``.
    """
    _check_model(model)
    names: list[str] = []
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, SparseLinear):
            continue
        w = mod.weight.detach()
        if "scales" in mod._buffers:  # int8: the dequantized weight in the model's dtype
            w = w.to(mod.bias.dtype if mod.bias is not None else mod.scales.dtype)
        lin = torch.nn.utils.skip_init(
            nn.Linear, mod.in_features, mod.out_features, bias=mod.bias is not None,
            device=w.device, dtype=w.dtype,
        )
        with torch.no_grad():
            lin.weight.copy_(w)
            if mod.bias is not None:
                lin.bias.copy_(mod.bias.detach())
        lin.weight.requires_grad_(mod.values.requires_grad)
        if mod.bias is not None:
            lin.bias.requires_grad_(mod.bias.requires_grad)
        lin.train(mod.training)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, lin)
        names.append(name)
    model.densified = names
    if hasattr(model, "sparsified"):
        model.sparsified = []
    return model


def sparse_weights(model: nn.Module) -> dict[str, SparseMatrix]:
    """Each ``SparseLinear`` of ``model`` by name, as its sparse matrix (no copy)."""
    _check_model(model)
    return {n: m.sparse_weight() for n, m in model.named_modules() if isinstance(m, SparseLinear)}
