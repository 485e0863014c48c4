"""A busy 2-thread torch process beside a benchmark, switched on and off between measurements.

The load runs on 2 torch threads (spawned, so the parent's thread state is not inherited) and
stops by itself after ``limit_s`` or when the parent dies. Two kinds:

- ``"exp"``: ``a.exp()`` on 4M floats in a loop (memory-bound: it also competes for the
  caches and the memory bus);
- ``"matmul"``: ``a @ b`` on 2048 x 2048 floats in a loop (compute-bound: it competes for the
  cores), the neighbour of ``shared/repro/thread_team``.
"""

from __future__ import annotations

import multiprocessing as mp
import time

import torch

THREADS = 2
BUSY_NUMEL = 4_000_000
BUSY_LIMIT_S = 120.0  # the busy process always stops by itself after this long


def _busy(run, stop, count, limit_s: float, kind: str = "exp") -> None:
    """The load on 2 torch threads while ``run`` is set, until ``stop`` is set, the parent is
    gone or ``limit_s`` has passed (whichever comes first)."""
    torch.set_num_threads(THREADS)
    if kind == "matmul":
        m = torch.randn(2048, 2048)
        step = lambda: m @ m  # noqa: E731
    else:
        a = torch.randn(BUSY_NUMEL)
        step = a.exp
    parent = mp.parent_process()
    deadline = time.monotonic() + limit_s
    with count.get_lock():
        count.value = 0  # ready
    while not stop.is_set() and time.monotonic() < deadline:
        if parent is not None and not parent.is_alive():
            break
        if not run.wait(timeout=0.05):
            continue
        step()
        with count.get_lock():
            count.value += 1


class BusyLoad:
    """A spawned busy torch process that can be switched on and off between measurements."""

    def __init__(self, limit_s: float = BUSY_LIMIT_S, kind: str = "exp") -> None:
        if kind not in ("exp", "matmul"):
            raise ValueError(f"kind: expected 'exp' or 'matmul', got {kind!r}")
        self.limit_s = limit_s
        self.kind = kind
        self.ctx = mp.get_context("spawn")
        self.proc: mp.process.BaseProcess | None = None
        self.starts = 0

    def _start(self) -> None:
        self.run = self.ctx.Event()
        self.stop = self.ctx.Event()
        self.count = self.ctx.Value("q", -1)
        self.proc = self.ctx.Process(
            target=_busy, args=(self.run, self.stop, self.count, self.limit_s, self.kind),
            daemon=True
        )
        self.proc.start()
        self.starts += 1
        deadline = time.monotonic() + 120
        while self.count.value < 0:  # importing torch in the child takes a few seconds
            if not self.proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the busy load process did not start")
            time.sleep(0.02)

    def on(self) -> None:
        """Start (or restart, past its time limit) the load and wait until it is busy."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        before = self.count.value
        self.run.set()
        deadline = time.monotonic() + 30
        while self.count.value < before + 2:
            if not self.proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the busy load process is not running")
            time.sleep(0.002)

    def off(self) -> None:
        """Pause the load (the process waits) and let its last ``exp`` finish."""
        if self.proc is not None and self.proc.is_alive():
            self.run.clear()
            time.sleep(0.05)

    def iterations(self) -> int:
        return int(self.count.value) if self.proc is not None else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def close(self) -> None:
        if self.proc is None:
            return
        self.stop.set()
        self.run.set()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self.proc = None


