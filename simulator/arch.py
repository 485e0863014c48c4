"""The accelerator description: a rows x cols systolic array, its buffers and its DRAM link.

Units: buffer sizes in KB (1 KB = 1024 bytes), bandwidth in words per cycle, latency in
cycles, one word = ``word_bytes`` bytes. Every field is checked when the object is built, and
an impossible architecture raises ``ValueError`` (bad value) or ``TypeError`` (bad type).
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any

from .layout import DEFAULT_LAYOUT, check_layout

DATAFLOWS = ("os", "ws", "is")
SPARSITY_MODES = ("dense", "nm", "block", "unstructured")
# Former names of Arch fields -> their names now. Wherever a user names a field (the
# constructor, ``with_``, ``from_dict``, sweep grids, space files, the command line) a former
# name still works, with a DeprecationWarning.
FIELD_ALIASES = {"weight_format": "layout"}


def check_arch(arch: Any, name: str = "arch") -> Arch:
    """``arch`` itself if it is an ``Arch``; ``TypeError`` naming ``name`` otherwise."""
    if not isinstance(arch, Arch):
        raise TypeError(f"{name} must be a simulator.Arch, got {type(arch).__name__}")
    return arch


def field_name(name: str, where: str = "Arch", *, stacklevel: int = 3) -> str:
    """The current name of the ``Arch`` field called ``name`` (a former name warns).

    ``where`` says where the name was given (for the warning), e.g. ``"space.yaml:5"``.
    """
    new = FIELD_ALIASES.get(name)
    if new is None:
        return name
    warnings.warn(f"{where}: Arch field {name!r} is deprecated, use {new!r}",
                  DeprecationWarning, stacklevel=stacklevel)
    return new


def current_fields(fields: dict[str, Any], where: str = "Arch", *, stacklevel: int = 3
                   ) -> dict[str, Any]:
    """``fields`` (field name -> value) with former names replaced by current ones, in order.

    Raises:
        TypeError: a field given under both its names.
    """
    if not fields.keys() & FIELD_ALIASES.keys():
        return dict(fields)
    out: dict[str, Any] = {}
    for key, value in fields.items():
        new = field_name(key, where, stacklevel=stacklevel + 1)
        if new in out or (new != key and new in fields):
            raise TypeError(f"{where}: give {new!r} or its former name "
                            f"{_former(new)!r}, not both")
        out[new] = value
    return out


def _former(name: str) -> str:
    return next(old for old, new in FIELD_ALIASES.items() if new == name)


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Arch.{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"Arch.{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(name: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Arch.{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        kind = "> 0" if positive else ">= 0"
        raise ValueError(f"Arch.{name} must be finite and {kind}, got {value}")
    return value


def _check_pair(name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, str) and ":" in value:
        value = tuple(part.strip() for part in value.split(":"))
        try:
            value = tuple(int(v) for v in value)
        except ValueError as exc:
            raise ValueError(f"Arch.{name} must look like 'a:b' with integers") from exc
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"Arch.{name} must be a pair of integers, got {value!r}")
    a = _check_int(f"{name}[0]", value[0])
    b = _check_int(f"{name}[1]", value[1])
    return a, b


@dataclass(frozen=True)
class Arch:
    """A systolic accelerator.

    Attributes:
        rows, cols: PE array height and width (PEs).
        dataflow: ``"os"`` (output stationary), ``"ws"`` (weight stationary) or ``"is"``
            (input stationary), as in SCALE-Sim.
        ifmap_sram_kb, filter_sram_kb, ofmap_sram_kb: on-chip buffer sizes in KB. Each buffer is
            double-buffered: half is used by the running fold, half is filled (or drained) for
            the next one.
        dram_words_per_cycle: DRAM bandwidth shared by all operands, in words per cycle.
            ``None`` means unlimited: operands always arrive in time and nothing stalls.
        sparsity: ``"dense"``, ``"nm"`` (N:M along K), ``"block"`` (all-zero tiles of W are
            skipped) or ``"unstructured"`` (zero skipping per PE lane).
        nm: ``(n, m)``: at most n nonzeros in every group of m consecutive weights along K.
        block: ``(bk, bn)``: the block shape of block sparsity, in weights (K x N).
        balance: for ``"unstructured"``: reorder the weight lanes by nonzero count before they are
            folded onto the array (SparTen-style balancing). Ignored by the other modes.
        word_bytes: bytes per word (every operand, every level). SCALE-Sim uses 1.
        dram_latency: cycles between the last word of a DRAM read and its use.
        clock_ghz: clock used only to turn cycles into seconds (``Result.seconds``).
        name: a label carried into reports.
        layout: for ``"unstructured"``: how weight tiles are stored, ``"csr"`` (an index per
            nonzero plus a pointer per lane, the default) or ``"bitmap"`` (one bit per weight
            position); see ``layout.py``. Ignored by the other modes. Formerly
            ``weight_format``: ``Arch(weight_format=...)``, ``with_(weight_format=...)`` and
            ``arch.weight_format`` still work, with a ``DeprecationWarning``.
    """

    rows: int = 32
    cols: int = 32
    dataflow: str = "os"
    ifmap_sram_kb: float = 64
    filter_sram_kb: float = 64
    ofmap_sram_kb: float = 64
    dram_words_per_cycle: float | None = None
    sparsity: str = "dense"
    nm: tuple[int, int] = (2, 4)
    block: tuple[int, int] = (16, 16)
    balance: bool = False
    word_bytes: int = 1
    dram_latency: int = 100
    clock_ghz: float = 1.0
    name: str = field(default="", compare=False)
    layout: str = DEFAULT_LAYOUT

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "rows", _check_int("rows", self.rows))
        set_(self, "cols", _check_int("cols", self.cols))
        if not isinstance(self.dataflow, str):
            raise TypeError(f"Arch.dataflow must be a string, got {self.dataflow!r}")
        dataflow = self.dataflow.strip().lower()
        if dataflow not in DATAFLOWS:
            raise ValueError(f"Arch.dataflow must be one of {DATAFLOWS}, got {self.dataflow!r}")
        set_(self, "dataflow", dataflow)
        for name in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb"):
            set_(self, name, _check_real(name, getattr(self, name)))
        if self.dram_words_per_cycle is not None:
            set_(self, "dram_words_per_cycle",
                 _check_real("dram_words_per_cycle", self.dram_words_per_cycle))
        if not isinstance(self.sparsity, str):
            raise TypeError(f"Arch.sparsity must be a string, got {self.sparsity!r}")
        sparsity = self.sparsity.strip().lower()
        if sparsity not in SPARSITY_MODES:
            raise ValueError(f"Arch.sparsity must be one of {SPARSITY_MODES}, "
                             f"got {self.sparsity!r}")
        set_(self, "sparsity", sparsity)
        n, m = _check_pair("nm", self.nm)
        if n > m:
            raise ValueError(f"Arch.nm = ({n}, {m}): n must not exceed m")
        set_(self, "nm", (n, m))
        set_(self, "block", _check_pair("block", self.block))
        if not isinstance(self.balance, (bool,)) and not (
                isinstance(self.balance, numbers.Integral) and self.balance in (0, 1)):
            raise TypeError(f"Arch.balance must be a bool, got {self.balance!r}")
        set_(self, "balance", bool(self.balance))
        set_(self, "word_bytes", _check_int("word_bytes", self.word_bytes))
        set_(self, "dram_latency", _check_int("dram_latency", self.dram_latency, minimum=0))
        set_(self, "clock_ghz", _check_real("clock_ghz", self.clock_ghz))
        if not isinstance(self.name, str):
            raise TypeError(f"Arch.name must be a string, got {self.name!r}")
        set_(self, "layout", check_layout(self.layout))

    # Derived quantities -----------------------------------------------------------------

    @property
    def pes(self) -> int:
        """Number of processing elements (MAC units)."""
        return self.rows * self.cols

    @property
    def word_bits(self) -> int:
        return 8 * self.word_bytes

    @property
    def weight_format(self) -> str:
        """Deprecated name of ``layout``."""
        warnings.warn("Arch.weight_format is deprecated, use Arch.layout", DeprecationWarning,
                      stacklevel=2)
        return self.layout

    def sram_words(self, operand: str) -> int:
        """Capacity of one operand buffer in words (both halves together)."""
        kb = {"ifmap": self.ifmap_sram_kb, "filter": self.filter_sram_kb,
              "ofmap": self.ofmap_sram_kb}[operand]
        return int(kb * 1024) // self.word_bytes

    @property
    def bandwidth(self) -> Fraction | None:
        """DRAM words per cycle as an exact fraction (``None`` = unlimited)."""
        if self.dram_words_per_cycle is None:
            return None
        return Fraction(self.dram_words_per_cycle).limit_denominator(1 << 20)

    def with_(self, **changes: Any) -> Arch:
        """A copy with some fields changed (validated again; former names accepted)."""
        return replace(self, **current_fields(changes, "Arch.with_"))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (``nm`` as ``"n:m"``, ``block`` as ``"bkxbn"``)."""
        d = asdict(self)
        d["nm"] = f"{self.nm[0]}:{self.nm[1]}"
        d["block"] = f"{self.block[0]}x{self.block[1]}"
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Arch:
        """The architecture ``to_dict`` gave (missing fields take their defaults).

        Former field names (``weight_format``) are read as the current ones, with a
        ``DeprecationWarning``.

        Raises:
            ValueError: a key that is not an ``Arch`` field, or a bad value.
            TypeError: a value of the wrong type, or a field under both its names.
        """
        unknown = sorted(set(data) - set(cls.__dataclass_fields__) - set(FIELD_ALIASES))
        if unknown:
            raise ValueError(f"not Arch fields: {unknown}")
        fields = current_fields(dict(data), "Arch.from_dict")
        if isinstance(fields.get("block"), str):
            fields["block"] = fields["block"].lower().replace("x", ":")
        return cls(**fields)

    # Presets ----------------------------------------------------------------------------

    @classmethod
    def from_roofline(cls, peak_macs_per_cycle: int, dram_words_per_cycle: float | None,
                      *, dataflow: str = "os", sram_kb: float = 1024, word_bytes: int = 4,
                      clock_ghz: float = 1.0, dram_latency: int = 0, **kwargs: Any) -> Arch:
        """An array whose peak compute and DRAM bandwidth match a measured machine.

        A CPU or GPU measured at ``F`` FLOP/s peak and ``B`` bytes/s DRAM bandwidth, at clock
        ``f`` Hz, is ``from_roofline(peak_macs_per_cycle=F / (2 * f),
        dram_words_per_cycle=B / (word_bytes * f), clock_ghz=f / 1e9)``. The PEs are laid out
        as the most nearly square rows x cols with rows * cols = peak_macs_per_cycle; large
        GEMMs then run at that peak (less systolic fill and drain), and memory-bound ones at
        the bandwidth, as on a roofline. ``sram_kb`` sizes each of the three buffers (use the
        last-level cache divided among them).
        """
        peak = _check_int("peak_macs_per_cycle", peak_macs_per_cycle)
        rows = max(d for d in range(1, math.isqrt(peak) + 1) if peak % d == 0)
        return cls(rows=rows, cols=peak // rows, dataflow=dataflow, ifmap_sram_kb=sram_kb,
                   filter_sram_kb=sram_kb, ofmap_sram_kb=sram_kb,
                   dram_words_per_cycle=dram_words_per_cycle, word_bytes=word_bytes,
                   clock_ghz=clock_ghz, dram_latency=dram_latency, **kwargs)

    @classmethod
    def from_machine(cls, peak_flops: float, dram_bytes_per_s: float, clock_hz: float = 1e9,
                     *, word_bytes: int = 4, **kwargs: Any) -> Arch:
        """``from_roofline`` from raw measurements: peak FLOP/s, DRAM bytes/s, clock in Hz."""
        peak = _check_real("peak_flops", peak_flops)
        bw = _check_real("dram_bytes_per_s", dram_bytes_per_s)
        clock = _check_real("clock_hz", clock_hz)
        macs = max(1, round(peak / (2 * clock)))
        return cls.from_roofline(macs, bw / (word_bytes * clock), word_bytes=word_bytes,
                                 clock_ghz=clock / 1e9, **kwargs)


_dataclass_init = Arch.__init__


@functools.wraps(_dataclass_init)
def _init_accepting_former_names(self: Arch, *args: Any, **kwargs: Any) -> None:
    """The dataclass ``__init__``, with former field names accepted as keywords (warned)."""
    if kwargs.keys() & FIELD_ALIASES.keys():
        if "weight_format" in kwargs:  # name the keyword the caller gave in a bad value's error
            check_layout(kwargs["weight_format"], "Arch.weight_format (now Arch.layout)")
        kwargs = current_fields(kwargs, "Arch")
    _dataclass_init(self, *args, **kwargs)


Arch.__init__ = _init_accepting_former_names  # type: ignore[method-assign]
