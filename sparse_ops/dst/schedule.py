"""When the structure is updated, and what fraction of each layer is dropped then.

RigL's schedule (Evci et al. 2020): updates every ``update_every`` steps until ``stop_at``,
after which the mask is frozen; the drop fraction at step ``t`` is constant ``α`` or cosine
``α/2 · (1 + cos(π t / T_end))`` with ``T_end`` = ``stop_at`` (or ``total_steps``). A layer
with ``nnz`` stored units swaps ``k = round(f_t · nnz)`` of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "cosine")


def _check_int(name: str, v: object, low: int) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if v < low:
        raise ValueError(f"{name}: must be >= {low}, got {v}")
    return int(v)


@dataclass(frozen=True)
class DropSchedule:
    """Update times and drop fractions. ``step`` counts completed ``dst.step()`` calls."""

    drop_fraction: float = 0.3
    update_every: int = 100
    schedule: str = "cosine"
    stop_at: int | None = None
    total_steps: int | None = None

    def __post_init__(self) -> None:
        f = self.drop_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)):
            raise TypeError(f"drop_fraction: expected a float in [0, 1), got {type(f).__name__}")
        if not 0.0 <= float(f) < 1.0 or math.isnan(float(f)):
            raise ValueError(f"drop_fraction: must lie in [0, 1), got {f}")
        _check_int("update_every", self.update_every, 1)
        _check_int("stop_at", self.stop_at, 0)
        _check_int("total_steps", self.total_steps, 1)
        if not isinstance(self.schedule, str) or self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "cosine" and self.t_end is None:
            raise ValueError(
                "schedule: 'cosine' decays to 0 at T_end; give stop_at= or total_steps="
            )

    @property
    def t_end(self) -> int | None:
        return self.stop_at if self.stop_at is not None else self.total_steps

    def is_update(self, step: int) -> bool:
        """Whether the ``step``-th ``dst.step()`` call (1-based) rewrites the structure."""
        if step <= 0 or step % self.update_every:
            return False
        return self.stop_at is None or step <= self.stop_at

    def next_update(self, step: int) -> int | None:
        """The first update step ``>= step``, or None when the mask is frozen by then."""
        t = max(step, 1)
        nxt = -(-t // self.update_every) * self.update_every
        if self.stop_at is not None and nxt > self.stop_at:
            return None
        return nxt

    def fraction(self, step: int) -> float:
        """The drop fraction ``f_t`` at ``step``."""
        a = float(self.drop_fraction)
        if self.schedule == "constant":
            return a
        t_end = self.t_end
        assert t_end is not None
        if step >= t_end:
            return 0.0
        return a / 2.0 * (1.0 + math.cos(math.pi * step / t_end))

    def count(self, step: int, nnz: int) -> int:
        """``k = round(f_t · nnz)``: the units each layer swaps at ``step``."""
        return int(round(self.fraction(step) * nnz))
