"""bench.models --quick --no-compile: a smoke run of the whole-model table (tiny shapes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]


def test_models_quick_smoke(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.models", "--quick", "--no-compile", "--threads", "1",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "models.json").read_text())
    md = (tmp_path / "models.md").read_text()
    rows = data["rows"]
    variants = {r["variant"] for r in rows}
    assert {"dense", "csr 0.5", "csr 0.3", "2:4", "bsr 32x32 0.3"} <= variants
    assert {"int8 dense", "bitmap 0.5 int8", "2:4 int8", "csr 0.3 int8",
            "bsr 32x32 0.3 int8"} <= variants  # issue 23's rows, each checked below
    assert {(r["model"], r["dtype"]) for r in rows} == {
        (m, d) for m in ("Llama", "BERT") for d in ("float32", "bfloat16")}
    assert not any(r["compiled"] for r in rows)
    for r in rows:
        if r["variant"] == "dense":
            assert r["err_vs_pruned_dense"] is None and r["bytes_ratio"] == 1.0
            continue
        assert r["ok"] is True, r
        if r["dtype"] == "float32":
            assert r["err_vs_pruned_dense"] < 1e-4
        assert r["err_vs_unpruned"] > 0  # pruning changed the model
        if r["model"] == "Llama":
            assert r["prefill_ms"] > 0 and r["gen_tok_s"] > 0 and r["decode_tok_s"] > 0
        else:
            assert r["forward_ms"] > 0
    # 2:4 of fp32 stores half the values plus 2-bit positions: between 1.5x and 2x fewer bytes
    # on the swapped layers; the dense lm_head keeps the whole-model ratio lower.
    nm = [r for r in rows if r["variant"] == "2:4" and r["dtype"] == "float32"]
    assert all(1.0 < r["bytes_ratio"] < 2.0 for r in nm)
    assert "lm_head" in data["skipped"]["Llama"]
    assert data["meta"]["threads"] == 1 and data["meta"]["cpu"]
    assert "| model |" in md and "Left dense by sparsify" in md
    if "bitmap" not in {v for r in rows for v in [r["variant"].split()[0]]}:
        assert "bitmap" in md  # the note saying why those rows are missing
    assert wall < 60, f"bench.models --quick took {wall:.0f} s"
