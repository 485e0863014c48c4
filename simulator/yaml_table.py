"""Reading the simulator's swappable YAML tables (energy, area): a mapping, or a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The YAML mapping in ``path``; ValueError naming the file if it is not valid YAML or
    not a mapping (``what`` names the expected fields, e.g. "energy fields")."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {what}, got {type(data).__name__}")
    return data
