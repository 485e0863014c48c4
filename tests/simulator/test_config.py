"""SCALE-Sim configuration files."""

from __future__ import annotations

import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.config import load_scalesim_config

SCALESIM_CFG = """[general]
run_name = scale_example_run_32x32_ws

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     16
IfmapSramSzkB:   64
FilterSramSzkB:  32
OfmapSramSzkB:   16
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : ws
MemoryBanks:   1
ReadRequestBuffer: 512
WriteRequestBuffer: 512

[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""


def write(tmp_path, text, name="x.cfg"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_scalesim_config(tmp_path):
    a = sim.load_scalesim_config(write(tmp_path, SCALESIM_CFG.format(mode="CALC")))
    assert (a.rows, a.cols, a.dataflow) == (32, 16, "ws")
    assert (a.ifmap_sram_kb, a.filter_sram_kb, a.ofmap_sram_kb) == (64, 32, 16)
    assert a.dram_words_per_cycle is None and a.name == "scale_example_run_32x32_ws"
    u = load_scalesim_config(write(tmp_path, SCALESIM_CFG.format(mode="USER")))
    assert u.dram_words_per_cycle == 10
    o = load_scalesim_config(write(tmp_path, SCALESIM_CFG.format(mode="CALC")), rows=8)
    assert o.rows == 8


def test_own_section_and_sparsity(tmp_path):
    text = SCALESIM_CFG.format(mode="CALC") + (
        "\n[sparsity]\nSparsitySupport : true\n\n[sparse_ops]\nNM = 1:4\nBlock = 8x4\n"
        "Balance = true\nWordBytes = 2\nDramLatency = 20\n")
    a = load_scalesim_config(write(tmp_path, text))
    assert (a.sparsity, a.nm, a.block, a.balance, a.word_bytes, a.dram_latency) == \
        ("nm", (1, 4), (8, 4), True, 2, 20)


@pytest.mark.parametrize("old,new,line,field", [
    ("ArrayHeight:    32", "ArrayHeight:    abc", 5, "ArrayHeight"),
    ("ArrayWidth:     16", "ArrayWidth:     0", 6, "ArrayWidth"),
    ("OfmapSramSzkB:   16", "OfmapSramSzkB:   -4", 9, "OfmapSramSzkB"),
    ("Dataflow : ws", "Dataflow : rs", 14, "Dataflow"),
    ("InterfaceBandwidth: CALC", "InterfaceBandwidth: FAST", 20, "InterfaceBandwidth"),
])
def test_errors_name_file_line_field(tmp_path, old, new, line, field):
    text = SCALESIM_CFG.format(mode="CALC").replace(old, new)
    p = write(tmp_path, text, "bad.cfg")
    with pytest.raises(ValueError) as info:
        load_scalesim_config(p)
    msg = str(info.value)
    assert f"bad.cfg:{line}" in msg and field in msg


def test_missing_field_and_garbage(tmp_path):
    text = SCALESIM_CFG.format(mode="CALC").replace("ArrayWidth:     16\n", "")
    with pytest.raises(ValueError, match=r"missing.*ArrayWidth.*architecture_presets"):
        load_scalesim_config(write(tmp_path, text))
    with pytest.raises(ValueError, match=r"g.cfg:2: expected 'key : value'"):
        load_scalesim_config(write(tmp_path, "[general]\nthis is not a field\n", "g.cfg"))
    with pytest.raises(ValueError, match=r"h.cfg:1: malformed section"):
        load_scalesim_config(write(tmp_path, "[general\n", "h.cfg"))
    with pytest.raises(FileNotFoundError):
        load_scalesim_config(tmp_path / "nope.cfg")
