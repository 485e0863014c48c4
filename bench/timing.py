"""Timing helpers for the benchmarks: call by call, as a model runs, and alone.

A sparse layer in a model always follows a torch op (a norm, an attention, another Linear),
and the next layer has other weights. So the figure that counts is taken call by call, each
call right after a torch op, the variants of one comparison alternated call by call (ABAB..)
so that drift of a shared machine and the caches' state fall on all of them alike
(:func:`in_a_model`). Beside it, :func:`alone` times the same call repeated by itself (the
steady state of a loop), which is what "fast alone" means and no more.

:func:`median_seconds` (looped samples) stays for work that is not a layer call (copy and
matmul peaks, simulator timings).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

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


def in_a_model(variants: Mapping[str, Callable[[], object]], before: Callable[[], object],
               rounds: int, warmup: int = 2, device: str = "cpu") -> dict[str, list[float]]:
    """Per-call seconds of each variant, each call right after ``before()`` (untimed).

    Each round calls ``before(); variant()`` for every variant in turn (ABAB..), so a variant
    follows a torch op and the previous variant's call, as a layer follows a norm and the
    previous layer. Returns ``rounds`` samples per variant.
    """
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(warmup + rounds):
        for name, fn in variants.items():
            before()
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            dt = time.perf_counter() - t0
            if r >= warmup:
                out[name].append(dt)
    return out


def alone(variants: Mapping[str, Callable[[], object]], rounds: int, calls: int = 5,
          warmup: int = 2, device: str = "cpu") -> dict[str, list[float]]:
    """Per-call seconds of each variant called repeatedly by itself.

    Each round runs, for every variant in turn, ``warmup`` untimed calls and then ``calls``
    timed calls back to back: the steady state of a loop over one call. Returns
    ``rounds * calls`` samples per variant.
    """
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            for _ in range(warmup):
                fn()
            sync()
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                sync()
                out[name].append(time.perf_counter() - t0)
    return out


def median(samples: list[float]) -> float:
    """The median of ``samples`` (seconds)."""
    return statistics.median(samples)


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``samples``, nearest rank."""
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]
