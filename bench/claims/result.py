"""What every claim experiment hands to the report: a verdict, its rule, and the raw cells."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("holds", "partly holds", "does not hold", "not tested")


@dataclass(frozen=True)
class Verdict:
    """A verdict computed from numbers, with the rule and the numbers it used."""

    verdict: str
    rule: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")


@dataclass
class ClaimResult:
    """One row of the claims table.

    ``measured`` and ``simulated`` are short texts with the key figures; ``figures`` holds the
    same numbers (and more) for the JSON; ``plots`` are PNG file names written by the report.
    """

    number: int
    claim: str
    source: str
    measured: str
    simulated: str
    verdict: Verdict
    figures: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)


@dataclass
class Cell:
    """One measured (and simulated) workload; times in seconds, bytes in bytes.

    ``speedup`` is ``dense_s / sparse_s`` (> 1: sparse faster); ``sim_speedup`` the same ratio
    of simulated total cycles on the preset. ``product`` is ``spmm``, ``spmm_t`` or ``sddmm``.
    """

    experiment: str
    fmt: str
    layout: str
    block: int
    density: float
    batch: int
    rows: int
    cols: int
    product: str = "spmm"
    pattern: str = "magnitude"
    dense_s: float | None = None
    sparse_s: float | None = None
    speedup: float | None = None
    sim_dense_cycles: float | None = None
    sim_sparse_cycles: float | None = None
    sim_speedup: float | None = None
    sim_utilization: float | None = None
    sparse_bytes: int | None = None
    dense_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
