"""compressed-tensors checkpoints (``sparse-bitmask``, ``sparse-24-bitmask``, ``dense``), read
into sparse layers and written back.

Models pruned with llm-compressor (SparseGPT, Wanda) and saved by compressed-tensors 0.14 or
earlier have lost their runtime: compressed-tensors 0.15 and llm-compressor dropped the
sparse compressors, vLLM refuses a ``sparsity_config``, transformers densifies on load.
``load_compressed`` keeps them sparse on the CPU::

    model = so.load_compressed(LlamaForCausalLM, "ckpt/")    # built from ckpt/config.json
    model.sparsified, model.sparsify_skipped                 # converted / left-dense layers
    so.save_compressed(model, "out/")                         # the same format, for other tools

- ``sparse-bitmask`` layers become ``"bitmap"`` ``SparseLinear`` layers and
  ``sparse-24-bitmask`` layers ``"nm"`` 2:4 ones, converted bit for bit from the stored
  ``compressed`` / ``bitmask`` / ``row_offsets`` / ``shape`` tensors
  (``sparse_ops.bitmask_convert``); no dense weight of a converted layer is ever built.
- A model *class* is built on the meta device, so loading allocates the loaded tensors and
  no more (plus row-chunked temporaries of a few MiB); a model *instance* is filled in place.
- Nothing is half loaded: every tensor is read, converted and checked against the model
  before the model is changed. A corrupt, truncated or mismatched tensor raises
  ``ValueError`` naming it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import bitmask_convert as bc
from .bitmap import BitmapMatrix
from .compressed_config import (
    FORMATS,
    SparsityConfig,
    config_block,
    parse_sparsity_config,
    targeted,
)
from .convert import to_sparse
from .format import SparseMatrix
from .hf import tied_groups
from .layer import SparseLinear
from .nm import NMMatrix
from .safetensors_files import Checkpoint, parse_size, write_checkpoint

STEM = "model"  # model.safetensors / model-0000i-of-0000n.safetensors, as transformers writes
# The compression tensors of each format, by the suffix they carry after the layer's name.
PARTS = {"sparse-bitmask": ("shape", "compressed", "bitmask", "row_offsets"),
         "sparse-24-bitmask": ("shape", "compressed", "bitmask")}
DENSE_LAYOUTS = ("auto", "bitmap", "csr", "nm")


@dataclass
class _Plan:
    """Everything read and checked, before the model is touched."""

    sparse: dict[str, tuple[type[SparseMatrix], dict[str, torch.Tensor], tuple[int, ...],
                            torch.Tensor | None, str]] = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    densities: dict[str, float] = field(default_factory=dict)


def _check_directory(directory: object) -> Path:
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory: expected a path, got {type(directory).__name__}")
    return Path(directory)


def _read_config(src: Path) -> dict[str, Any]:
    path = src / "config.json"
    if not path.is_file():
        raise ValueError(f"directory: {src} holds no config.json")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _build_on_meta(cls: type, config: dict[str, Any], src: Path) -> nn.Module:
    """``cls`` (a transformers ``PreTrainedModel`` class) from ``config`` (the compression
    block removed: the model built here is no longer a compressed one), on the meta device."""
    config_class = getattr(cls, "config_class", None)
    if config_class is None or not issubclass(cls, nn.Module):
        raise TypeError(f"model_or_class: a class must be a Hugging Face PreTrainedModel "
                        f"subclass (with config_class), got {cls.__name__}")
    clean = {k: v for k, v in config.items()
             if k not in ("quantization_config", "compression_config")}
    cfg = config_class.from_dict(clean)
    with torch.device("meta"):
        model = cls(cfg)
    if (src / "generation_config.json").is_file() and hasattr(model, "generation_config"):
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(src)
    return model.eval()


def _materialise_nonpersistent_buffers(model: nn.Module) -> None:
    """Non-persistent buffers (RoPE's ``inv_freq``, BERT's ``position_ids``) are in no
    checkpoint: give the meta ones real storage and let the model's own initialiser
    (``_init_weights``, which transformers runs for them too) fill them in."""
    owners: dict[int, nn.Module] = {}
    for mod in model.modules():
        for bname in getattr(mod, "_non_persistent_buffers_set", ()):
            buf = mod._buffers.get(bname)
            if isinstance(buf, torch.Tensor) and buf.is_meta:
                mod._buffers[bname] = torch.empty_like(buf, device="cpu")
                owners[id(mod)] = mod
    init = getattr(model, "_init_weights", None)
    if callable(init):
        with torch.no_grad():
            for mod in owners.values():
                init(mod)


def _device_of(mod: nn.Module) -> torch.device | None:
    """The device of a layer's weight, or None (meta: a model built here, on the CPU)."""
    w = mod._parameters.get("weight") if isinstance(mod, nn.Linear) else (
        mod._parameters.get("values"))
    return None if w is None or w.is_meta or w.device.type == "cpu" else w.device


