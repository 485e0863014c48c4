"""Timing helpers for the benchmarks: medians of repeated calls, CPU or CUDA."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(fn: Callable[[], object], device: str = "cpu", repeat: int = 7,
                   warmup: int = 2, min_time: float = 0.0) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs (seconds).

    On CUDA each run is bracketed by synchronisation. With ``min_time``, fast functions are
    looped inside each sample until a sample lasts that long, and the per-call time is used.
    """
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    inner = 1
    if min_time > 0:
        t0 = time.perf_counter()
        fn()
        sync()
        one = max(time.perf_counter() - t0, 1e-7)
        inner = max(1, int(min_time / one))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)
