"""Dense compute cycles and mapping efficiency against SCALE-Sim v3, and the closed form
against the cycle-stepping reference engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparse_accel_sim as sim
from sparse_accel_sim.folding import build_fold_table, tile_extents

# (rows, cols, dataflow, M, K, N, SCALE-Sim compute cycles, SCALE-Sim mapping efficiency %).
# Recorded with the real SCALE-Sim v3.0.0 (`pip install scalesim` in a scratch venv, numpy<2
# because 3.0.0 breaks on numpy 2), InterfaceBandwidth CALC, 64 KB buffers, custom layouts
# off, sparsity off: a one-layer GEMM topology "L0, M, N, K," run through
# scalesim.single_layer_sim; the figures are COMPUTE_REPORT's "Total Cycles" (what
# SCALE-Sim calls compute cycles) and "Mapping Efficiency %". The later blocks are random
# shapes from the same setup.
SCALESIM_V3 = [
    (32, 32, 'os', 256, 256, 128, 10175, 100.0),
    (32, 32, 'ws', 256, 256, 128, 11199, 100.0),
    (32, 32, 'is', 256, 256, 128, 14207, 100.0),
    (32, 32, 'os', 100, 300, 70, 4343, 56.9661458333),
    (32, 32, 'ws', 100, 300, 70, 5819, 68.359375),
    (32, 32, 'is', 100, 300, 70, 6559, 73.2421875),
    (16, 8, 'os', 64, 33, 200, 5499, 100.0),
    (16, 8, 'ws', 64, 33, 200, 7649, 68.75),
    (16, 8, 'is', 64, 33, 200, 5711, 68.75),
    (8, 16, 'os', 1, 512, 1000, 33641, 12.4007936508),
    (8, 16, 'ws', 1, 512, 1000, 124991, 99.2063492063),
    (8, 16, 'is', 1, 512, 1000, 65919, 6.25),
    (1, 1, 'os', 5, 9, 7, 314, 100.0),
    (1, 1, 'ws', 5, 9, 7, 377, 100.0),
    (1, 1, 'is', 5, 9, 7, 359, 100.0),
    (128, 128, 'os', 300, 100, 500, 4247, 76.2939453125),
    (128, 128, 'ws', 300, 100, 500, 2727, 76.2939453125),
    (128, 128, 'is', 300, 100, 500, 2645, 61.03515625),
    (4, 64, 'os', 77, 129, 13, 3899, 19.55078125),
    (4, 64, 'ws', 77, 129, 13, 4850, 19.8508522727),
    (4, 64, 'is', 77, 129, 13, 5477, 58.7890625),
    (32, 32, 'os', 784, 576, 64, 31899, 98.0),
    (32, 32, 'ws', 784, 576, 64, 31607, 100.0),
    (32, 32, 'is', 784, 576, 64, 71099, 98.0),
    (3, 6, 'os', 17, 32, 8, 467, 62.962962963),
    (16, 8, 'ws', 14, 32, 7, 103, 87.5),
    (8, 4, 'is', 1, 18, 29, 140, 18.75),
    (2, 3, 'os', 2, 35, 2, 37, 66.6666666667),
    (8, 8, 'os', 28, 34, 2, 191, 21.875),
    (16, 4, 'is', 15, 15, 23, 227, 87.890625),
    (16, 3, 'os', 27, 7, 36, 575, 84.375),
    (5, 1, 'is', 22, 28, 33, 5543, 93.3333333333),
    (5, 3, 'is', 32, 26, 33, 2903, 84.0404040404),
    (16, 2, 'is', 26, 12, 27, 766, 75.0),
    (7, 1, 'ws', 33, 11, 7, 643, 78.5714285714),
    (7, 4, 'is', 2, 3, 31, 46, 21.4285714286),
    (8, 8, 'os', 11, 15, 33, 289, 56.71875),
    (4, 6, 'is', 15, 33, 26, 1025, 76.3888888889),
    (7, 4, 'ws', 36, 1, 39, 519, 13.9285714286),
    (3, 6, 'is', 14, 4, 28, 227, 51.8518518519),
    (7, 6, 'is', 13, 27, 33, 611, 69.6428571429),
    (7, 4, 'ws', 1, 35, 35, 764, 97.2222222222),
    (16, 6, 'os', 15, 36, 12, 111, 93.75),
    (2, 16, 'is', 17, 5, 3, 125, 44.2708333333),
    (1, 4, 'os', 18, 18, 16, 1511, 100.0),
    (3, 3, 'ws', 5, 11, 11, 191, 84.0277777778),
    (3, 8, 'ws', 19, 21, 30, 867, 93.75),
    (16, 1, 'os', 20, 22, 25, 1849, 62.5),
    (4, 3, 'os', 17, 14, 33, 1044, 85.0),
    (1, 2, 'os', 26, 3, 10, 519, 100.0),
    (16, 8, 'is', 28, 15, 35, 291, 82.03125),
    (4, 6, 'is', 2, 37, 26, 379, 30.8333333333),
    (8, 1, 'is', 20, 14, 9, 959, 87.5),
    (5, 1, 'os', 20, 11, 20, 1199, 100.0),
    (5, 2, 'os', 36, 38, 3, 687, 67.5),
    (16, 2, 'is', 40, 3, 33, 1299, 18.75),
    (4, 3, 'os', 14, 28, 37, 1715, 83.0128205128),
    (16, 1, 'is', 25, 33, 19, 3749, 68.75),
    (1, 3, 'is', 26, 2, 19, 395, 96.2962962963),
    (4, 16, 'ws', 37, 22, 9, 353, 51.5625),
    (4, 3, 'is', 7, 36, 25, 917, 77.7777777778),
    (16, 16, 'is', 16, 3, 5, 50, 18.75),
    (3, 2, 'os', 35, 18, 14, 1763, 97.2222222222),
    (5, 3, 'ws', 22, 19, 8, 395, 84.4444444444),
    (16, 2, 'is', 36, 21, 7, 1403, 65.625),
    (8, 1, 'ws', 10, 22, 9, 674, 91.6666666667),
    (8, 1, 'is', 36, 37, 15, 5399, 92.5),
    (5, 3, 'ws', 37, 8, 35, 1151, 77.7777777778),
    (5, 1, 'os', 19, 40, 1, 175, 95.0),
    # random shapes on arrays up to 64 x 64 (a second recording run)
    (58, 60, 'ws', 131, 49, 151, 914, 70.8716475096),
    (24, 61, 'is', 158, 25, 48, 929, 44.9681238616),
    (58, 39, 'os', 24, 178, 138, 1091, 36.6047745358),
    (6, 51, 'ws', 168, 158, 190, 24731, 90.8375695957),
    (21, 2, 'is', 17, 10, 16, 521, 44.9735449735),
    (25, 31, 'is', 8, 119, 200, 1394, 24.5677419355),
    (42, 57, 'is', 51, 60, 133, 543, 63.9097744361),
    (38, 64, 'os', 170, 118, 22, 1089, 30.7565789474),
    (36, 53, 'is', 22, 66, 182, 609, 38.0503144654),
    (41, 30, 'is', 74, 18, 8, 353, 36.0975609756),
    (14, 52, 'os', 75, 18, 99, 983, 84.9931318681),
    (3, 1, 'os', 54, 121, 14, 30995, 100.0),
    (49, 51, 'ws', 19, 162, 145, 1991, 78.331332533),
    (26, 35, 'ws', 23, 86, 80, 1295, 63.0036630037),
    (2, 53, 'os', 35, 181, 64, 8423, 58.7002096436),
    (13, 2, 'os', 120, 46, 125, 37169, 91.5750915751),
    (25, 58, 'is', 49, 197, 188, 2351, 83.2155172414),
    (17, 54, 'is', 99, 102, 30, 1391, 91.6666666667),
    (54, 28, 'os', 70, 78, 152, 1895, 58.6419753086),
    (3, 27, 'os', 101, 165, 155, 39371, 94.7409828129),
    (13, 6, 'os', 55, 67, 114, 7979, 84.6153846154),
    (2, 43, 'ws', 99, 20, 19, 1439, 44.1860465116),
    (12, 27, 'is', 163, 4, 63, 783, 28.7477954145),
    (48, 48, 'is', 117, 151, 33, 2099, 63.8997395833),
    (62, 18, 'ws', 47, 40, 161, 1682, 64.1178813222),
    (40, 30, 'is', 64, 49, 186, 1763, 43.5555555556),
    (21, 26, 'is', 100, 155, 124, 6079, 88.7133699634),
    (11, 54, 'os', 27, 10, 28, 218, 42.4242424242),
    (33, 31, 'is', 181, 66, 101, 2351, 97.311827957),
    (54, 63, 'ws', 134, 185, 45, 1211, 61.1772486772),
    (9, 17, 'os', 123, 168, 144, 24191, 91.8767507003),
    (10, 36, 'os', 53, 5, 192, 1763, 78.5185185185),
    (9, 35, 'ws', 115, 16, 64, 663, 81.2698412698),
    (6, 23, 'ws', 95, 147, 136, 19199, 96.5797101449),
    (17, 12, 'ws', 36, 85, 116, 3999, 96.6666666667),
    (18, 5, 'os', 122, 180, 92, 26732, 93.7677527151),
    (40, 5, 'os', 154, 20, 163, 8315, 95.0833333333),
    (62, 9, 'is', 80, 35, 82, 1916, 55.7546794106),
    (10, 10, 'ws', 140, 189, 95, 31919, 94.5),
    (6, 17, 'ws', 91, 176, 22, 7079, 63.2679738562),
]


@pytest.mark.parametrize("R,C,df,M,K,N,cycles,mapeff", SCALESIM_V3)
def test_dense_matches_scalesim_v3(R, C, df, M, K, N, cycles, mapeff):
    r = sim.simulate_gemm(sim.Arch(rows=R, cols=C, dataflow=df), M=M, K=K, N=N)
    assert r.compute_cycles == cycles
    assert 100 * r.mapping_efficiency == pytest.approx(mapeff, abs=1e-8)
    assert r.stall_cycles == 0  # unlimited bandwidth, as SCALE-Sim's CALC mode


@pytest.mark.parametrize("R,C,df,M,K,N,cycles,mapeff", SCALESIM_V3[:6])
def test_sram_size_and_weight_values_do_not_change_dense_compute(R, C, df, M, K, N, cycles,
                                                                 mapeff):
    arch = sim.Arch(rows=R, cols=C, dataflow=df, ifmap_sram_kb=1, filter_sram_kb=1,
                    ofmap_sram_kb=1)
    w = np.random.default_rng(0).standard_normal((K, N))
    assert sim.simulate_gemm(arch, M, K, N, weight=w).compute_cycles == cycles


def closed_form(R, C, df, M, K, N):
    """SCALE-Sim's fold arithmetic written out independently of simulator.folding."""
    sr, sc, t = {"os": (M, N, K), "ws": (K, N, M), "is": (K, M, N)}[df]
    fr, fc = -(-sr // R), -(-sc // C)
    fill = R + C - 2 if df == "os" else 2 * R + C - 2
    eff = (sr / (fr * R)) * (sc / (fc * C))
    return fr * fc * (fill + t) - 1, eff


@given(R=st.integers(1, 40), C=st.integers(1, 40), df=st.sampled_from(["os", "ws", "is"]),
       M=st.integers(1, 300), K=st.integers(1, 300), N=st.integers(1, 300))
@settings(max_examples=150, deadline=None)
def test_closed_form_any_shape(R, C, df, M, K, N):
    r = sim.simulate_gemm(sim.Arch(rows=R, cols=C, dataflow=df), M, K, N)
    cycles, eff = closed_form(R, C, df, M, K, N)
    assert r.compute_cycles == cycles
    assert r.mapping_efficiency == pytest.approx(eff, rel=1e-12)
    assert 0 < r.utilization <= 1


@given(R=st.integers(1, 6), C=st.integers(1, 6), df=st.sampled_from(["os", "ws", "is"]),
       M=st.integers(1, 14), K=st.integers(1, 14), N=st.integers(1, 14))
@settings(max_examples=40, deadline=None)
def test_closed_form_equals_cycle_stepping(R, C, df, M, K, N):
    arch = sim.Arch(rows=R, cols=C, dataflow=df)
    fast = sim.simulate_gemm(arch, M, K, N)
    ref = sim.simulate_gemm(arch, M, K, N, engine="reference")
    assert fast.totals() == ref.totals()
    assert fast.mapping_efficiency == pytest.approx(ref.mapping_efficiency, rel=1e-12)
    assert ref.performed_macs == M * K * N


def test_fold_order_is_column_fold_outer():
    t = build_fold_table(sim.Arch(rows=4, cols=4), M=10, K=3, N=6, mask=None)
    assert t.folds == 3 * 2
    assert list(t.filter_tile) == [0, 0, 0, 1, 1, 1]
    assert list(t.rows_used) == [4, 4, 2, 4, 4, 2]


def test_tile_extents():
    assert list(tile_extents(10, 4)) == [4, 4, 2]
    assert list(tile_extents(8, 4)) == [4, 4]
    assert tile_extents(0, 4).size == 0


# Convolutions through SCALE-Sim v3's conv topology path (same recording setup):
# (layer row "H, W, R, S, C, N, stride", rows, cols, dataflow, compute cycles, mapping eff. %).
SCALESIM_V3_CONV = [
    ((20, 20, 3, 3, 4, 8, 1), 8, 8, "os", 2049, 98.78048780487805),
    ((23, 17, 5, 3, 3, 6, 2), 8, 4, "ws", 1175, 70.3125),
    ((15, 15, 3, 3, 8, 16, 2), 4, 8, "is", 3779, 87.5),
    ((30, 30, 7, 7, 3, 16, 2), 16, 16, "os", 1946, 96.02272727272727),  # partial window
]


@pytest.mark.parametrize("layer,R,C,df,cycles,mapeff", SCALESIM_V3_CONV)
def test_conv_matches_scalesim_v3(layer, R, C, df, cycles, mapeff):
    H, W, fh, fw, ch, nf, s = layer
    r = sim.simulate_conv(sim.Arch(rows=R, cols=C, dataflow=df), H, W, fh, fw, ch, nf, stride=s)
    assert r.compute_cycles == cycles
    assert 100 * r.mapping_efficiency == pytest.approx(mapeff, abs=1e-8)
