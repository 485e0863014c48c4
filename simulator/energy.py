"""Energy as a separate pass: action counts x energy per action (Accelergy style).

The default table (``energy_45nm.yaml`` next to this file) holds the 45 nm figures of
M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014.
Users swap it for their own YAML file with the same keys. All energies are in pJ.

Components of ``Result.energy_pj``:
    ``mac``: useful MACs (nonzero weight) x ``mac_pj[word_bits]``.
    ``gated_mac``: MAC slots spent on a zero weight x ``mac_pj * gated_mac_fraction``.
    ``sram``: ifmap, filter and ofmap SRAM reads + writes x per-word SRAM energy of that
        buffer's size.
    ``dram``: ifmap, filter and ofmap DRAM reads + writes x per-word DRAM energy.
    ``metadata``: metadata words moved (SRAM and DRAM, same per-word prices) plus
        ``index_pj`` per metadata word the array decodes.
    ``total``: the sum of the above. Idle PEs, leakage and wires are not counted.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arch import Arch
from .yaml_table import load_mapping

DEFAULT_TABLE_PATH = Path(__file__).resolve().parent / "energy_45nm.yaml"
_KEYS = ("mac_pj", "gated_mac_fraction", "sram_pj_per_64b", "dram_pj_per_64b", "index_pj")


def _loglog(table: dict[float, float], x: float) -> float:
    """Interpolate ``table`` (x -> y, both > 0) on log-log axes, extrapolating at the ends."""
    xs = sorted(table)
    if len(xs) == 1:
        return table[xs[0]]
    lo, hi = xs[0], xs[1]
    for a, b in zip(xs, xs[1:], strict=False):
        lo, hi = a, b
        if x <= b:
            break
    ya, yb = table[lo], table[hi]
    t = (math.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return math.exp(math.log(ya) + t * (math.log(yb) - math.log(ya)))


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action, in pJ. See ``energy_45nm.yaml`` for the meaning of each key."""

    mac_pj: dict[float, float]
    gated_mac_fraction: float
    sram_pj_per_64b: dict[float, float]
    dram_pj_per_64b: float
    index_pj: float
    source: str = field(default="", compare=False)

    @classmethod
    def from_yaml(cls, path: str | Path) -> EnergyTable:
        """Read a table; errors name the file and the field."""
        data = load_mapping(path, "energy fields")
        return cls.from_dict(data, origin=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "energy table") -> EnergyTable:
        missing = [k for k in _KEYS if k not in data]
        if missing:
            raise ValueError(f"{origin}: missing field(s) {', '.join(missing)}")

        def number(key: str, value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
                raise ValueError(f"{origin}: field {key!r} must be a number >= 0, "
                                 f"got {value!r}")
            return float(value)

        def curve(key: str) -> dict[float, float]:
            value = data[key]
            if not isinstance(value, dict) or not value:
                raise ValueError(f"{origin}: field {key!r} must map sizes to pJ")
            out = {}
            for k, v in value.items():
                kk = number(f"{key}.{k}", k)
                vv = number(f"{key}.{k}", v)
                if kk <= 0 or vv <= 0:
                    raise ValueError(f"{origin}: field {key!r}: entries must be > 0")
                out[kk] = vv
            return out

        return cls(mac_pj=curve("mac_pj"),
                   gated_mac_fraction=number("gated_mac_fraction", data["gated_mac_fraction"]),
                   sram_pj_per_64b=curve("sram_pj_per_64b"),
                   dram_pj_per_64b=number("dram_pj_per_64b", data["dram_pj_per_64b"]),
                   index_pj=number("index_pj", data["index_pj"]),
                   source=str(data.get("source", origin)))

    # Per-action prices ------------------------------------------------------------------

    def mac(self, word_bits: int) -> float:
        return _loglog(self.mac_pj, word_bits)

    def sram_word(self, size_kb: float, word_bits: int) -> float:
        return _loglog(self.sram_pj_per_64b, size_kb) * word_bits / 64

    def dram_word(self, word_bits: int) -> float:
        return self.dram_pj_per_64b * word_bits / 64


_DEFAULT: EnergyTable | None = None


def default_table() -> EnergyTable:
    """The 45 nm Horowitz table shipped with the package (read once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = EnergyTable.from_yaml(DEFAULT_TABLE_PATH)
    return _DEFAULT


def resolve_table(table: EnergyTable | str | Path | None) -> EnergyTable:
    if table is None:
        return default_table()
    if isinstance(table, EnergyTable):
        return table
    if isinstance(table, (str, Path)):
        return EnergyTable.from_yaml(table)
    if isinstance(table, dict):
        return EnergyTable.from_dict(table)
    raise TypeError(f"energy_table must be an EnergyTable, a YAML path or a dict, "
                    f"got {type(table).__name__}")


def estimate_energy(arch: Arch, useful_macs: int, performed_macs: int,
                    sram_reads: dict[str, int], sram_writes: dict[str, int],
                    dram_reads: dict[str, int], dram_writes: dict[str, int],
                    table: EnergyTable | str | Path | None = None) -> dict[str, float]:
    """Energy in pJ per component (see the module docstring) from action counts."""
    t = resolve_table(table)
    bits = arch.word_bits
    mac = t.mac(bits)
    sizes = {"ifmap": arch.ifmap_sram_kb, "filter": arch.filter_sram_kb,
             "ofmap": arch.ofmap_sram_kb, "metadata": arch.filter_sram_kb}
    sram = {op: t.sram_word(kb, bits) for op, kb in sizes.items()}
    dram = t.dram_word(bits)
    out = {
        "mac": useful_macs * mac,
        "gated_mac": max(performed_macs - useful_macs, 0) * mac * t.gated_mac_fraction,
        "sram": sum((sram_reads[op] + sram_writes[op]) * sram[op]
                    for op in ("ifmap", "filter", "ofmap")),
        "dram": sum((dram_reads[op] + dram_writes[op]) * dram
                    for op in ("ifmap", "filter", "ofmap")),
        "metadata": ((sram_reads["metadata"] + sram_writes["metadata"]) * sram["metadata"]
                     + (dram_reads["metadata"] + dram_writes["metadata"]) * dram
                     + sram_reads["metadata"] * t.index_pj),
    }
    out["total"] = sum(out.values())
    return out
