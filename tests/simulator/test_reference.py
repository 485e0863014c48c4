"""The fast engine gives the same totals as the cycle-stepping reference engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparse_accel_sim as sim


@st.composite
def cases(draw):
    mode = draw(st.sampled_from(["dense", "nm", "block", "unstructured"]))
    K = draw(st.integers(1, 14))
    N = draw(st.integers(1, 14))
    n = draw(st.integers(1, 3))
    m = draw(st.integers(n, 6))
    arch = sim.Arch(
        rows=draw(st.integers(1, 5)), cols=draw(st.integers(1, 5)),
        dataflow=draw(st.sampled_from(["os", "ws", "is"])), sparsity=mode, nm=(n, m),
        block=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        balance=draw(st.booleans()), layout=draw(st.sampled_from(["csr", "bitmap"])),
        dram_words_per_cycle=draw(st.sampled_from([None, 0.25, 1, 3, 16])),
        dram_latency=draw(st.integers(0, 12)),
        ifmap_sram_kb=draw(st.sampled_from([0.03, 0.25, 4])),
        filter_sram_kb=draw(st.sampled_from([0.03, 0.25, 4])),
        ofmap_sram_kb=draw(st.sampled_from([0.03, 0.25, 4])),
        word_bytes=draw(st.sampled_from([1, 2])))
    seed = draw(st.integers(0, 1000))
    source = draw(st.sampled_from(["none", "pattern"]))
    weight = None
    if source == "pattern":
        if mode == "nm":
            weight = sim.synthetic_weight(K, N, kind="nm", nm=(n, m), seed=seed)
        else:
            kind = draw(st.sampled_from(["uniform", "powerlaw", "block"]))
            density = draw(st.floats(0.05, 1.0))
            weight = sim.synthetic_weight(K, N, density, kind, seed=seed, block=(2, 2))
    return arch, draw(st.integers(1, 14)), K, N, weight


@given(cases())
@settings(max_examples=120, deadline=None)
def test_fast_equals_reference(case):
    arch, M, K, N, weight = case
    fast = sim.simulate_gemm(arch, M, K, N, weight)
    ref = sim.simulate_gemm(arch, M, K, N, weight, engine="reference")
    assert fast.totals() == ref.totals()
    assert fast.mapping_efficiency == pytest.approx(ref.mapping_efficiency, rel=1e-12)
    assert fast.stall_breakdown == ref.stall_breakdown
    assert fast.energy_pj["total"] == pytest.approx(ref.energy_pj["total"], rel=1e-12)
    assert 0 <= fast.utilization <= 1


def test_trace_columns_and_totals():
    arch = sim.Arch(rows=4, cols=3, dataflow="ws", dram_words_per_cycle=2, dram_latency=5)
    r = sim.simulate_gemm(arch, 9, 7, 5, trace=True)
    tr = r.trace
    assert set(tr) >= {"cycle", "fold", "active_pes", "useful_pes", "ifmap_buffer_words",
                       "filter_buffer_words", "ofmap_buffer_words", "dram_busy"}
    assert len(tr["cycle"]) == r.elapsed_cycles
    assert tr["active_pes"].sum() == r.performed_macs == 9 * 7 * 5
    assert tr["active_pes"].max() <= arch.pes
    assert (tr["fold"] >= 0).sum() == r.compute_cycles + 1
    assert r.engine == "reference"


def test_trace_shows_unstructured_imbalance():
    w = np.zeros((8, 4))
    w[:, 0] = 1  # one busy lane, three idle ones
    w[0, 1:] = 1
    arch = sim.Arch(rows=2, cols=4, sparsity="unstructured")
    r = sim.simulate_gemm(arch, 2, 8, 4, weight=w, trace=True)
    # the fold lasts as long as the busy lane: late cycles have a single PE column at work
    active = r.trace["active_pes"]
    busy = active[active > 0]
    assert busy.max() <= arch.pes
    assert (busy[-4:] <= 2).all()  # only the busy lane (2 PE rows) is still working
    assert r.useful_macs == r.performed_macs == 2 * int(w.astype(bool).sum())


def test_trace_csv(tmp_path):
    r = sim.simulate_gemm(sim.Arch(rows=2, cols=2), 3, 3, 3, trace=True)
    path = tmp_path / "trace.csv"
    r.write_trace_csv(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("cycle,fold,active_pes")
    assert len(lines) == r.elapsed_cycles + 1
    with pytest.raises(ValueError, match="trace=True"):
        sim.simulate_gemm(sim.Arch(rows=2, cols=2), 3, 3, 3).write_trace_csv(path)
