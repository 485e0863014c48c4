"""Running chunks of design points on a ``dask.distributed`` cluster.

``DaskExecutor()`` starts a ``LocalCluster`` on this machine (one single-threaded worker
process per core); ``DaskExecutor(address="tcp://host:8786")`` connects to a running
scheduler (``dask scheduler`` on one machine, ``dask worker tcp://host:8786`` on each of the
others, every worker able to ``import sparse_accel_sim``); ``DaskExecutor(client=...)`` uses a
``distributed.Client`` you made (a ``dask_jobqueue.SLURMCluster``'s, say). Each chunk is one
task. A task whose worker dies is run again on another worker by the scheduler (up to
``distributed.scheduler.allowed-failures`` times), so no point is lost.

From a script without ``if __name__ == "__main__":``: Dask starts its local workers with
``multiprocessing``'s spawn, which runs the parent's ``__main__`` file again in each worker;
an unguarded script would start its sweep again there, and Dask reports only "Nanny failed
to start". The workers need nothing from ``__main__`` (the chunk function lives in
``simulator``), so the LocalCluster is started with ``__main__``'s file and module spec
hidden from multiprocessing, and the workers do not re-run the script. Code that still ends
up starting an executor inside a spawned child's start-up gets a ``RuntimeError`` that says
what to add.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator
from typing import Any

from .design_point import DesignPoint
from .evaluate import WorkloadSpec, evaluate_chunk

Chunk = list[tuple[int, DesignPoint]]

GUARD_ADVICE = (
    "put the code that runs the sweep under `if __name__ == \"__main__\":` (worker processes "
    "started with spawn run the main script again), or pass address= of a running Dask "
    "scheduler"
)


def in_spawned_startup() -> bool:
    """Whether this process is a spawned child still re-running its parent's main script."""
    main = sys.modules.get("__main__")
    return (getattr(main, "__name__", "") == "__mp_main__"
            or bool(getattr(multiprocessing.current_process(), "_inheriting", False)))


@contextlib.contextmanager
def main_not_reimported() -> Iterator[None]:
    """While open, processes started with spawn / forkserver do not run ``__main__`` again.

    multiprocessing re-runs the parent's main module in a child when ``__main__`` has a
    ``__spec__`` (``python -m``) or a ``__file__`` (a script); both are hidden here and put
    back on exit. Only for children that need nothing defined in ``__main__``.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    missing = object()
    saved = {k: main.__dict__.get(k, missing) for k in ("__file__", "__spec__")}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is missing:
                main.__dict__.pop(k, None)
            else:
                main.__dict__[k] = v


class DaskExecutor:
    """Chunks as tasks of a Dask cluster.

    Args:
        address: scheduler address (``"tcp://host:8786"``); ``None`` starts a LocalCluster.
        n_workers: workers of that LocalCluster (default: all cores).
        client: an existing ``distributed.Client`` (then ``address`` must be ``None``).
    """

    name = "dask"

    def __init__(self, address: str | None = None, *, n_workers: int | None = None,
                 client: Any = None) -> None:
        from distributed import Client, LocalCluster

        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a string like 'tcp://host:8786', got "
                            f"{address!r}")
        if address is not None and client is not None:
            raise ValueError("give either address or client, not both")
        self._own_client = client is None
        self._cluster = None
        if client is not None:
            self.client = client
        elif address is not None:
            try:
                self.client = Client(address, timeout=30)
            except OSError as exc:
                raise ValueError(f"address={address!r}: no Dask scheduler reachable there "
                                 f"({exc})") from exc
        else:
            import dask

            if in_spawned_startup():
                raise RuntimeError(
                    "executor='dask': this process is a worker process re-running its "
                    "parent's main script, which started a Dask cluster again; "
                    + GUARD_ADVICE)
            n = n_workers or os.cpu_count() or 1
            # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's
            # adaptive mmap threshold: every large numpy temporary is then mapped and faulted
            # in afresh, which slows the sparse folds down markedly. Leave glibc's default.
            try:
                with dask.config.set({"distributed.nanny.pre-spawn-environ."
                                      "MALLOC_TRIM_THRESHOLD_": None}), main_not_reimported():
                    self._cluster = LocalCluster(n_workers=n, threads_per_worker=1,
                                                 processes=True, dashboard_address=None)
            except RuntimeError as exc:
                if "failed to start" not in str(exc):
                    raise
                raise RuntimeError(f"executor='dask': the local Dask workers failed to start "
                                   f"({exc}); if this runs from a script, " + GUARD_ADVICE
                                   ) from exc
            self.client = Client(self._cluster)

    @property
    def workers(self) -> int:
        """Threads across the cluster's workers now (at least 1)."""
        info = self.client.scheduler_info(n_workers=-1) if _takes_n_workers(self.client) \
            else self.client.scheduler_info()
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    def map_chunks(self, spec: WorkloadSpec, chunks: list[Chunk]) -> Iterator[list[dict]]:
        """Rows of each chunk, as tasks finish (not in order)."""
        from distributed import as_completed

        if not chunks:
            return
        [spec_f] = self.client.scatter([spec], broadcast=True, hash=False)
        futures = [self.client.submit(evaluate_chunk, spec_f, chunk, pure=False)
                   for chunk in chunks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _takes_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False
