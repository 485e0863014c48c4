"""bench.panel on a tiny matrix: a row per (dtype, N) with a positive ratio per variant, the
markdown table, and a forced panel call on the panel path."""

from __future__ import annotations

import torch

import sparse_ops as so
from bench import panel
from sparse_ops import _C


def test_panel_bench_smoke():
    rows = panel.run([3, 20], [torch.float32, torch.bfloat16], rounds=1, size=96)
    assert [(r["dtype"], r["N"]) for r in rows] == [("float32", 3), ("float32", 20),
                                                     ("bfloat16", 3), ("bfloat16", 20)]
    for r in rows:
        assert len(r["x_dense_fp32"]) == 2 * len(panel.CASES)
        assert all(v > 0 for v in r["x_dense_fp32"].values())
    assert "| bfloat16 | 20 |" in panel.markdown(rows)
    _C._set_panel("on")
    s = panel._matrix(torch.randn(50, 70), "nm", {"n": 2, "m": 4})
    so.matmul(s, torch.randn(70, 5))
    assert _C._last_path() == "nm.panel"
    _C._set_panel("auto")
