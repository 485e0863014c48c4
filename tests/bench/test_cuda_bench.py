"""bench.cuda's code path on the CPU: the Triton kernels under the interpreter (timings
meaningless), every variant checked against its float64 product, and the report."""

from __future__ import annotations

import os

import pytest
import torch

from bench import cuda


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                    reason="the Triton kernels on the CPU need TRITON_INTERPRET=1")
def test_cuda_bench_runs_every_variant_and_checks_it():
    saved = []
    rows, props = cuda.run([(64, 96)], [3], rounds=1, device="cpu",
                           layouts=["2:4", "bsr 32² 0.3"],
                           save=lambda r, p: saved.append(len(r)))
    names = {r["weight"] for r in rows}
    assert {"dense bf16", "2:4 bf16", "2:4 int8", "bsr 32² 0.3 bf16",
            "bsr 32² 0.3 int8"} <= names
    assert saved == [len(rows)]
    assert props["failed"] == []
    for r in rows:  # bf16 output of a float64-checked product; a wrong kernel is near 1
        assert 0 < r["rel_err"] < 1e-2, r
        assert r["ms"] > 0 and r["MB"] > 0
    md = cuda.markdown(rows, props)
    assert md.startswith("Machine: cpu") and "| 2:4 int8 |" in md


def test_rel_err_flags_non_finite_and_wrong_outputs():
    ref = torch.randn(5, 3, dtype=torch.float64)
    assert cuda.rel_err(ref.float(), ref) < 1e-6
    assert cuda.rel_err(torch.zeros(5, 3), ref) == pytest.approx(1.0)
    bad = ref.clone()
    bad[0, 0] = float("nan")
    assert cuda.rel_err(bad, ref) == float("inf")
