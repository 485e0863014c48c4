"""Reading SCALE-Sim ``.cfg`` files into an ``Arch``.

Understood (keys case-insensitive, ``key : value`` or ``key = value``):

* ``[general] run_name`` -> ``Arch.name``
* ``[architecture_presets] ArrayHeight, ArrayWidth, IfmapSramSzkB, FilterSramSzkB,
  OfmapSramSzkB, Dataflow`` (required) and ``Bandwidth`` (words/cycle, used in USER mode);
  SCALE-Sim's other keys (offsets, banks, request buffers) are accepted and ignored.
* ``[run_presets] InterfaceBandwidth``: ``CALC`` (unlimited bandwidth, SCALE-Sim's default)
  or ``USER`` (the ``Bandwidth`` field limits DRAM).
* ``[sparsity] SparsitySupport``: ``true`` selects ``"nm"`` mode (ratios per layer come from
  the topology file, as in SCALE-Sim v3).
* ``[sparse_ops]`` (this simulator's own, optional): ``Sparsity``, ``NM`` (``2:4``),
  ``Block`` (``16x16``), ``Balance``, ``WordBytes``, ``DramLatency``, ``ClockGHz``,
  ``Layout`` (``csr`` or ``bitmap``; its former name ``WeightFormat`` still works, with a
  ``DeprecationWarning``).

Errors are ``ValueError`` naming the file, the line and the field.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .arch import Arch, current_fields

# The former name of the [sparse_ops] key Layout (Arch.weight_format, now Arch.layout).
FORMER_LAYOUT_KEY = "WeightFormat"


class ConfigError(ValueError):
    """A malformed configuration or topology file (names file, line and field)."""


def parse_ini(path: Path) -> dict[str, dict[str, tuple[str, int, str]]]:
    """Sections -> lowercased key -> (value, line number, key as written)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file") from exc
    sections: dict[str, dict[str, tuple[str, int, str]]] = {}
    current: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ConfigError(f"{path}:{lineno}: malformed section header {line!r}")
            current = line[1:-1].strip().lower()
            sections.setdefault(current, {})
            continue
        seps = [i for i in (line.find(":"), line.find("=")) if i > 0]
        if not seps:
            raise ConfigError(f"{path}:{lineno}: expected 'key : value' or 'key = value', "
                              f"got {line!r}")
        if current is None:
            raise ConfigError(f"{path}:{lineno}: field outside any [section]: {line!r}")
        i = min(seps)
        key, value = line[:i].strip(), line[i + 1:].strip()
        for marker in (" #", " ;"):
            if marker in value:
                value = value[:value.index(marker)].strip()
        sections[current][key.lower()] = (value, lineno, key)
    return sections


def load_scalesim_config(path: str | Path, **overrides: Any) -> Arch:
    """An ``Arch`` from a SCALE-Sim configuration file; ``overrides`` replace fields."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such configuration file")
    ini = parse_ini(path)

    def get(section: str, key: str, required: bool = True) -> tuple[str, int, str] | None:
        sec = ini.get(section)
        if sec is None or key.lower() not in sec:
            if required:
                where = "" if sec is None else " (section present)"
                raise ConfigError(f"{path}: missing field {key!r} in section "
                                  f"[{section}]{where}")
            return None
        return sec[key.lower()]

    def integer(section: str, key: str, minimum: int = 1, required: bool = True) -> int | None:
        entry = get(section, key, required)
        if entry is None:
            return None
        value, line, name = entry
        try:
            out = int(value)
        except ValueError:
            raise ConfigError(f"{path}:{line}: field {name!r} in [{section}]: expected an "
                              f"integer, got {value!r}") from None
        if out < minimum:
            raise ConfigError(f"{path}:{line}: field {name!r} in [{section}]: must be >= "
                              f"{minimum}, got {out}")
        return out

    def real(section: str, key: str, required: bool = True) -> float | None:
        entry = get(section, key, required)
        if entry is None:
            return None
        value, line, name = entry
        try:
            out = float(value.split(",")[0])
        except ValueError:
            raise ConfigError(f"{path}:{line}: field {name!r} in [{section}]: expected a "
                              f"number, got {value!r}") from None
        if not out > 0:
            raise ConfigError(f"{path}:{line}: field {name!r} in [{section}]: must be > 0, "
                              f"got {value!r}")
        return out

    def boolean(section: str, key: str) -> bool | None:
        entry = get(section, key, required=False)
        if entry is None:
            return None
        value, line, name = entry
        if value.lower() in ("true", "yes", "1", "on"):
            return True
        if value.lower() in ("false", "no", "0", "off"):
            return False
        raise ConfigError(f"{path}:{line}: field {name!r} in [{section}]: expected true or "
                          f"false, got {value!r}")

    ap = "architecture_presets"
    fields: dict[str, Any] = {
        "rows": integer(ap, "ArrayHeight"),
        "cols": integer(ap, "ArrayWidth"),
        "ifmap_sram_kb": real(ap, "IfmapSramSzkB"),
        "filter_sram_kb": real(ap, "FilterSramSzkB"),
        "ofmap_sram_kb": real(ap, "OfmapSramSzkB"),
    }
    df_value, df_line, df_name = get(ap, "Dataflow")
    if df_value.lower() not in ("os", "ws", "is"):
        raise ConfigError(f"{path}:{df_line}: field {df_name!r} in [{ap}]: expected os, ws or "
                          f"is, got {df_value!r}")
    fields["dataflow"] = df_value.lower()
    name = get("general", "run_name", required=False)
    fields["name"] = name[0] if name else path.stem

    mode = get("run_presets", "InterfaceBandwidth", required=False)
    if mode is not None and mode[0].upper() not in ("CALC", "USER"):
        raise ConfigError(f"{path}:{mode[1]}: field {mode[2]!r} in [run_presets]: expected "
                          f"CALC or USER, got {mode[0]!r}")
    if mode is not None and mode[0].upper() == "USER":
        fields["dram_words_per_cycle"] = real(ap, "Bandwidth")
    if boolean("sparsity", "SparsitySupport"):
        fields["sparsity"] = "nm"

    so = "sparse_ops"
    if so in ini:
        for key, target in (("Sparsity", "sparsity"), ("NM", "nm"), ("Block", "block"),
                            ("Layout", "layout"), (FORMER_LAYOUT_KEY, "layout")):
            entry = get(so, key, required=False)
            if entry is not None:
                value = entry[0]
                if key == FORMER_LAYOUT_KEY:
                    if "layout" in fields:
                        raise ConfigError(f"{path}:{entry[1]}: field {entry[2]!r} in [{so}]: "
                                          f"give Layout or its former name {key}, not both")
                    warnings.warn(f"{path}:{entry[1]}: [{so}] {key} is deprecated, use "
                                  f"Layout", DeprecationWarning, stacklevel=2)
                if target == "block":
                    value = value.lower().replace("x", ":")
                fields[target] = (value.lower() if target in ("sparsity", "layout")
                                  else value)
        bal = boolean(so, "Balance")
        if bal is not None:
            fields["balance"] = bal
        wb = integer(so, "WordBytes", required=False)
        if wb is not None:
            fields["word_bytes"] = wb
        lat = integer(so, "DramLatency", minimum=0, required=False)
        if lat is not None:
            fields["dram_latency"] = lat
        clk = real(so, "ClockGHz", required=False)
        if clk is not None:
            fields["clock_ghz"] = clk
    fields.update(current_fields(overrides, "load_scalesim_config"))
    try:
        return Arch(**fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
