"""Two gloo processes on localhost: every rank ends each update with the same structure."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers import draw_seed

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_ranks_agree_on_structure(tmp_path):
    seed = draw_seed() % 10_000
    port = free_port()
    outs = [tmp_path / f"rank{r}.pt" for r in range(2)]
    procs = [
        subprocess.Popen(
            # faulthandler: a rank that aborts prints where (its Python stack, if any)
            [sys.executable, "-X", "faulthandler", "-m", "tests.sparse_ops.dst.ddp_worker",
             str(r), "2", str(port), str(outs[r]), str(seed)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for r in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=120)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} failed (seed {seed}):\n{logs[r][-3000:]}"
    a, b = (torch.load(o) for o in outs)
    assert a["stats"] == b["stats"] and len(a["stats"]) == 3, a["stats"]
    assert all(v > 0 for v in a["stats"].values()), a["stats"]
    for key in a:
        if key != "stats":
            assert torch.equal(a[key], b[key]), f"{key} differs between ranks (seed {seed})"
