"""SCALE-Sim topology files and the bundled layer lists."""

from __future__ import annotations

import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.topology import bundled_topology


def test_conv_topology(tmp_path):
    p = tmp_path / "net.csv"
    p.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                 "Num Filter, Strides,\nConv1,224,224,7,7,3,64,2,\n\nCB2a_1,56,56,1,1,64,64,1,"
                 "2:4,\n,,,,,,,,\n")
    layers = sim.load_topology(p)
    assert [(x.name, x.M, x.K, x.N) for x in layers] == [
        ("Conv1", 110 * 110, 7 * 7 * 3, 64), ("CB2a_1", 56 * 56, 64, 64)]  # SCALE-Sim: ceil
    assert layers[1].nm == (2, 4) and layers[0].nm is None
    assert layers[0].conv.stride_h == 2


def test_gemm_topology(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("Layer Name, M, N, K,\nTest 1, 256, 128, 512,\nT2, 3, 5, 16, 3:4,\n")
    layers = sim.load_topology(p)
    assert [(x.name, x.M, x.K, x.N) for x in layers] == [("Test 1", 256, 512, 128),
                                                          ("T2", 3, 16, 5)]
    assert layers[1].nm == (3, 4)


@pytest.mark.parametrize("body,line,field", [
    ("L1, 56, 56, 1, 1, 64, 64, 1,\nL2, 56, x, 3, 3, 64, 64, 1,", 3, "IFMAP Width"),
    ("L1, 56, 56, 1, 1, 64, 0, 1,", 2, "Num Filter"),
    ("L1, 56, 56, 1, 1, 64,", 2, "Num Filter"),
    ("L1, 5, 5, 7, 7, 3, 8, 1,", 2, "filter_h"),
    ("L1, 56, 56, 1, 1, 64, 64, 1, 5:4,", 2, "Sparsity"),
])
def test_errors_name_file_line_field(tmp_path, body, line, field):
    p = tmp_path / "bad.csv"
    p.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                 "Channels, Num Filter, Strides,\n" + body + "\n")
    with pytest.raises(ValueError) as info:
        sim.load_topology(p)
    assert f"bad.csv:{line}" in str(info.value) and field in str(info.value)


def test_empty_and_missing(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(ValueError, match="e.csv: empty"):
        sim.load_topology(p)
    p.write_text("Layer Name, M, N, K,\n")
    with pytest.raises(ValueError, match="e.csv:1: no layers"):
        sim.load_topology(p)
    with pytest.raises(FileNotFoundError):
        sim.load_topology(tmp_path / "none.csv")


def test_bundled_topologies():
    resnet = sim.load_topology(bundled_topology("resnet50"))
    assert len(resnet) == 54
    assert sum(x.macs for x in resnet) == pytest.approx(4.09e9, rel=0.01)
    bert = sim.load_topology(bundled_topology("bert_base"))
    assert len(bert) == 12 * 30
    assert bert[0].M == 512 and bert[0].K == 768
    with pytest.raises(ValueError, match="known"):
        bundled_topology("vgg")


def test_topology_nm_used_by_nm_array():
    layers = [sim.Layer("a", 16, 64, 16, nm=(1, 4)), sim.Layer("b", 16, 64, 16)]
    rs = sim.simulate_layers(sim.Arch(rows=8, cols=8, sparsity="nm"), layers)
    assert rs[0].useful_macs == 16 * 16 * 16 and rs[1].useful_macs == 16 * 32 * 16
