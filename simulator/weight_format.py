"""Deprecated: the former name of ``simulator.layout`` (``Arch.weight_format`` is now
``Arch.layout``). Importing it warns; it only re-exports ``layout``'s names under their old
names, so code written against them keeps working."""

from __future__ import annotations

import warnings

from .layout import (
    DEFAULT_LAYOUT,
    LAYOUTS,
    bitmap_words,
    break_even_density,
    check_layout,
    csr_words,
    dense_break_even_density,
    metadata_words,
)

warnings.warn("sparse_accel_sim.weight_format is deprecated: use sparse_accel_sim.layout "
              "(Arch.layout)",
              DeprecationWarning, stacklevel=2)

WEIGHT_FORMATS = LAYOUTS
DEFAULT_WEIGHT_FORMAT = DEFAULT_LAYOUT

__all__ = ["DEFAULT_WEIGHT_FORMAT", "WEIGHT_FORMATS", "bitmap_words", "break_even_density",
           "check_weight_format", "csr_words", "dense_break_even_density", "metadata_words"]


def check_weight_format(value: object) -> str:
    """``layout.check_layout`` under its former name."""
    return check_layout(value, "Arch.weight_format")