def _group_compressed(ckpt: Checkpoint, model_keys: set[str], modules: dict[str, nn.Module],
                      fmt: str) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Compressed tensors by layer ``{layer: {part: key}}`` and the plain keys.

    Both key spellings are read: ``<layer>.compressed`` (compressed-tensors 0.10+) and the
    older ``<layer>.weight.compressed``.
    """
    parts = PARTS.get(fmt, ())
    groups: dict[str, dict[str, str]] = {}
    plain: list[str] = []
    for key in ckpt.keys():
        prefix, _, suffix = key.rpartition(".")
        if key in model_keys or suffix not in parts or not prefix:
            plain.append(key)
            continue
        layer = prefix
        if layer not in modules and layer.endswith(".weight") and layer[:-7] in modules:
            layer = layer[:-7]
        if layer not in modules:
            raise ValueError(f"{key}: the model has no layer {layer} for this compressed tensor")
        group = groups.setdefault(layer, {})
        if suffix in group:
            raise ValueError(f"{key}: layer {layer} stores its {suffix} twice "
                             f"({group[suffix]} and {key})")
        group[suffix] = key
    for layer, group in groups.items():
        for part in parts:
            if part not in group:
                raise ValueError(f"{layer}.{part}: missing (layer {layer} stores "
                                 f"{sorted(group)} of the {fmt} tensors {list(parts)})")
    return groups, plain


def _read_layer(ckpt: Checkpoint, fmt: str, layer: str, group: dict[str, str],
                out_in: tuple[int, int]) -> tuple[type[SparseMatrix], dict[str, torch.Tensor],
                                                  tuple[int, ...], str]:
    """One compressed layer as (matrix class, its tensors, params, layout)."""
    t = {part: ckpt.read(key) for part, key in group.items()}
    bc.check_shape_tensor(group["shape"], t["shape"], out_in)
    prefix = group["compressed"].rpartition(".")[0]
    if fmt == "sparse-24-bitmask" and out_in[1] % 4 == 0:
        parts = bc.nm24_from_bitmask(prefix, out_in, t["compressed"], t["bitmask"])
        return NMMatrix, parts, (2, 4), "nm"
    # sparse-bitmask, or a 2:4 weight whose rows do not split into groups of four
    parts = bc.bitmap_from_bitmask(prefix, out_in, t["compressed"], t["bitmask"],
                                   t.get("row_offsets"))
    return BitmapMatrix, parts, (int(parts["values"].numel()),), "bitmap"


def _dense_layout(choice: str, cfg: SparsityConfig) -> tuple[str, dict[str, int]]:
    if choice == "auto":
        if ":" in cfg.structure and cfg.structure != "0:0":
            n, m = (int(x) for x in cfg.structure.split(":"))
            if 1 <= n < m <= 16:
                return "nm", {"n": n, "m": m}
        return "bitmap", {}
    if choice == "nm":
        n, m = ((int(x) for x in cfg.structure.split(":")) if ":" in cfg.structure
                and cfg.structure != "0:0" else (2, 4))
        return "nm", {"n": n, "m": m}
    return choice, {}


def _sparse_by_zeros(weight: torch.Tensor, layout: str, kw: dict[str, int]
                     ) -> tuple[SparseMatrix | None, str | None]:
    """``weight`` stored by its zeros in ``layout``, if that is smaller than dense."""
    if not weight.dtype.is_floating_point:
        return None, f"its weight is {weight.dtype}, not a float type"
    try:
        s = to_sparse(weight, layout, **kw)
    except ValueError as e:
        pattern = f" {kw['n']}:{kw['m']}" if kw else ""
        return None, f"its zeros do not fit {layout}{pattern}: {e}"
    dense_bytes = weight.numel() * weight.element_size()
    if s.nbytes >= dense_bytes:
        return None, (f"stored by its zeros as {layout} it would take {s.nbytes} bytes, not "
                      f"fewer than dense ({dense_bytes})")
    return s, None


def _plan(model: nn.Module, ckpt: Checkpoint, cfg: SparsityConfig, src: Path,
          sparsify_dense: str | None) -> _Plan:
    modules = dict(model.named_modules())
    current = model.state_dict(keep_vars=True)
    model_keys = set(current)
    groups, plain = _group_compressed(ckpt, model_keys, modules, cfg.format)
    plan = _Plan()
    swapped_keys: set[str] = set()
    linear_types = (nn.Linear, SparseLinear)
    for layer, group in groups.items():
        mod = modules[layer]
        if not isinstance(mod, linear_types):
            raise ValueError(f"{group['compressed']}: layer {layer} is a "
                             f"{type(mod).__name__}; compressed weights load into Linear "
                             f"layers only")
        why = targeted(layer, mod, cfg)
        if why is not None:
            raise ValueError(f"{group['compressed']}: layer {layer} is stored compressed, but "
                             f"config.json leaves it dense ({why}): the checkpoint does not "
                             f"match its config")
        if f"{layer}.weight" in ckpt:
            raise ValueError(f"{layer}.weight: stored as well as {group['compressed']}")
        out_in = (mod.out_features, mod.in_features)
        cls, parts, params, layout = _read_layer(ckpt, cfg.format, layer, group, out_in)
        bias = None
        if mod.bias is not None:
            key = f"{layer}.bias"
            if key not in ckpt:
                raise ValueError(f"{key}: missing from {src} (layer {layer} has a bias)")
            bias = ckpt.read(key)
            if tuple(bias.shape) != (out_in[0],):
                raise ValueError(f"{key}: shape {tuple(bias.shape)}, the layer needs "
                                 f"({out_in[0]},)")
            swapped_keys.add(key)
        dev = _device_of(mod)
        if dev is not None:  # an instance on another device: its tensors go there
            parts = {n: t.to(dev) for n, t in parts.items()}
            bias = None if bias is None else bias.to(dev)
        plan.sparse[layer] = (cls, parts, params, bias, layout)
        nnz = int(torch.count_nonzero(parts["values"]))
        plan.densities[layer] = nnz / max(1, out_in[0] * out_in[1])
        swapped_keys.update(f"{layer}.{n}" for n, _ in mod.named_parameters(recurse=False))
        swapped_keys.update(f"{layer}.{n}" for n, _ in mod.named_buffers(recurse=False))

    dense_choice = None
    if sparsify_dense is not None:
        if sparsify_dense not in DENSE_LAYOUTS:
            raise ValueError(f"sparsify_dense: expected None or one of {DENSE_LAYOUTS}, got "
                             f"{sparsify_dense!r}")
        dense_choice = _dense_layout(sparsify_dense, cfg)

    unexpected = [k for k in plain if k not in model_keys]
    nonpersistent = {n for n, _ in model.named_buffers()} - model_keys
    unexpected = [k for k in unexpected if k not in nonpersistent]
    if unexpected:
        raise ValueError(f"{unexpected[0]}: the model has no such parameter or buffer "
                         f"({len(unexpected)} unexpected tensors in {src}: "
                         f"{unexpected[:5]})")
    for key in plain:
        if key not in model_keys:
            continue  # a non-persistent buffer an older writer stored: the model makes its own
        cur = current[key]
        if ckpt.shape(key) != tuple(cur.shape):
            raise ValueError(f"{key}: stored with shape {ckpt.shape(key)}, the model's is "
                             f"{tuple(cur.shape)}")
        t = ckpt.read(key)
        plan.state[key] = t if cur.is_meta or cur.device == t.device else t.to(cur.device)

    for name, mod in modules.items():
        if not isinstance(mod, nn.Linear) or name in plan.sparse:
            continue
        why = targeted(name, mod, cfg)
        if why is None and dense_choice is not None:
            weight = plan.state.get(f"{name}.weight")
            if weight is None:
                why = "its weight is not stored (tied to another tensor)"
            else:
                layout, kw = dense_choice
                s, why = _sparse_by_zeros(weight, layout, kw)
                if s is not None:
                    tensors = {n: getattr(s, n) for n in s.tensor_names}
                    bias = plan.state.pop(f"{name}.bias", None) if mod.bias is not None else None
                    plan.sparse[name] = (type(s), tensors, s.params(), bias, layout)
                    plan.densities[name] = int(torch.count_nonzero(s.values)) / max(
                        1, mod.out_features * mod.in_features)
                    del plan.state[f"{name}.weight"]
                    swapped_keys.update({f"{name}.weight", f"{name}.bias"})
                    continue
        elif why is None:
            why = ("a dense checkpoint (pass sparsify_dense= to store its zeros sparse)"
                   if cfg.format == "dense" else "stored dense in the checkpoint")
        plan.skipped[name] = f"left dense: {why}"

    covered = set(plan.state) | swapped_keys
    tied = [g for g in tied_groups(model) if any(n in plan.state for n in g)]
    tied_names = {n for g in tied for n in g}
    missing = sorted(k for k in model_keys if k not in covered and k not in tied_names)
    if missing:
        raise ValueError(f"{missing[0]}: not in {src} ({len(missing)} of the model's tensors "
                         f"are missing: {missing[:5]}); nothing was loaded")
    return plan


def _retie(model: nn.Module, groups: list[list[str]], loaded: set[str]) -> None:
    """Make each tied group share the Parameter that was loaded (``assign`` replaced it);
    members that are sparse layers now keep their own tensors."""

    def owner(name: str) -> tuple[nn.Module, str]:
        mod_name, _, attr = name.rpartition(".")
        return (model.get_submodule(mod_name) if mod_name else model), attr

    for group in groups:
        source = next((n for n in group if n in loaded), None)
        if source is None:
            continue
        mod, attr = owner(source)
        shared = getattr(mod, attr)
        for other in group:
            mod, attr = owner(other)
            if other != source and not isinstance(mod, SparseLinear):
                setattr(mod, attr, shared)


def _sparse_layer(cls: type[SparseMatrix], tensors: dict[str, torch.Tensor],
                  shape: tuple[int, int], params: tuple[int, ...], bias: torch.Tensor | None
                  ) -> SparseLinear:
    """A ``SparseLinear`` that takes ``tensors`` as they are (no copy): built on meta-device
    placeholders, then the real tensors assigned."""
    meta = {n: torch.empty(t.shape, dtype=t.dtype, device="meta") for n, t in tensors.items()}
    mbias = None if bias is None else torch.empty(bias.shape, dtype=bias.dtype, device="meta")
    layer = SparseLinear(cls.from_parts(meta, shape, params, validate=False), mbias)
    state = dict(tensors)
    if bias is not None:
        state["bias"] = bias
    layer.load_state_dict(state, assign=True)
    layer.eval()
    return layer


def load_compressed(
    model_or_class: nn.Module | type,
    directory: str | os.PathLike[str],
    *,
    sparsify_dense: str | None = None,
) -> nn.Module:
    """Load a compressed-tensors checkpoint into sparse layers (``SparseLinear``).

    Args:
        model_or_class: a Hugging Face ``PreTrainedModel`` class, built from
            ``directory/config.json`` on the meta device and filled with the checkpoint's
            tensors only (returned in eval mode); or a model instance of the same
            architecture, changed in place.
        directory: ``config.json`` plus ``model.safetensors`` or ``model-*-of-*.safetensors``
            with ``model.safetensors.index.json``.
        sparsify_dense: for layers stored dense that the config targets (a ``"dense"``
            checkpoint): ``None`` keeps them dense; ``"bitmap"``, ``"csr"`` or ``"nm"`` (n:m
            from ``sparsity_structure``, else 2:4) stores them by their zeros; ``"auto"``:
            ``"nm"`` for an ``n:m`` structure, else ``"bitmap"``. A layer is converted only
            when its zeros fit the layout and the sparse form takes fewer bytes than dense.

    ``sparse-bitmask`` layers become ``"bitmap"`` layers, ``sparse-24-bitmask`` layers
    ``"nm"`` 2:4 layers (``"bitmap"`` when ``in_features`` is not a multiple of 4);
    tensors keep their stored dtype. ``sparsity_config.targets`` / ``ignore`` decide which
    layers may be compressed (a compressed tensor for another layer is a mismatch).
    ``model.sparsified`` lists the sparse layers, ``model.sparsify_skipped`` maps each
    Linear left dense to the reason, ``model.sparsify_densities`` the nonzero fraction of
    each sparse layer and ``model.compressed_format`` the checkpoint's format.

    Raises ValueError naming the file or tensor when the config or a tensor is corrupt,
    truncated, of another shape than the model's, or when a model tensor is missing; the
    model is unchanged then. Tied parameters (``lm_head`` and the embeddings) are tied again.
    """
    src = _check_directory(directory)
    config = _read_config(src)
    cfg = parse_sparsity_config(config, str(src / "config.json"))
    built = isinstance(model_or_class, type)
    if built:
        model = _build_on_meta(model_or_class, config, src)
    elif isinstance(model_or_class, nn.Module):
        model = model_or_class
    else:
        raise TypeError(f"model_or_class: expected an nn.Module or a model class, got "
                        f"{type(model_or_class).__name__}")
    ckpt = Checkpoint(src, STEM)
    groups_before = tied_groups(model)
    plan = _plan(model, ckpt, cfg, src, sparsify_dense)

    # Nothing below reads a file or can disagree with the model: it was all checked above.
    if built:
        _materialise_nonpersistent_buffers(model)
    for name, (cls, tensors, params, bias, _) in plan.sparse.items():
        old = model.get_submodule(name)
        layer = _sparse_layer(cls, tensors, (old.out_features, old.in_features), params, bias)
        layer.train(old.training)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, layer)
    result = model.load_state_dict(plan.state, strict=False, assign=True)
    if result.unexpected_keys:  # pragma: no cover - _plan checked every key against the model
        raise RuntimeError(f"load_compressed: keys the plan did not expect: "
                           f"{result.unexpected_keys[:5]}")
    _retie(model, groups_before, set(plan.state))
    if built:
        left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if left:  # pragma: no cover - a model whose initialiser leaves a buffer on meta
            raise ValueError(f"{left[0]}: neither in {src} nor made by the model's "
                             f"initialiser ({left[:5]})")
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    model.sparsified = sorted(plan.sparse, key=lambda n: order.get(n, len(order)))
    model.sparsify_skipped = dict(plan.skipped)
    model.sparsify_densities = dict(plan.densities)
    model.compressed_format = cfg.format
    return model


# --- writing ------------------------------------------------------------------------------


def _bitmask_parts(s: SparseMatrix) -> dict[str, torch.Tensor]:
    shape = tuple(s.shape)
    if s.layout == "bitmap":
        return bc.bitmask_from_bitmap(s.row_offsets, s.bitmap, s.values, shape)
    if s.layout == "nm" and s.params() == (2, 4) and shape[1] % 4 == 0:
        parts = bc.bitmask24_from_nm(s.values, s.metadata, shape)
        m, k = shape
        return {"shape": torch.tensor([m, k], dtype=torch.int64),
                "compressed": parts["compressed"].reshape(-1), "bitmask": parts["bitmask"],
                "row_offsets": torch.arange(m, dtype=torch.int64) * (k // 2)}
    return bc.bitmask_from_dense(s.to_dense().detach())


def _is_24(s: SparseMatrix) -> bool:
    return s.layout == "nm" and s.params() == (2, 4) and s.shape[1] % 4 == 0


def _compressed_tensors(fmt: str, s: SparseMatrix) -> dict[str, torch.Tensor]:
    if fmt == "sparse-24-bitmask":
        return bc.bitmask24_from_nm(s.values, s.metadata, tuple(s.shape))
    return _bitmask_parts(s)


def save_compressed(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    format: str = "auto",
    max_shard_size: int | str = "5GB",
) -> Path:
    """Write ``model`` as a compressed-tensors checkpoint that compressed-tensors 0.14's
    decompressor (and the tools built on it) read back.

    Every ``SparseLinear`` is written compressed, every other tensor as it is:

    - ``format="auto"``: ``"sparse-24-bitmask"`` when every sparse layer is 2:4 with
      ``in_features`` a multiple of 4, else ``"sparse-bitmask"`` (``"dense"`` when there is
      no sparse layer); or name the format. ``"sparse-24-bitmask"`` needs every sparse layer
      2:4 (ValueError naming the first that is not).
    - ``"sparse-bitmask"`` stores a bitmap layer's own bits and values (no dense weight is
      built); other layouts through their dense weight, one layer at a time.
    - ``config.json``: the model's Hugging Face config (when it has one) plus
      ``quantization_config`` with ``sparsity_config`` (``targets`` = the sparse layers'
      names), and ``generation_config.json``.
    - ``model.safetensors``, or shards of at most ``max_shard_size`` (bytes, or ``"5GB"``,
      ``"500MB"``) with ``model.safetensors.index.json``. Tied parameters are stored once.

    Returns the directory.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    out = _check_directory(directory)
    sparse = {n: m for n, m in model.named_modules() if isinstance(m, SparseLinear)}
    matrices = {n: m.sparse_weight() for n, m in sparse.items()}
    if format == "auto":
        fmt = ("dense" if not sparse else "sparse-24-bitmask"
               if all(_is_24(s) for s in matrices.values()) else "sparse-bitmask")
    elif format in FORMATS:
        fmt = format
    else:
        raise ValueError(f"format: expected 'auto' or one of {FORMATS}, got {format!r}")
    if fmt == "dense" and sparse:
        raise ValueError(f"format: 'dense' cannot hold the sparse layers {list(sparse)[:3]}; "
                         f"densify the model first (so.densify) or pick a sparse format")
    if fmt == "sparse-24-bitmask":
        for name, s in matrices.items():
            if not _is_24(s):
                raise ValueError(f"model: layer {name} is {s.layout} {s.params()} of shape "
                                 f"{tuple(s.shape)}; sparse-24-bitmask holds 2:4 layers with "
                                 f"in_features a multiple of 4")
    max_bytes = parse_size(max_shard_size, "max_shard_size")

    owned = {f"{n}.{t}" for n, m in sparse.items() for t in ("values", *m.structure_names)}
    state: dict[str, torch.Tensor] = {}
    seen: dict[tuple[int, int], str] = {}
    for key, value in model.state_dict().items():
        layer = key.rpartition(".")[0]
        if key in owned:
            if layer not in state and f"{layer}.compressed" not in state:
                for part, t in _compressed_tensors(fmt, matrices[layer]).items():
                    state[f"{layer}.{part}"] = t
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"model: state_dict entry {key} is a {type(value).__name__}, "
                             f"not a tensor: safetensors cannot hold it")
        ident = (value.untyped_storage().data_ptr(), value.storage_offset())
        if value.numel() and ident in seen:
            continue  # a tied parameter: stored once, tied again by the reader
        seen[ident] = key
        state[key] = value.detach()
    total = sum(m.out_features * m.in_features for m in sparse.values())
    nonzero = sum(int(torch.count_nonzero(s.values)) for s in matrices.values())
    structure = "2:4" if sparse and all(_is_24(s) for s in matrices.values()) else "unstructured"
    block = config_block(fmt, list(sparse), structure,
                         1.0 - nonzero / total if total else 0.0)

    out.mkdir(parents=True, exist_ok=True)
    cfg = getattr(model, "config", None)
    config: dict[str, Any] = {}
    if cfg is not None and callable(getattr(cfg, "save_pretrained", None)):
        cfg.save_pretrained(out)
        config = json.loads((out / "config.json").read_text())
        config.pop("compression_config", None)
    gen = getattr(model, "generation_config", None)
    if gen is not None and callable(getattr(gen, "save_pretrained", None)):
        gen.save_pretrained(out)
    config["quantization_config"] = block
    write_checkpoint(state, out, STEM, max_shard_bytes=max_bytes)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out

