"""Writing a layer list for other simulators: a SCALE-Sim v3 topology CSV, a ZigZag workload.

- ``write_scalesim_topology(layers, path, kind="auto")``: SCALE-Sim's CSV, one layer a line.
  ``"gemm"``: ``Layer name, M, N, K`` (inputs ``M x K``, weights ``K x N``); ``"conv"``:
  ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
  Strides`` (every layer a convolution with equal strides); ``"auto"``: conv when that fits,
  else gemm (a convolution is then its im2col GEMM). When some layer has an N:M pattern
  (``Layer.nm``) a ``Sparsity`` column follows, ``n:m`` on those lines and empty on the
  others (dense, or unstructured: SCALE-Sim v3 has no field for a density). The file reads
  back through ``load_topology`` to the same layers.
- ``write_zigzag_workload(layers, path, ...)``: ZigZag's workload YAML (a list of layers with
  ``id``, ``name``, ``operator_type`` ``Gemm`` or ``Conv``, ``equation``, ``loop_dims``,
  ``loop_sizes``, ``operand_precision``, ``operand_source``). ZigZag's workload has no
  sparsity field: each layer's density, layout and N:M ratio are written as a comment on its
  ``id`` line. Every layer takes its input from outside (``operand_source`` of ``I`` and
  ``W`` is the layer itself), so each is evaluated on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from .workload import Layer

KINDS = ("auto", "gemm", "conv")


def _csv_name(name: str) -> str:
    return name.replace(",", "_").replace("\n", " ").strip() or "layer"


def _as_conv(layer: Layer) -> bool:
    c = layer.conv
    return c is not None and c.stride_h == c.stride_w and (layer.M, layer.K, layer.N) == c.gemm()


def write_scalesim_topology(layers: list[Layer], path: str | Path, kind: str = "auto") -> Path:
    """Write ``layers`` as a SCALE-Sim v3 topology CSV at ``path`` (see the module doc).

    Raises ``ValueError`` for an unknown ``kind``, an empty list, or ``kind="conv"`` with a
    layer that is not a convolution with equal strides.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    layers = list(layers)
    if not layers:
        raise ValueError("layers: nothing to write")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"layers[{i}] must be a simulator.Layer, got {type(layer).__name__}")
    all_conv = all(_as_conv(layer) for layer in layers)
    if kind == "conv" and not all_conv:
        bad = next(layer.name for layer in layers if not _as_conv(layer))
        raise ValueError(f"kind='conv': layer {bad!r} is not a convolution with equal strides")
    conv = kind == "conv" or (kind == "auto" and all_conv)
    sparse = any(layer.nm is not None for layer in layers)
    head = (["Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
             "Channels", "Num Filter", "Strides"] if conv else ["Layer name", "M", "N", "K"])
    if sparse:
        head.append("Sparsity")
    lines = [", ".join(head) + ","]
    for layer in layers:
        if conv:
            c = layer.conv
            assert c is not None
            cells = [c.ifmap_h, c.ifmap_w, c.filter_h, c.filter_w, c.channels, c.num_filters,
                     c.stride_h]
        else:
            cells = [layer.M, layer.N, layer.K]
        row = [_csv_name(layer.name), *(str(v) for v in cells)]
        if sparse:
            row.append(f"{layer.nm[0]}:{layer.nm[1]}" if layer.nm else "")
        lines.append(", ".join(row) + ",")
    out = Path(path)
    out.write_text("\n".join(lines) + "\n")
    return out


def write_zigzag_workload(layers: list[Layer], path: str | Path, *,
                          densities: dict[str, float] | None = None,
                          layouts: dict[str, str] | None = None, precision: int = 8) -> Path:
    """Write ``layers`` as a ZigZag workload YAML at ``path`` (see the module doc).

    ``precision``: bits of weights and inputs (outputs ``2 * precision`` before the final
    ``precision``). ``densities`` / ``layouts``: per layer name, for the comments.
    """
    if isinstance(precision, bool) or not isinstance(precision, int) or precision < 1:
        raise ValueError(f"precision must be a positive integer (bits), got {precision!r}")
    layers = list(layers)
    if not layers:
        raise ValueError("layers: nothing to write")
    densities = densities or {}
    layouts = layouts or {}
    lines = ["# ZigZag workload written by simulator.workload_export (sparse-ops).",
             "# Weight sparsity is in the comments: ZigZag's workload has no field for it.", ""]
    for i, layer in enumerate(layers):
        notes = []
        if layer.name in densities:
            notes.append(f"density {densities[layer.name]:.4f}")
        if layer.name in layouts:
            notes.append(f"layout {layouts[layer.name]}")
        if layer.nm:
            notes.append(f"nm {layer.nm[0]}:{layer.nm[1]}")
        comment = f"  # {', '.join(notes)}" if notes else ""
        lines.append(f"- id: {i}{comment}")
        lines.append(f"  name: {json.dumps(layer.name)}")
        c = layer.conv
        if c is not None and (layer.M, layer.K, layer.N) == c.gemm():
            lines += [
                "  operator_type: Conv",
                "  equation: O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
                f"  dimension_relations: [ix={c.stride_w}*ox+1*fx, iy={c.stride_h}*oy+1*fy]",
                "  loop_dims: [B, K, C, OY, OX, FY, FX]",
                f"  loop_sizes: [1, {c.num_filters}, {c.channels}, {c.ofmap_h}, {c.ofmap_w}, "
                f"{c.filter_h}, {c.filter_w}]",
            ]
        else:
            lines += [
                "  operator_type: Gemm",
                "  equation: O[d][k]+=I[d][c]*W[c][k]",
                "  dimension_relations: []",
                "  loop_dims: [D, C, K]",
                f"  loop_sizes: [{layer.M}, {layer.K}, {layer.N}]",
            ]
        lines += [
            "  operand_precision:",
            f"    W: {precision}",
            f"    I: {precision}",
            f"    O: {2 * precision}",
            f"    O_final: {precision}",
            "  operand_source:",
            f"    W: {i}",
            f"    I: {i}",
            "",
        ]
    out = Path(path)
    out.write_text("\n".join(lines))
    return out
