"""The energy pass and its replaceable table."""

from __future__ import annotations

import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.energy import DEFAULT_TABLE_PATH, EnergyTable, default_table


def test_default_table_ships_with_package():
    assert DEFAULT_TABLE_PATH.name == "energy_45nm.yaml" and DEFAULT_TABLE_PATH.is_file()
    t = default_table()
    assert "Horowitz" in t.source
    assert t.mac(8) == pytest.approx(0.23) and t.mac(32) == pytest.approx(4.6)
    assert t.sram_word(32, 64) == pytest.approx(20.0)
    assert 10 < t.sram_word(16, 64) < 20
    assert t.dram_word(8) == pytest.approx(1950 / 8)


def test_energy_is_counts_times_table():
    arch = sim.Arch(rows=8, cols=8, ifmap_sram_kb=32, filter_sram_kb=32, ofmap_sram_kb=32)
    r = sim.simulate_gemm(arch, 64, 64, 64)
    t = default_table()
    assert r.energy_pj["mac"] == pytest.approx(64 ** 3 * t.mac(8))
    sram = sum(r.sram_reads[o] + r.sram_writes[o] for o in ("ifmap", "filter", "ofmap"))
    assert r.energy_pj["sram"] == pytest.approx(sram * 20.0 / 8)
    dram = sum(r.dram_reads.values()) + sum(r.dram_writes.values())
    assert r.energy_pj["dram"] == pytest.approx(dram * 1950 / 8)


def test_custom_yaml(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("mac_pj: {8: 1.0}\ngated_mac_fraction: 0\nsram_pj_per_64b: {1: 8.0}\n"
                 "dram_pj_per_64b: 64.0\nindex_pj: 0\n")
    r = sim.simulate_gemm(sim.Arch(rows=4, cols=4), 8, 8, 8, energy_table=p)
    assert r.energy_pj["mac"] == 512
    assert r.energy_pj["dram"] == 8 * (sum(r.dram_reads.values()) + sum(r.dram_writes.values()))
    assert EnergyTable.from_yaml(p).dram_word(8) == 8


def test_bad_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("mac_pj: {8: 1.0}\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*missing.*dram_pj_per_64b"):
        EnergyTable.from_yaml(p)
    p.write_text("mac_pj: {8: -1}\ngated_mac_fraction: 0\nsram_pj_per_64b: {1: 8.0}\n"
                 "dram_pj_per_64b: 64.0\nindex_pj: 0\n")
    with pytest.raises(ValueError, match="mac_pj"):
        EnergyTable.from_yaml(p)
    p.write_text("[unclosed")
    with pytest.raises(ValueError, match="bad.yaml"):
        EnergyTable.from_yaml(p)


def test_dram_dominates_batch1_fc_and_sparsity_helps():
    """Claim (d): a batch-1 FC layer's energy is mostly DRAM; N:M cuts it."""
    arch = sim.Arch(rows=32, cols=32, dram_words_per_cycle=16)
    d = sim.simulate_gemm(arch, 1, 4096, 4096)
    s = sim.simulate_gemm(arch.with_(sparsity="nm"), 1, 4096, 4096)
    assert d.energy_pj["dram"] / d.energy_pj["total"] > 0.9
    assert s.energy_pj["total"] < 0.7 * d.energy_pj["total"]
    assert s.energy_pj["metadata"] > 0
