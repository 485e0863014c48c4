"""Sweeps on a 2-worker Dask LocalCluster (localhost): same rows as the local executor, a
driver that dies after k chunks resumes from its results (deterministic); and, marked
``chaos`` (wall-clock races, left out of the default run: ``pytest -m chaos`` runs them), a
worker killed mid-sweep loses no point and a SIGKILLed driver resumes from its results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.dask_executor import DaskExecutor
from sparse_accel_sim.results_store import ResultsStore
from tests.simulator import test_sweep_resume as resume

distributed = pytest.importorskip("distributed")

GRID = {"rows": [4, 8], "cols": [4, 8], "dataflow": ["os", "ws", "is"],
        "sparsity": ["dense", "unstructured"], "density": [None, 0.3]}
LAYERS = [sim.Layer("a", 64, 96, 48), sim.Layer("b", 8, 128, 16)]
# slower points, for the kill tests: many folds on small arrays with a DRAM limit
SLOW_GRID = {"rows": [2, 3], "cols": [2, 3], "dataflow": ["os", "ws", "is"],
             "sparsity": ["dense", "unstructured"], "dram_words_per_cycle": [4]}
SLOW_LAYERS = [sim.Layer("s", 512, 1024, 512)]  # about 50 ms a point


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as lc, Client(lc) as client:
        client.wait_for_workers(2, timeout=60)
        yield lc, client


def _local(grid, layers, **kw):
    return sim.sweep(grid, layers, processes=1, progress=False, **kw)


def test_dask_rows_equal_local_rows(cluster):
    lc, client = cluster
    local = _local(GRID, LAYERS, seed=3)
    with DaskExecutor(client=client) as ex:
        for chunk in (None, 1, 7):
            rows = sim.sweep(GRID, LAYERS, executor=ex, chunk=chunk, seed=3, progress=False)
            assert rows == local
    by_address = sim.sweep(GRID, LAYERS, executor="dask", address=lc.scheduler_address,
                           seed=3, progress=False)
    assert by_address == local
    assert len(local) == 48 and [r["point"] for r in local] == list(range(48))
    assert len({r["point_id"] for r in local}) == 48


@pytest.mark.parametrize("k", [0, 2])
def test_driver_dying_after_k_chunks_resumes_on_dask(cluster, tmp_path, k):
    """The deterministic form of the driver-kill test below: the executor dies after ``k``
    chunks came back (the others were in flight), the rerun gives every point once."""
    lc, client = cluster
    full = _local(resume.points(), resume.LAYERS)
    with DaskExecutor(client=client) as ex:
        rows, again, stored = resume.interrupted_then_resumed(ex, ex, tmp_path, 4, k)
    unique = sorted({r["point_id"] for r in full})
    assert len(unique) == 16 and stored == 4 * k  # 4 chunks of 4, in any order
    assert rows == full
    assert again.points_given == len(unique) - stored
    assert sorted(resume.stored_point_ids(tmp_path)) == unique


@pytest.mark.chaos
def test_worker_killed_mid_sweep_loses_no_point(cluster, tmp_path):
    lc, client = cluster
    local = _local(SLOW_GRID, SLOW_LAYERS)
    pids = client.run(os.getpid)
    result: dict = {}

    def run():
        try:
            result["rows"] = sim.sweep(SLOW_GRID, SLOW_LAYERS, executor=DaskExecutor(
                client=client), chunk=1, out=tmp_path, progress=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and t.is_alive():
        busy = [w for w, keys in client.processing().items() if keys]
        if busy and len(ResultsStore(tmp_path).files()) >= 1:
            victim = busy[0]
        time.sleep(0.02)
    assert victim is not None, "the sweep finished before a worker could be killed"
    stored_at_kill = len(ResultsStore(tmp_path).files())
    os.kill(pids[victim], signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    assert "error" not in result, result.get("error")
    assert stored_at_kill < len(local)
    assert result["rows"] == local
    stored = ResultsStore(tmp_path)
    assert sorted(r["point_id"] for r in stored.rows()) == sorted(r["point_id"] for r in local)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
    assert pids[victim] not in client.run(os.getpid).values()


DRIVER = textwrap.dedent("""
    import sys, time
    import sparse_accel_sim as sim
    from sparse_accel_sim import results_store

    write = results_store.ResultsStore.write_chunk

    def write_then_hang(self, rows):
        path = write(self, rows)
        print("WROTE", len(rows), flush=True)
        time.sleep(600)  # the test SIGKILLs the driver here, mid-sweep
        return path

    results_store.ResultsStore.write_chunk = write_then_hang
    grid = {grid!r}
    layers = [sim.Layer(*x) for x in {layers!r}]
    sim.sweep(grid, layers, executor="dask", address=sys.argv[1], out=sys.argv[2],
              chunk=4, progress=False)
""")


@pytest.mark.chaos
def test_driver_sigkill_then_resume_gives_every_point_once(cluster, tmp_path):
    lc, client = cluster
    out = tmp_path / "results"
    script = DRIVER.format(grid=GRID, layers=[(x.name, x.M, x.K, x.N) for x in LAYERS])
    proc = subprocess.Popen([sys.executable, "-c", script, lc.scheduler_address, str(out)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))
        reader.start()
        reader.join(90)
        assert line and line[0].startswith("WROTE"), proc.stderr.read() if proc.poll() else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    store = ResultsStore(out)
    assert len(store.files()) == 1 and len(store.rows()) == 4  # killed mid-sweep
    with DaskExecutor(client=client) as ex:
        rows = sim.sweep(GRID, LAYERS, executor=ex, out=out, progress=False)
    assert rows == _local(GRID, LAYERS)
    import pyarrow.parquet as pq

    stored_ids = [pid for f in store.files() for pid in pq.read_table(f)["point_id"].to_pylist()]
    assert len(stored_ids) == len(rows) == len(set(stored_ids))  # every point exactly once
