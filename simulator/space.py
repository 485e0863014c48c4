"""Design-space files: which ``Arch`` fields and sparsity modes a sweep or a search covers.

A space file is YAML::

    base:                      # optional: fixed Arch fields of every point
      dram_words_per_cycle: 16
    arch:                      # swept Arch fields (plus sram_kb for all three buffers):
      rows: [16, 32, 64]       #   a list of values: a grid axis (and a choice for search)
      cols: {low: 8, high: 128, log: true}   # a range: searched (search only)
      dataflow: [os, ws, is]
      sram_kb: [32, 128, 512]
    sparsity:                  # optional, swept: one entry per mode, with its own axes
      - mode: dense
      - mode: nm
        nm: ["2:4", "1:4"]
      - mode: unstructured
        density: [0.1, 0.3]    # density of the synthetic weight patterns
        balance: [false, true]
        layout: [csr, bitmap]  # how the sparse weights are stored
    seed: 0                    # optional: seed of the patterns

A range is ``{low, high}`` with optional ``step`` and ``log``; it is an integer range when
``low``, ``high`` (and ``step``) are integers. ``dram_words_per_cycle: none`` (or ``null``)
means unlimited. Errors are ``SpaceError`` (a ``ValueError``) naming the file, the line and
the field. A former ``Arch`` field name (``weight_format`` for ``layout``) is read as the
current one, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .arch import FIELD_ALIASES, SPARSITY_MODES, Arch, field_name
from .design_point import DesignPoint
from .sparsity import check_density

TOP_KEYS = ("base", "arch", "sparsity", "seed")
SPARSITY_KEYS = ("mode", "density", "nm", "block", "balance", "layout")
# the per-mode Arch fields a sparsity entry may sweep
MODE_FIELDS = ("nm", "block", "balance", "layout")
ARCH_FIELDS = tuple(f for f in Arch.__dataclass_fields__ if f not in ("sparsity", "name")) \
    + ("sram_kb",)


class SpaceError(ValueError):
    """A malformed space file (the message names the file, the line and the field)."""


@dataclass(frozen=True)
class Range:
    """A searched interval ``[low, high]`` (integers when ``integer``), optionally on a log
    scale or in steps of ``step``."""

    low: float
    high: float
    step: float | None = None
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class SparsityOption:
    """One sparsity choice: the mode, its ``Arch`` fields and the pattern density."""

    mode: str
    fields: tuple[tuple[str, Any], ...] = ()
    density: float | None = None

    @property
    def label(self) -> str:
        parts = [self.mode] + [f"{k}={_show(v)}" for k, v in self.fields]
        if self.density is not None:
            parts.append(f"density={self.density:g}")
        return " ".join(parts)


def _show(v: Any) -> str:
    return f"{v[0]}:{v[1]}" if isinstance(v, tuple) else str(v)


@dataclass
class Space:
    """A parsed space file: ``base`` architecture, swept ``axes`` (lists or ``Range``s, in
    file order), the sparsity options and the seed."""

    path: str
    base: Arch
    axes: dict[str, list[Any] | Range]
    sparsity: list[SparsityOption]
    seed: int = 0
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def has_ranges(self) -> bool:
        return any(isinstance(v, Range) for v in self.axes.values())

    def arch_for(self, values: dict[str, Any], option: SparsityOption | None) -> Arch:
        """The architecture of one combination of axis values and a sparsity option."""
        change = dict(values)
        if "sram_kb" in change:
            kb = change.pop("sram_kb")
            change.update(ifmap_sram_kb=kb, filter_sram_kb=kb, ofmap_sram_kb=kb)
        if option is not None:
            change["sparsity"] = option.mode
            change.update(dict(option.fields))
        try:
            return self.base.with_(**change)
        except (TypeError, ValueError) as exc:
            where = ", ".join(f"{k} (line {self.lines.get('arch.' + k, '?')})" for k in values)
            raise SpaceError(f"{self.path}: the combination {values} is not a valid "
                             f"architecture [{where}]: {exc}") from exc

    def grid(self) -> list[DesignPoint]:
        """Every combination (sparsity options vary fastest), for a full sweep."""
        for k, v in self.axes.items():
            if isinstance(v, Range):
                raise SpaceError(f"{self.path}:{self.lines.get('arch.' + k, '?')}: field "
                                 f"'arch.{k}': a range can only be searched; list values "
                                 f"for a grid sweep")
        keys = list(self.axes)
        options: list[SparsityOption | None] = list(self.sparsity) or [None]
        points = []
        for combo in itertools.product(*(self.axes[k] for k in keys)):
            values = dict(zip(keys, combo, strict=True))
            for opt in options:
                points.append(DesignPoint(self.arch_for(values, opt),
                                          opt.density if opt is not None else None))
        return points


# ---------------------------------------------------------------------------------------
# Reading, with line numbers


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _mapping(node: yaml.Node, path: str, where: str) -> list[tuple[str, yaml.Node, int]]:
    if not isinstance(node, yaml.MappingNode):
        raise SpaceError(f"{path}:{_line(node)}: field {where!r} must be a mapping")
    out = []
    for k, v in node.value:
        key = _construct(k)
        if not isinstance(key, str):
            raise SpaceError(f"{path}:{_line(k)}: field names in {where!r} must be strings, "
                             f"got {key!r}")
        out.append((key, v, _line(k)))
    return out


def _arch_keys(items: list[tuple[str, yaml.Node, int]], path: str, where: str
               ) -> list[tuple[str, yaml.Node, int]]:
    """``items`` with former ``Arch`` field names replaced by the current ones (warned)."""
    out = []
    given = {k for k, _, _ in items}
    for key, node, ln in items:
        if key in FIELD_ALIASES:
            new = field_name(key, f"{path}:{ln}: field '{where}.{key}'", stacklevel=4)
            if new in given:
                raise SpaceError(f"{path}:{ln}: field '{where}.{key}': give {new!r} or its "
                                 f"former name {key!r}, not both")
            key = new
        out.append((key, node, ln))
    return out


def _convert(name: str, value: Any) -> Any:
    if name == "dram_words_per_cycle" and isinstance(value, str) \
            and value.strip().lower() in ("none", "unlimited", "inf"):
        return None
    if name == "block" and isinstance(value, str):
        return value.replace("x", ":")
    return value


def _check_value(path: str, line: int, where: str, name: str, value: Any, base: Arch) -> Any:
    value = _convert(name, value)
    fields = ({"ifmap_sram_kb": value, "filter_sram_kb": value, "ofmap_sram_kb": value}
              if name == "sram_kb" else {name: value})
    try:
        base.with_(**fields)
    except (TypeError, ValueError) as exc:
        raise SpaceError(f"{path}:{line}: field {where!r}: {exc}") from exc
    return value


def _range(path: str, node: yaml.Node, where: str, name: str, base: Arch) -> Range:
    items = dict((k, (_construct(v), ln)) for k, v, ln in _mapping(node, path, where))
    unknown = set(items) - {"low", "high", "step", "log"}
    if unknown:
        raise SpaceError(f"{path}:{_line(node)}: field {where!r}: unknown range key(s) "
                         f"{sorted(unknown)} (a range has low, high, step, log)")
    for k in ("low", "high"):
        if k not in items:
            raise SpaceError(f"{path}:{_line(node)}: field {where!r}: a range needs {k!r}")
    nums = {}
    for k in ("low", "high", "step"):
        if k in items:
            v, ln = items[k]
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise SpaceError(f"{path}:{ln}: field '{where}.{k}' must be a number, "
                                 f"got {v!r}")
            nums[k] = v
    low, high = nums["low"], nums["high"]
    if low > high:
        raise SpaceError(f"{path}:{_line(node)}: field {where!r}: low ({low}) exceeds high "
                         f"({high})")
    log = items.get("log", (False, 0))[0]
    if not isinstance(log, bool):
        raise SpaceError(f"{path}:{items['log'][1]}: field '{where}.log' must be true/false")
    if log and "step" in nums:
        raise SpaceError(f"{path}:{_line(node)}: field {where!r}: give step or log, not both")
    if log and low <= 0:
        raise SpaceError(f"{path}:{_line(node)}: field {where!r}: a log range needs low > 0")
    integer = all(isinstance(x, numbers.Integral) for x in nums.values())
    for k in ("low", "high"):
        _check_value(path, items[k][1], f"{where}.{k}", name, nums[k], base)
    return Range(float(low), float(high), float(nums["step"]) if "step" in nums else None,
                 log, integer)


def _values(path: str, node: yaml.Node, where: str, name: str, base: Arch) -> list[Any]:
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if isinstance(node, yaml.SequenceNode) and not nodes:
        raise SpaceError(f"{path}:{_line(node)}: field {where!r} has no values")
    out = []
    for item in nodes:
        if isinstance(item, (yaml.MappingNode, yaml.SequenceNode)):
            raise SpaceError(f"{path}:{_line(item)}: field {where!r}: values must be scalars")
        out.append(_check_value(path, _line(item), where, name, _construct(item), base))
    return out


def _sparsity(path: str, node: yaml.Node, base: Arch) -> list[SparsityOption]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise SpaceError(f"{path}:{_line(node)}: field 'sparsity' must be a non-empty list of "
                         f"modes, each like {{mode: unstructured, density: [0.1, 0.3]}}")
    options: list[SparsityOption] = []
    for n, entry in enumerate(node.value):
        where = f"sparsity[{n}]"
        items = _arch_keys(_mapping(entry, path, where), path, where)
        keys = {k: (v, ln) for k, v, ln in items}
        for k, _, ln in items:
            if k not in SPARSITY_KEYS:
                raise SpaceError(f"{path}:{ln}: field '{where}.{k}': unknown (a sparsity entry "
                                 f"has {', '.join(SPARSITY_KEYS)})")
        if "mode" not in keys:
            raise SpaceError(f"{path}:{_line(entry)}: field {where!r} needs a 'mode' "
                             f"({', '.join(SPARSITY_MODES)})")
        mode_node, mode_line = keys["mode"]
        mode = _construct(mode_node)
        if mode not in SPARSITY_MODES:
            raise SpaceError(f"{path}:{mode_line}: field '{where}.mode' must be one of "
                             f"{SPARSITY_MODES}, got {mode!r}")
        axes: list[tuple[str, list[Any]]] = []
        for k in MODE_FIELDS:
            if k in keys:
                vals = _values(path, keys[k][0], f"{where}.{k}", k, base)
                axes.append((k, [getattr(base.with_(**{k: v}), k) for v in vals]))
        densities: list[float | None] = [None]
        if "density" in keys:
            dnode, dline = keys["density"]
            if mode == "nm":
                raise SpaceError(f"{path}:{dline}: field '{where}.density': an nm mode has "
                                 f"density n/m; sweep 'nm' ratios instead")
            if isinstance(dnode, yaml.MappingNode):
                raise SpaceError(f"{path}:{dline}: field '{where}.density': list the densities "
                                 f"(ranges are for Arch fields)")
            nodes = dnode.value if isinstance(dnode, yaml.SequenceNode) else [dnode]
            densities = []
            for item in nodes:
                v = _construct(item)
                try:
                    densities.append(check_density(v))
                except (TypeError, ValueError) as exc:
                    raise SpaceError(f"{path}:{_line(item)}: field '{where}.density': "
                                     f"{exc}") from exc
        keys_ = [k for k, _ in axes]
        for combo in itertools.product(*(v for _, v in axes)):
            for d in densities:
                options.append(SparsityOption(mode, tuple(zip(keys_, combo, strict=True)), d))
    return options


def load_space(path: str | Path) -> Space:
    """Read a space file (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        SpaceError: the file is not valid YAML or a field is malformed (file, line, field).
    """
    p = Path(path)
    text = p.read_text()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpaceError(f"{p}{line}: not valid YAML: {exc}") from exc
    if root is None:
        raise SpaceError(f"{p}: empty space file (needs an 'arch' mapping)")
    top = _mapping(root, str(p), "<top>")
    sections = {}
    for k, v, ln in top:
        if k not in TOP_KEYS:
            raise SpaceError(f"{p}:{ln}: field {k!r}: unknown (a space file has "
                             f"{', '.join(TOP_KEYS)})")
        sections[k] = (v, ln)
    lines: dict[str, int] = {}
    base = Arch()
    if "base" in sections:
        change = {}
        for k, v, ln in _arch_keys(_mapping(sections["base"][0], str(p), "base"), str(p),
                                   "base"):
            if k not in ARCH_FIELDS and k != "sparsity":
                raise SpaceError(f"{p}:{ln}: field 'base.{k}': not an Arch field")
            val = _check_value(str(p), ln, f"base.{k}", k, _construct(v), base)
            if k == "sram_kb":
                change.update(ifmap_sram_kb=val, filter_sram_kb=val, ofmap_sram_kb=val)
            else:
                change[k] = val
            lines[f"base.{k}"] = ln
        base = base.with_(**change)
    if "arch" not in sections:
        raise SpaceError(f"{p}: no 'arch' mapping of swept Arch fields")
    axes: dict[str, list[Any] | Range] = {}
    for k, v, ln in _arch_keys(_mapping(sections["arch"][0], str(p), "arch"), str(p), "arch"):
        if k not in ARCH_FIELDS:
            hint = " (sweep it in the 'sparsity' section)" if k == "sparsity" else ""
            raise SpaceError(f"{p}:{ln}: field 'arch.{k}': not a sweepable Arch field{hint}")
        lines[f"arch.{k}"] = ln
        if isinstance(v, yaml.MappingNode):
            axes[k] = _range(str(p), v, f"arch.{k}", k, base)
        else:
            axes[k] = _values(str(p), v, f"arch.{k}", k, base)
    if not axes:
        raise SpaceError(f"{p}:{sections['arch'][1]}: field 'arch' sweeps no field")
    options = _sparsity(str(p), sections["sparsity"][0], base) if "sparsity" in sections else []
    seed = 0
    if "seed" in sections:
        node, ln = sections["seed"]
        seed = _construct(node)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SpaceError(f"{p}:{ln}: field 'seed' must be an integer, got {seed!r}")
    return Space(str(p), base, axes, options, seed, lines)
