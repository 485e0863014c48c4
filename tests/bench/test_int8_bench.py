"""bench.int8 on a small weight: every variant timed, ratios and bytes consistent."""

from __future__ import annotations

import torch

from bench import int8


def test_int8_bench_small():
    rows = int8.run([1, 3], rounds=1, size=256)
    assert [r["N"] for r in rows] == [1, 3]
    for r in rows:
        cells = r["cells"]
        assert {"int8pack_mm", "dense fp32", "bitmap 0.5 int8", "2:4 int8", "csr 0.3 int8",
                "bsr 32² 0.3 int8"} <= set(cells)
        assert cells["int8pack_mm"]["x_int8pack"] == 1.0
        # sparse + int8 stores fewer bytes than its bf16 twin, and than dense int8 at d <= 0.5
        for k in ("bitmap 0.5", "2:4", "csr 0.3", "bsr 32² 0.3"):
            assert cells[f"{k} int8"]["MB"] < cells[f"{k} bf16"]["MB"]
        assert cells["2:4 int8"]["bound_x_int8pack"] > 1.5
        assert all(c["ms"] > 0 for c in cells.values())
        if r["N"] > 1:  # the W8A8 rows: same bytes as their W8A16 twins
            for k in int8.W8A8_CASES:
                assert cells[f"{k} int8 W8A8"]["MB"] == cells[f"{k} int8"]["MB"]
    assert "int8pack_mm" in int8.markdown(rows)


def test_int8pack_model_matches_its_dequantized_twin():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    x = torch.randn(5, 64)
    q = int8.int8pack_model(model, keep=())
    assert isinstance(q[0], int8.Int8PackLinear)
    twin = int8.dequantized_model(__import__("copy").deepcopy(q))
    with torch.no_grad():
        torch.testing.assert_close(q(x), twin(x), rtol=1e-5, atol=1e-5)


def test_int8_bench_keeps_the_dot_engine_of_the_environment(monkeypatch):
    # The unnamed W8A8 rows run the engine SPARSE_OPS_INT8_DOT names (it was reset to the
    # automatic choice, so a run meant for another engine measured the automatic one), and
    # the run leaves that engine in place.
    from sparse_ops import _C, w8a8

    auto = w8a8.dot_engine()
    other = next(d for d in _C._int8_dots() if d != auto)
    monkeypatch.setenv("SPARSE_OPS_INT8_DOT", other)
    _C._set_int8_dot(other)  # as the variable would have at start
    seen = []
    real = _C._set_int8_dot

    def spy(d: str) -> None:
        seen.append(d)
        real(d)

    monkeypatch.setattr(_C, "_set_int8_dot", spy)
    int8.run([w8a8.MIN_TOKENS], rounds=1, size=128)
    assert seen and set(seen) == {other}
    assert w8a8.dot_engine() == other
