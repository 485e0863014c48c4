"""Running chunks of design points on a ``dask.distributed`` cluster.

``DaskExecutor()`` starts a ``LocalCluster`` on this machine (one single-threaded worker
process per core); ``DaskExecutor(address="tcp://host:8786")`` connects to a running
scheduler (``dask scheduler`` on one machine, ``dask worker tcp://host:8786`` on each of the
others, every worker able to ``import simulator``); ``DaskExecutor(client=...)`` uses a
``distributed.Client`` you made (a ``dask_jobqueue.SLURMCluster``'s, say). Each chunk is one
task. A task whose worker dies is run again on another worker by the scheduler (up to
``distributed.scheduler.allowed-failures`` times), so no point is lost.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from .design_point import DesignPoint
from .evaluate import WorkloadSpec, evaluate_chunk

Chunk = list[tuple[int, DesignPoint]]


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

            n = n_workers or os.cpu_count() or 1
            # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's
            # adaptive mmap threshold: every large numpy temporary is then mapped and faulted
            # in afresh, which slows the sparse folds down markedly. Leave glibc's default.
            with dask.config.set({"distributed.nanny.pre-spawn-environ."
                                  "MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = LocalCluster(n_workers=n, threads_per_worker=1,
                                             processes=True, dashboard_address=None)
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
