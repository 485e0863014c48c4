"""The kernels run on torch's own intra-op thread team (csrc/team.h), not on threads of their
own: checked by the OS thread ids that ran kernel tasks (``_C._team_debug``), not by timing.

Each check runs in a fresh subprocess, so the thread set is that of one clean process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/task is Linux")

PROBE = textwrap.dedent("""
    import json, os, sys, torch
    import sparse_ops as so
    from sparse_ops import _C
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1024, 1024, generator=g)
    mats = [so.to_sparse(so.prune(w, "csr", 0.3), "csr"),
            so.to_sparse(so.prune(w, "bitmap", 0.5), "bitmap"),
            so.to_sparse(so.prune(w, "bsr", 0.3, blocksize=(32, 32)), "bsr", blocksize=(32, 32)),
            so.to_sparse(so.prune(w, "nm", n=2, m=4), "nm", n=2, m=4)]
    xs = [torch.randn(1024, n, generator=g) for n in (1, 16, 128)]
    for _ in range(3):
        (w @ xs[2]).sum()  # torch's own parallel ops: its team exists from here on
    before = sorted(int(t) for t in os.listdir("/proc/self/task"))
    _C._team_debug(True)
    worst = 0.0
    for s in mats:
        dense = s.to_dense().double()
        for x in xs:
            y, ref = so.matmul(s, x).double(), dense @ x.double()
            worst = max(worst, ((y - ref).norm() / ref.norm()).item())
    seen = _C._team_threads_seen()
    _C._team_debug(False)
    after = sorted(int(t) for t in os.listdir("/proc/self/task"))
    print(json.dumps({"main": os.getpid(), "before": before,
                      "after": after, "seen": seen, "err": worst,
                      "torch_threads": torch.get_num_threads()}))
""")


def _probe(threads: int) -> dict:
    import json

    r = subprocess.run([sys.executable, "-c", PROBE, str(threads)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_one_torch_thread_means_one_kernel_thread():
    out = _probe(1)
    assert out["err"] < 1e-5
    assert out["seen"] == [out["main"]], "with torch.set_num_threads(1) only the caller works"
    assert out["after"] == out["before"], "the kernels started threads of their own"


def test_kernels_run_on_torchs_team_and_start_no_threads():
    out = _probe(2)
    assert out["err"] < 1e-5
    assert out["main"] in out["seen"]
    assert 1 <= len(out["seen"]) <= out["torch_threads"] == 2
    assert set(out["seen"]) <= set(out["before"]), "a kernel task ran on a thread torch lacks"
    assert out["after"] == out["before"], "the kernels started threads of their own"
