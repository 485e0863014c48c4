"""Resuming an interrupted sweep, deterministically: an executor that dies after k chunks
(no clock, no signal), then the same sweep again with the same ``out=`` directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.local_executor import LocalExecutor
from sparse_accel_sim.results_store import ResultsStore

pq = pytest.importorskip("pyarrow.parquet")

LAYERS = [sim.Layer("a", 24, 40, 20), sim.Layer("b", 4, 64, 8)]
GRID = {"rows": [4, 8], "dataflow": ["os", "ws"], "sparsity": ["dense", "unstructured"],
        "density": [None, 0.5]}


class Interrupted(RuntimeError):
    """The driver's death, as the test stages it."""


class DiesAfter:
    """Runs the chunks on ``inner`` and raises ``Interrupted`` once ``k`` chunks have been
    handed back (the chunk the inner executor finished next is lost, as a chunk in flight
    is when a driver dies); ``k=None`` never dies. Counts the points it was given."""

    name = "dies-after"

    def __init__(self, inner: Any, k: int | None = None) -> None:
        self.inner, self.k = inner, k
        self.points_given = 0

    @property
    def workers(self) -> int:
        return self.inner.workers

    def map_chunks(self, spec: Any, chunks: list) -> Iterator[list[dict]]:
        self.points_given += sum(len(c) for c in chunks)
        rows = self.inner.map_chunks(spec, chunks)
        try:
            for n, got in enumerate(rows):
                if n == self.k:
                    raise Interrupted(f"killed after {n} chunks")
                yield got
        finally:
            rows.close()


def points() -> list[sim.DesignPoint]:
    grid = sim.design_points(GRID)
    return grid + grid[3:5]  # equal points: simulated once, stored once


def stored_point_ids(path) -> list[str]:
    return [pid for f in ResultsStore(path).files()
            for pid in pq.read_table(f)["point_id"].to_pylist()]


def interrupted_then_resumed(inner_first: Any, inner_again: Any, out, chunk: int, k: int
                             ) -> tuple[list[dict], DiesAfter, int]:
    """Run the sweep until it dies after ``k`` chunks, then again; the second run's rows and
    executor, and the points stored when the first run died."""
    pts = points()
    with pytest.raises(Interrupted):
        sim.sweep(pts, LAYERS, executor=DiesAfter(inner_first, k), chunk=chunk, out=out,
                  progress=False)
    assert len(ResultsStore(out).files()) == k  # every chunk handed back was stored
    stored = len(stored_point_ids(out))
    again = DiesAfter(inner_again)
    rows = sim.sweep(pts, LAYERS, executor=again, chunk=chunk, out=out, progress=False)
    return rows, again, stored


@pytest.mark.parametrize("chunk", [1, 3, 5])
def test_resume_gives_every_point_once(tmp_path, chunk):
    pts = points()
    full = sim.sweep(pts, LAYERS, processes=1, progress=False)
    unique = len({r["point_id"] for r in full})
    assert len(full) == len(pts) and unique == len(pts) - 2
    chunks = -(-unique // chunk)
    for k in sorted({0, 1, chunks // 2, chunks - 1}):  # dies at once, ..., before the last
        out = tmp_path / f"k{k}"
        with LocalExecutor(1) as ex:
            rows, again, stored = interrupted_then_resumed(ex, ex, out, chunk, k)
        assert stored == k * chunk  # chunks come back in order on one local process
        assert rows == full  # same rows, same order, as an uninterrupted run
        assert again.points_given == unique - stored  # stored points were not rerun
        ids = stored_point_ids(out)
        assert sorted(ids) == sorted({r["point_id"] for r in full})  # each exactly once
        # a third run finds everything stored and simulates nothing
        third = DiesAfter(LocalExecutor(1), k=0)
        assert sim.sweep(pts, LAYERS, executor=third, out=out, progress=False) == full
        assert third.points_given == 0 and len(stored_point_ids(out)) == unique
