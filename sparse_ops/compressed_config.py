"""The ``sparsity_config`` of a compressed-tensors checkpoint: parsed against an allowlist.

``config.json`` holds it under ``quantization_config.sparsity_config`` (older files:
``compression_config.sparsity_config``)::

    "quantization_config": {"quant_method": "compressed-tensors", "version": "0.14.0.1",
      "sparsity_config": {"format": "sparse-bitmask", "targets": ["Linear"],
                          "ignore": ["lm_head"], "sparsity_structure": "unstructured",
                          "global_sparsity": 0.5}}

The file is untrusted input: ``format`` must be one of ``FORMATS`` (compared as a string,
never used to look anything up), ``targets`` / ``ignore`` lists of strings (a module name, a
class name such as ``"Linear"``, or ``"re:<regex>"`` matched at the start of the name, as
compressed-tensors matches them), and a checkpoint with quantized weights is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torch import nn

FORMATS = ("dense", "sparse-bitmask", "sparse-24-bitmask")
QUANT_METHODS = ("compressed-tensors", "sparseml")
WRITER_VERSION = "0.14.0.1"  # the last compressed-tensors release that writes sparse weights
MAX_PATTERN_CHARS = 1000


@dataclass(frozen=True)
class SparsityConfig:
    """A parsed ``sparsity_config``.

    ``targets``: ``None`` when the file gives none (then the tensors decide which layers are
    sparse); ``ignore``: patterns never targeted; ``structure``: ``"unstructured"``,
    ``"2:4"``, ...; ``source``: the ``config.json`` key it came from.
    """

    format: str
    targets: tuple[str, ...] | None
    ignore: tuple[str, ...]
    structure: str
    global_sparsity: float
    source: str


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of strings, got {type(value).__name__}")
    out = []
    for p in value:
        if not isinstance(p, str) or not p or len(p) > MAX_PATTERN_CHARS:
            raise ValueError(f"{where}: expected non-empty strings (at most "
                             f"{MAX_PATTERN_CHARS} characters), got {p!r:.80}")
        if p.startswith("re:"):
            try:
                re.compile(p[3:])
            except re.error as e:
                raise ValueError(f"{where}: {p!r} is not a valid regular expression ({e})") \
                    from None
        out.append(p)
    return tuple(out)


def parse_sparsity_config(config: Any, where: str = "config.json") -> SparsityConfig:
    """The ``sparsity_config`` of a ``config.json`` dict, checked; ``ValueError`` otherwise.

    A config with neither ``quantization_config`` nor ``compression_config`` is a plain dense
    checkpoint (format ``"dense"``, every layer a target).
    """
    if not isinstance(config, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(config).__name__}")
    source = next((k for k in ("quantization_config", "compression_config") if k in config), "")
    block = config.get(source) if source else None
    if block is None:
        return SparsityConfig("dense", None, (), "unstructured", 0.0, "none")
    if not isinstance(block, dict):
        raise ValueError(f"{where}: {source} must be an object, got {type(block).__name__}")
    method = block.get("quant_method", "compressed-tensors")
    if method not in QUANT_METHODS:
        raise ValueError(f"{where}: {source}.quant_method is {method!r:.80}; only "
                         f"compressed-tensors checkpoints ({', '.join(QUANT_METHODS)}) are read")
    if block.get("config_groups") or block.get("format") not in (None, "dense"):
        raise ValueError(f"{where}: {source} describes quantized weights (config_groups / "
                         f"format {block.get('format')!r:.40}); load_compressed reads sparse "
                         f"float weights only")
    sc = block.get("sparsity_config")
    if not sc:  # absent, null or {}: nothing is sparse
        return SparsityConfig("dense", None, (), "unstructured", 0.0, source)
    key = f"{source}.sparsity_config"
    if not isinstance(sc, dict):
        raise ValueError(f"{where}: {key} must be an object, got {type(sc).__name__}")
    fmt = sc.get("format")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ValueError(f"{where}: {key}.format is {fmt!r:.80}; load_compressed reads "
                         f"{', '.join(repr(f) for f in FORMATS)}")
    targets = sc.get("targets")
    targets_t = None if targets is None else _patterns(targets, f"{where}: {key}.targets")
    ignore = sc.get("ignore")
    ignore_t = () if ignore is None else _patterns(ignore, f"{where}: {key}.ignore")
    structure = sc.get("sparsity_structure") or "unstructured"
    if not isinstance(structure, str) or not re.fullmatch(r"unstructured|0:0|\d{1,2}:\d{1,2}",
                                                          structure.lower()):
        raise ValueError(f"{where}: {key}.sparsity_structure is {structure!r:.80}; expected "
                         f"'unstructured' or 'n:m'")
    gs = sc.get("global_sparsity") or 0.0
    if isinstance(gs, bool) or not isinstance(gs, (int, float)):
        raise ValueError(f"{where}: {key}.global_sparsity must be a number, got {gs!r:.40}")
    if fmt == "sparse-24-bitmask" and structure.lower() not in ("2:4", "unstructured"):
        raise ValueError(f"{where}: {key}: format sparse-24-bitmask with sparsity_structure "
                         f"{structure!r}")
    return SparsityConfig(fmt, targets_t, ignore_t, structure.lower(), float(gs), source)


def _class_names(module: nn.Module) -> set[str]:
    names = {c.__name__ for c in type(module).__mro__ if issubclass(c, nn.Module)}
    if "SparseLinear" in names:  # a layer this package already swapped is still a Linear
        names.add("Linear")
    return names


def matches(name: str, module: nn.Module, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` / ``module`` matches a pattern: the exact name, ``"re:<regex>"``
    matched at the start of the name, or a class name in the module's MRO."""
    classes = _class_names(module)
    for p in patterns:
        if p.startswith("re:"):
            if re.match(p[3:], name):
                return True
        elif p == name or p in classes:
            return True
    return False


def targeted(name: str, module: nn.Module, cfg: SparsityConfig) -> str | None:
    """``None`` when ``cfg`` targets the module, else why not (for the report)."""
    if cfg.targets is not None and not matches(name, module, cfg.targets):
        return "not in sparsity_config.targets"
    if matches(name, module, cfg.ignore):
        return "in sparsity_config.ignore"
    return None


def config_block(fmt: str, targets: list[str], structure: str, global_sparsity: float
                 ) -> dict[str, Any]:
    """The ``quantization_config`` object compressed-tensors 0.14 writes for sparse weights."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    return {
        "quant_method": "compressed-tensors",
        "version": WRITER_VERSION,
        "sparsity_config": {
            "format": fmt, "targets": list(targets), "ignore": [],
            "global_sparsity": float(global_sparsity), "sparsity_structure": structure,
            "registry_requires_subclass": False,
        },
        "transform_config": {},
    }
