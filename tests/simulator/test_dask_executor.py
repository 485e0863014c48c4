"""executor="dask" from a plain script without ``if __name__ == "__main__":`` (the way a new
user tries it): the sweep runs, with real weight patterns, and gives the local rows; a
process that starts a cluster while it is being spawned gets a message that says what to
add."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sparse_accel_sim.dask_executor import in_spawned_startup, main_not_reimported

pytest.importorskip("distributed")

UNGUARDED = textwrap.dedent("""
    import json
    import numpy as np
    import sparse_accel_sim as sim

    layers = [sim.Layer("a", 16, 40, 24), sim.Layer("b", 4, 64, 8)]
    rng = np.random.default_rng(3)
    weights = {"a": rng.standard_normal((40, 24)) * (rng.random((40, 24)) < 0.3)}
    grid = {"rows": [4, 8], "dataflow": ["os", "ws"], "sparsity": ["dense", "unstructured"]}
    rows = sim.sweep(grid, layers, weights=weights, executor="dask", n_workers=2,
                     progress=False)
    local = sim.sweep(grid, layers, weights=weights, processes=1, progress=False)
    print("RESULT", json.dumps({"same": rows == local, "points": len(rows)}))
""")


def _run(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


def test_unguarded_script_sweeps_on_dask(tmp_path):
    proc = _run(tmp_path, UNGUARDED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout  # the workers did not run the script again
    assert json.loads(lines[0][7:]) == {"same": True, "points": 8}


SPAWNED = textwrap.dedent("""
    import multiprocessing as mp
    from sparse_accel_sim.dask_executor import DaskExecutor

    if __name__ == "__mp_main__":  # a spawned child re-running this unguarded script
        try:
            DaskExecutor(n_workers=1)
        except RuntimeError as exc:
            print("CHILD", exc, flush=True)

    def work(x):
        return x

    if __name__ == "__main__":
        with mp.get_context("spawn").Pool(1) as pool:
            print("PARENT", pool.map(work, [1]), flush=True)
""")


def test_a_cluster_started_while_being_spawned_says_what_to_add(tmp_path):
    proc = _run(tmp_path, SPAWNED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHILD ")]
    assert child and 'if __name__ == "__main__":' in child[0] and "address=" in child[0]
    assert "PARENT [1]" in proc.stdout


def test_main_not_reimported_restores_main():
    main = sys.modules["__main__"]
    before = (main.__dict__.get("__file__"), main.__dict__.get("__spec__"))
    with main_not_reimported():
        assert getattr(main, "__spec__", None) is None and "__file__" not in main.__dict__
    assert (main.__dict__.get("__file__"), main.__dict__.get("__spec__")) == before
    assert not in_spawned_startup()
