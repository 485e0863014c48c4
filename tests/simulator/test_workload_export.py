"""SCALE-Sim v3 topology CSV and ZigZag workload YAML: written, read back (load_topology,
YAML + ZigZag's own validation patterns), with the N:M Sparsity column."""

from __future__ import annotations

import re

import pytest
import yaml

import sparse_accel_sim as sim

# ZigZag's WorkloadValidator: the equation and dimension-relation patterns it checks
ZIGZAG_EQUATION = r"^O(\[\w+\])+\+?=\w(\[\w+\])+[*+]\w(\[(?:\w+)?\])+$"
ZIGZAG_RELATION = r"^(\w+)\s*=\s*(?:(\w+)\s*\*\s*)?(\w+)\s*\+\s*(?:(\w+)\s*\*\s*)?(\w+)$"
ZIGZAG_OPERATORS = {"Conv", "Gemm"}


def gemm_layers() -> list[sim.Layer]:
    return [sim.Layer("q,proj", 7, 64, 48, nm=(2, 4)), sim.Layer("dense", 1, 33, 17),
            sim.Layer("down", 5, 128, 64, nm=(1, 8))]


def conv_layers() -> list[sim.Layer]:
    return [sim.Layer.from_conv("c1", sim.ConvShape(17, 19, 3, 3, 3, 8, 2, 2)),
            sim.Layer.from_conv("c2", sim.ConvShape(9, 10, 1, 1, 8, 16), nm=(2, 4))]


def test_gemm_csv_round_trips_with_sparsity_column(tmp_path):
    path = sim.write_scalesim_topology(gemm_layers(), tmp_path / "g.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "Layer name, M, N, K, Sparsity,"
    assert lines[1] == "q_proj, 7, 48, 64, 2:4,"  # SCALE-Sim's M, N, K order
    assert lines[2] == "dense, 1, 17, 33, ,"
    back = sim.load_topology(path)
    assert [(b.M, b.K, b.N, b.nm) for b in back] == [(a.M, a.K, a.N, a.nm) for a in gemm_layers()]
    dense = [sim.Layer("a", 2, 3, 4)]
    text = sim.write_scalesim_topology(dense, tmp_path / "d.csv").read_text()
    assert text.splitlines()[0] == "Layer name, M, N, K,"  # no Sparsity column when all dense


def test_conv_csv_round_trips(tmp_path):
    path = sim.write_scalesim_topology(conv_layers(), tmp_path / "c.csv")
    assert path.read_text().splitlines()[0].startswith("Layer name, IFMAP Height")
    back = sim.load_topology(path)
    assert back == conv_layers()
    mixed = conv_layers() + gemm_layers()
    path = sim.write_scalesim_topology(mixed, tmp_path / "m.csv")  # auto: GEMM lines
    assert [(b.M, b.K, b.N, b.nm) for b in sim.load_topology(path)] == \
        [(a.M, a.K, a.N, a.nm) for a in mixed]
    with pytest.raises(ValueError, match="'q,proj' is not a convolution"):
        sim.write_scalesim_topology(mixed, tmp_path / "x.csv", kind="conv")
    with pytest.raises(ValueError, match="kind"):
        sim.write_scalesim_topology(mixed, tmp_path / "x.csv", kind="onnx")
    with pytest.raises(ValueError, match="nothing"):
        sim.write_scalesim_topology([], tmp_path / "x.csv")


def test_zigzag_yaml_has_zigzags_fields_and_the_sparsity_comments(tmp_path):
    layers = conv_layers() + gemm_layers()
    dens = {"c2": 0.5, "q,proj": 0.5, "dense": 1.0}
    path = sim.write_zigzag_workload(layers, tmp_path / "w.yaml", densities=dens,
                                     layouts={"q,proj": "nm"}, precision=16)
    text = path.read_text()
    data = yaml.safe_load(text)
    assert [d["id"] for d in data] == list(range(5))
    assert [d["name"] for d in data] == [layer.name for layer in layers]
    for d, layer in zip(data, layers, strict=True):
        assert d["operator_type"] in ZIGZAG_OPERATORS
        assert re.match(ZIGZAG_EQUATION, d["equation"])
        assert all(re.match(ZIGZAG_RELATION, r) for r in d["dimension_relations"])
        assert len(d["loop_dims"]) == len(d["loop_sizes"])
        assert d["operand_precision"] == {"W": 16, "I": 16, "O": 32, "O_final": 16}
        assert d["operand_source"] == {"W": d["id"], "I": d["id"]}
        sizes = dict(zip(d["loop_dims"], d["loop_sizes"], strict=True))
        if d["operator_type"] == "Gemm":
            assert (sizes["D"], sizes["C"], sizes["K"]) == (layer.M, layer.K, layer.N)
        else:
            c = layer.conv
            assert sizes["OY"] * sizes["OX"] == layer.M
            assert sizes["C"] * sizes["FY"] * sizes["FX"] == layer.K and sizes["K"] == layer.N
            assert d["dimension_relations"] == [f"ix={c.stride_w}*ox+1*fx",
                                                f"iy={c.stride_h}*oy+1*fy"]
    assert "- id: 2  # density 0.5000, layout nm, nm 2:4" in text
    assert "- id: 3  # density 1.0000" in text
    with pytest.raises(ValueError, match="precision"):
        sim.write_zigzag_workload(layers, tmp_path / "w.yaml", precision=0)
