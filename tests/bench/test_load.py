"""bench.load: the ``--quick`` CLI end to end (every row present, zero serving mismatches),
the target rules on made-up rows, and the busy load process stopping by itself.

No speed is asserted: the quick run's counts are too small to measure anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import load as bl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("load")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads((out / "load.json").read_text()), (out / "load.md").read_text()


def test_quick_run_has_every_row(quick_run: tuple[dict, str]) -> None:
    result, _ = quick_run
    layers = [f"{o}x{i}" for o, i in bl.LAYERS]
    formats = list(bl.FORMATS)
    pairs = {(lay, f) for lay in layers for f in formats}
    assert {(r["layer"], r["format"]) for r in result["load"]} == pairs
    assert len(result["load"]) == len(pairs)
    mixed = {(r["layer"], r["format"], r["op"]) for r in result["interleaved"]}
    with_dense = pairs | {(lay, "dense") for lay in layers}
    assert mixed == {(lay, f, op) for lay, f in with_dense for op in bl.TORCH_OPS}
    assert len(result["interleaved"]) == len(mixed)
    serving = {(r["layer"], r["module"]) for r in result["serving"]}
    assert serving == {(lay, m) for lay in layers for m in ["dense", *formats]}
    for r in result["load"]:
        assert r["load_held"], r
        for key in ("dense_quiet_us", "sparse_quiet_us", "dense_loaded_us", "sparse_loaded_us"):
            assert r[key] > 0, (r, key)
    for r in result["serving"]:
        assert r["calls"] == bl.SERVING_THREADS * bl.QUICK.serving_calls
        assert r["p99_us"] >= r["p50_us"] > 0


def test_quick_run_serving_results_all_match(quick_run: tuple[dict, str]) -> None:
    result, _ = quick_run
    for r in result["serving"]:
        assert r["mismatches"] == 0 and r["errors"] == [], r


def test_quick_run_reports_machine_and_targets(quick_run: tuple[dict, str]) -> None:
    result, md = quick_run
    m = result["machine"]
    assert m["cpu"] and m["simd_level"] and m["torch_threads"] == bl.THREADS
    assert m["cpu"] in md and m["simd_level"] in md
    n_sparse = len(bl.LAYERS) * len(bl.FORMATS)
    # 2 per loaded row, 2 per interleaved row, tail + mismatches per sparse serving row and
    # mismatches per dense serving row.
    want = 2 * n_sparse + 2 * n_sparse * len(bl.TORCH_OPS) + 2 * n_sparse + len(bl.LAYERS)
    assert len(result["targets"]) == want
    assert result["all_targets_met"] == all(t["passed"] for t in result["targets"])
    assert md.count("PASS") + md.count("FAIL") == want


def _load_row(slowdown: float, drift: float) -> bl.LoadRow:
    return bl.LoadRow("8x8", "csr 0.1", 0.1, 10.0, 5.0, 0.5, 10.0, 5.0 * slowdown,
                      0.5 * drift, slowdown, drift, 100, 1.0, True)


def test_target_rules_flip_with_the_data() -> None:
    mixed_ok = bl.InterleavedRow("8x8", "csr 0.1", "mv", 10, 11, 0.10, 2, 2.2, 0.10, 100)
    mixed_bad = bl.InterleavedRow("8x8", "csr 0.1", "mv", 10, 12, 0.20, 2, 2.0, 0.0, 100)
    dense = bl.ServingRow("8x8", "dense", 4, 100, 10, 20, 2.0, 0, 0)
    tail_ok = bl.ServingRow("8x8", "csr 0.1", 4, 100, 10, 29, 2.9, 0, 0)
    tail_bad = bl.ServingRow("8x8", "csr 0.1", 4, 100, 10, 31, 3.1, 1, 1)

    def verdicts(*args) -> list[bool]:
        return [t.passed for t in bl.targets(*args)]

    assert verdicts([_load_row(2.9, 1.4)], [mixed_ok], [dense, tail_ok]) == [True] * 7
    assert verdicts([_load_row(3.1, 1.0)], [], []) == [False, True]
    assert verdicts([_load_row(1.0, 1.6)], [], []) == [True, False]
    assert verdicts([_load_row(1.0, 1 / 1.6)], [], []) == [True, False]  # either way
    assert verdicts([], [mixed_bad], []) == [False, True]
    assert verdicts([], [], [dense, tail_bad]) == [True, False, False]


def test_percentile_nearest_rank() -> None:
    ns = [i * 1000 for i in range(1, 101)]  # 1..100 us
    assert bl.percentile_us(ns, 0.5) == 50.0
    assert bl.percentile_us(ns, 0.99) == 99.0
    assert bl.median_us([3000, 1000, 2000]) == 2.0


def test_busy_load_stops_by_itself() -> None:
    busy = bl.BusyLoad(limit_s=3.0)
    try:
        busy.on()
        assert busy.alive() and busy.iterations() >= 2
        deadline = time.monotonic() + 30
        while busy.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not busy.alive(), "the busy process outlived its time limit"
    finally:
        busy.close()
