"""Silicon area of an architecture: PEs by precision and sparse mode, plus SRAM by capacity.

The default table (``area_45nm.yaml`` next to this file) holds 45 nm figures: MAC units from
M. Horowitz, ISSCC 2014 (the same source as the energy table), the SRAM bit cell of Intel's
45 nm process (Mistry et al., IEDM 2007), and marked assumptions for registers, sparse-mode
logic and SRAM array efficiency. Users swap it for their own YAML file with the same keys.

``estimate_area(arch)`` returns mm^2 per component:
    ``pe``: ``rows * cols * (mac_um2[word_bits] + pe_register_words * word_bits *
        register_um2_per_bit) * (1 + sparse_pe_overhead[sparsity])``.
    ``sram``: the three buffers (both halves of each double buffer), ``KB * 8192`` bits at
        ``sram_bitcell_um2 / sram_array_efficiency`` each.
    ``total``: their sum. DRAM interface, NoC, control and wires are not counted.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arch import SPARSITY_MODES, Arch
from .energy import _loglog
from .yaml_table import load_mapping

DEFAULT_AREA_PATH = Path(__file__).resolve().parent / "area_45nm.yaml"
_KEYS = ("mac_um2", "pe_register_words", "register_um2_per_bit", "sparse_pe_overhead",
         "sram_bitcell_um2", "sram_array_efficiency")


@dataclass(frozen=True)
class AreaTable:
    """Area per component, in um^2 (see ``area_45nm.yaml`` for each key)."""

    mac_um2: dict[float, float]
    pe_register_words: float
    register_um2_per_bit: float
    sparse_pe_overhead: dict[str, float]
    sram_bitcell_um2: float
    sram_array_efficiency: float
    source: str = field(default="", compare=False)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AreaTable:
        """Read a table; errors name the file and the field."""
        data = load_mapping(path, "area fields")
        return cls.from_dict(data, origin=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "area table") -> AreaTable:
        missing = [k for k in _KEYS if k not in data]
        if missing:
            raise ValueError(f"{origin}: missing field(s) {', '.join(missing)}")

        def number(key: str, value: Any, positive: bool = True) -> float:
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or value < 0 or (positive and value == 0)):
                kind = "> 0" if positive else ">= 0"
                raise ValueError(f"{origin}: field {key!r} must be a number {kind}, "
                                 f"got {value!r}")
            return float(value)

        mac = data["mac_um2"]
        if not isinstance(mac, dict) or not mac:
            raise ValueError(f"{origin}: field 'mac_um2' must map word bits to um^2")
        over = data["sparse_pe_overhead"]
        if not isinstance(over, dict) or set(over) != set(SPARSITY_MODES):
            raise ValueError(f"{origin}: field 'sparse_pe_overhead' must give a fraction for "
                             f"each of {SPARSITY_MODES}")
        eff = number("sram_array_efficiency", data["sram_array_efficiency"])
        if eff > 1:
            raise ValueError(f"{origin}: field 'sram_array_efficiency' must be <= 1, got {eff}")
        return cls(
            mac_um2={number(f"mac_um2.{k}", k): number(f"mac_um2.{k}", v)
                     for k, v in mac.items()},
            pe_register_words=number("pe_register_words", data["pe_register_words"], False),
            register_um2_per_bit=number("register_um2_per_bit", data["register_um2_per_bit"],
                                        False),
            sparse_pe_overhead={k: number(f"sparse_pe_overhead.{k}", v, False)
                                for k, v in over.items()},
            sram_bitcell_um2=number("sram_bitcell_um2", data["sram_bitcell_um2"]),
            sram_array_efficiency=eff, source=str(data.get("source", origin)))

    def pe_um2(self, word_bits: int, sparsity: str) -> float:
        """One PE: MAC, registers and sparse-mode logic, um^2."""
        base = (_loglog(self.mac_um2, word_bits)
                + self.pe_register_words * word_bits * self.register_um2_per_bit)
        return base * (1 + self.sparse_pe_overhead[sparsity])

    def sram_um2_per_kb(self) -> float:
        """One KB of SRAM macro, um^2."""
        return 8192 * self.sram_bitcell_um2 / self.sram_array_efficiency


_DEFAULT: AreaTable | None = None


def default_area_table() -> AreaTable:
    """The 45 nm table shipped with the package (read once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = AreaTable.from_yaml(DEFAULT_AREA_PATH)
    return _DEFAULT


def resolve_area_table(table: AreaTable | str | Path | dict | None) -> AreaTable:
    """A table from an ``AreaTable``, a YAML path, a dict, or ``None`` (the default)."""
    if table is None:
        return default_area_table()
    if isinstance(table, AreaTable):
        return table
    if isinstance(table, (str, Path)):
        return AreaTable.from_yaml(table)
    if isinstance(table, dict):
        return AreaTable.from_dict(table)
    raise TypeError(f"area_table must be an AreaTable, a YAML path or a dict, "
                    f"got {type(table).__name__}")


def estimate_area(arch: Arch, table: AreaTable | str | Path | dict | None = None
                  ) -> dict[str, float]:
    """Area of ``arch`` in mm^2: ``{"pe", "sram", "total"}`` (see the module docstring)."""
    if not isinstance(arch, Arch):
        raise TypeError(f"arch must be a simulator.Arch, got {type(arch).__name__}")
    t = resolve_area_table(table)
    pe = arch.pes * t.pe_um2(arch.word_bits, arch.sparsity) / 1e6
    kb = arch.ifmap_sram_kb + arch.filter_sram_kb + arch.ofmap_sram_kb
    sram = kb * t.sram_um2_per_kb() / 1e6
    return {"pe": pe, "sram": sram, "total": pe + sram}
