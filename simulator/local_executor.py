"""Running chunks of design points on this machine: in this process or a process pool."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from functools import partial
from typing import Any

from .design_point import DesignPoint
from .evaluate import WorkloadSpec, evaluate_chunk

Chunk = list[tuple[int, DesignPoint]]


class LocalExecutor:
    """Chunks on ``processes`` local worker processes (``1``: in this process).

    The pool starts on first use and is kept until ``close`` (a search evaluates many
    generations on it; each worker keeps its prepared workload between chunks).

    Args:
        processes: worker processes (default: all cores).
    """

    name = "local"

    def __init__(self, processes: int | None = None) -> None:
        procs = processes if processes is not None else (os.cpu_count() or 1)
        if isinstance(procs, bool) or not isinstance(procs, int):
            raise TypeError(f"processes must be an integer, got {procs!r}")
        if procs < 1:
            raise ValueError(f"processes must be >= 1, got {procs}")
        self.processes = procs
        self._pool: Any = None

    @property
    def workers(self) -> int:
        return self.processes

    def map_chunks(self, spec: WorkloadSpec, chunks: list[Chunk]) -> Iterator[list[dict]]:
        """Rows of each chunk, as chunks finish (not in order)."""
        if self.processes == 1 or len(chunks) <= 1:
            for chunk in chunks:
                yield evaluate_chunk(spec, chunk)
            return
        if self._pool is None:
            methods = mp.get_all_start_methods()
            ctx = mp.get_context("fork" if "fork" in methods else "spawn")
            self._pool = ctx.Pool(self.processes)
        yield from self._pool.imap_unordered(partial(evaluate_chunk, spec), chunks)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
