"""Reading SCALE-Sim topology CSV files into a list of ``Layer``.

Two formats, as in SCALE-Sim (one header line, then one layer per line, trailing commas and
blank lines allowed):

* convolutions: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
  Channels, Num Filter, Strides[, Sparsity]``
* GEMMs: ``Layer name, M, N, K[, Sparsity]`` (inputs M x K, weights K x N).

``Sparsity`` is SCALE-Sim v3's ``n:m`` weight ratio. SCALE-Sim has no padding field: give the
padded input size. Errors are ``ValueError`` naming the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError
from .workload import ConvShape, Layer

CONV_FIELDS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
               "Channels", "Num Filter", "Strides")
GEMM_FIELDS = ("Layer name", "M", "N", "K")


def _detect(header: list[str], first: list[str] | None) -> str:
    h = [x.strip().lower() for x in header]
    if any("ifmap" in x or "filter" in x for x in h):
        return "conv"
    if len(h) >= 4 and h[1:4] == ["m", "n", "k"]:
        return "gemm"
    if first is not None:
        numeric = [x for x in first[1:] if x.strip()]
        return "gemm" if len(numeric) <= 4 and ":" not in "".join(numeric[:3]) else "conv"
    return "conv"


def load_topology(path: str | Path, kind: str = "auto") -> list[Layer]:
    """Layers of a SCALE-Sim topology file.

    Args:
        path: the CSV file.
        kind: ``"conv"``, ``"gemm"`` or ``"auto"`` (from the header).
    """
    path = Path(path)
    if kind not in ("auto", "conv", "gemm"):
        raise ValueError(f"kind must be 'auto', 'conv' or 'gemm', got {kind!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such topology file")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file") from exc
    rows = [(i, [c.strip() for c in line.split(",")]) for i, line in enumerate(lines, 1)]
    rows = [(i, cells) for i, cells in rows if any(cells)]
    if not rows:
        raise ConfigError(f"{path}: empty topology file (expected a header line and layers)")
    header_line, header = rows[0]
    body = rows[1:]
    if kind == "auto":
        kind = _detect(header, body[0][1] if body else None)
    names = CONV_FIELDS if kind == "conv" else GEMM_FIELDS
    layers: list[Layer] = []
    for lineno, cells in body:
        while cells and cells[-1] == "":
            cells = cells[:-1]
        if len(cells) < len(names):
            missing = names[len(cells)]
            raise ConfigError(f"{path}:{lineno}: field {missing!r} is missing (expected "
                              f"{len(names)} fields: {', '.join(names)})")
        name = cells[0] or f"layer{len(layers)}"
        values = []
        for field, cell in zip(names[1:], cells[1:len(names)], strict=True):
            try:
                v = int(cell)
            except ValueError:
                raise ConfigError(f"{path}:{lineno}: field {field!r}: expected a positive "
                                  f"integer, got {cell!r}") from None
            if v < 1:
                raise ConfigError(f"{path}:{lineno}: field {field!r}: must be >= 1, got {v}")
            values.append(v)
        nm = None
        extra = cells[len(names)] if len(cells) > len(names) else ""
        if ":" in extra:
            try:
                n, m = (int(x) for x in extra.split(":"))
                if not 1 <= n <= m:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{path}:{lineno}: field 'Sparsity': expected n:m with "
                                  f"1 <= n <= m, got {extra!r}") from None
            nm = (n, m)
        try:
            if kind == "conv":
                h, w, fh, fw, ch, nf, stride = values
                conv = ConvShape(h, w, fh, fw, ch, nf, stride, stride)
                layers.append(Layer.from_conv(name, conv, nm=nm))
            else:
                M, N, K = values
                layers.append(Layer(name, M, K, N, nm=nm))
        except ValueError as exc:
            raise ConfigError(f"{path}:{lineno}: {exc}") from None
    if not layers:
        raise ConfigError(f"{path}:{header_line}: no layers after the header line")
    return layers


def bundled_topology(name: str) -> Path:
    """Path of a topology shipped in ``simulator/topologies`` (e.g. ``"resnet50"``)."""
    base = Path(__file__).resolve().parent / "topologies"
    path = base / (name if name.endswith(".csv") else f"{name}.csv")
    if not path.is_file():
        known = sorted(p.stem for p in base.glob("*.csv"))
        raise ValueError(f"no bundled topology {name!r}; known: {', '.join(known)}")
    return path
