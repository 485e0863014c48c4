"""Sparse layers under load (issue 14): batch-1 ``SparseLinear`` beside ``nn.Linear`` when the
CPU is shared.

    python -m bench.load            # the full run (a few minutes on 2 cores)
    python -m bench.load --quick    # a smoke run with small counts (< 30 s)

Layers (out x in) 768 x 768, 3072 x 768, 768 x 3072 and 5632 x 2048, each as 2:4 and as CSR at
density 0.1, next to the dense ``nn.Linear`` of the same shape; batch 1, eager,
``torch.no_grad()``, torch threads 2. Four conditions:

- quiet: nothing else runs (that this benchmark starts);
- loaded: a busy 2-thread torch process (``a.exp()`` on 4M floats in a loop), spawned by this
  benchmark, runs beside the timed calls;
- interleaved: each sparse call alternates with a torch op (LayerNorm over (1, 768), ``mv``
  64 x 64, an attention-sized ``bmm``); both are timed and compared with each run alone;
- serving: 4 Python threads issue calls to one shared module; per-call latency p50/p99 and every
  result checked against a precomputed reference.

Each time is the median of per-call ``time.perf_counter_ns`` samples after warm-up; timed
functions of one comparison alternate in chunks so drift on a shared machine hits both. The
issue's targets are computed and printed with pass/fail. Writes ``bench/out/load.md`` and
``load.json`` (``--out`` elsewhere); exits 0 unless ``--strict`` and a target fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

import sparse_ops as so
from bench.busy import BusyLoad
from bench.host import cpu_model, header, out_dir

THREADS = 2
# (out_features, in_features)
LAYERS: list[tuple[int, int]] = [(768, 768), (3072, 768), (768, 3072), (5632, 2048)]
# name -> SparseLinear.from_dense keyword arguments
FORMATS: dict[str, dict] = {
    "2:4": {"layout": "nm", "n": 2, "m": 4},
    "csr 0.1": {"layout": "csr", "density": 0.1},
}
TORCH_OPS = ("layernorm (1,768)", "mv 64x64", "bmm (12,128,64)x(12,64,128)")
SERVING_THREADS = 4

# The targets.
LOADED_SLOWDOWN_MAX = 3.0  # loaded median / quiet median of each sparse call
LOADED_RATIO_DRIFT_MAX = 1.5  # (sparse / dense under load) vs (sparse / dense quiet), either way
INTERLEAVED_SLOWDOWN_MAX = 0.15  # neither the sparse call nor the torch op slows more than this
SERVING_TAIL_FACTOR_MAX = 1.5  # sparse p99/p50 <= this x dense p99/p50


@dataclass
class Counts:
    """How long to time: a per-function budget, turned into a call count within bounds."""

    warmup: int
    budget_s: float
    min_calls: int
    max_calls: int
    chunk: int
    serving_calls: int  # per serving thread


FULL = Counts(warmup=20, budget_s=0.6, min_calls=200, max_calls=5000, chunk=50,
              serving_calls=1000)
QUICK = Counts(warmup=3, budget_s=0.01, min_calls=12, max_calls=40, chunk=6, serving_calls=25)


# --- timing ------------------------------------------------------------------------------------
def _time_calls(fn: Callable[[], object], n: int, out: list[int]) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)


def _calls_for(fns: list[Callable[[], object]], counts: Counts) -> int:
    """Calls per function: the budget over the slowest function's time, within bounds."""
    slowest = 0.0
    for fn in fns:
        for _ in range(counts.warmup):
            fn()
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        slowest = max(slowest, (time.perf_counter() - t0) / 3)
    n = int(counts.budget_s / max(slowest, 1e-7))
    return max(counts.min_calls, min(counts.max_calls, n))


def alternate(fns: dict[str, Callable[[], object]], counts: Counts,
              before: Callable[[], object]) -> dict[str, list[int]]:
    """Per-call ns samples of each function, each call right after ``before()`` (a torch op,
    untimed), the functions taking turns call by call (ABAB..) as layers of a model do."""
    n = _calls_for(list(fns.values()), counts)
    samples: dict[str, list[int]] = {k: [] for k in fns}
    clock = time.perf_counter_ns
    for _ in range(n):
        for k, fn in fns.items():
            before()
            t0 = clock()
            fn()
            samples[k].append(clock() - t0)
    return samples


def interleave(sparse: Callable[[], object], op: Callable[[], object], counts: Counts
               ) -> dict[str, list[int]]:
    """Samples of ``sparse`` alone, ``op`` alone, and of each in ``sparse(); op()`` pairs."""
    n = _calls_for([sparse, op], counts)
    s: dict[str, list[int]] = {"sparse_alone": [], "op_alone": [], "sparse_mixed": [],
                               "op_mixed": []}
    clock = time.perf_counter_ns
    for _ in range(math.ceil(n / counts.chunk)):
        _time_calls(sparse, counts.chunk, s["sparse_alone"])
        _time_calls(op, counts.chunk, s["op_alone"])
        for _ in range(counts.chunk):
            t0 = clock()
            sparse()
            t1 = clock()
            op()
            t2 = clock()
            s["sparse_mixed"].append(t1 - t0)
            s["op_mixed"].append(t2 - t1)
    return s


def median_us(ns: list[int]) -> float:
    return statistics.median(ns) / 1e3


def percentile_us(ns: list[int], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank rule, in microseconds."""
    ordered = sorted(ns)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1] / 1e3


# --- the rows ----------------------------------------------------------------------------------
@dataclass
class Layer:
    """One shape: the dense layer, its sparse versions, inputs and references."""

    out_features: int
    in_features: int
    dense: nn.Linear
    sparse: dict[str, so.SparseLinear]
    inputs: list[torch.Tensor]

    @property
    def name(self) -> str:
        return f"{self.out_features}x{self.in_features}"


def build_layers(seed: int = 0, n_inputs: int = 8) -> list[Layer]:
    """Each shape in ``LAYERS`` as nn.Linear and as each format in ``FORMATS``."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for out_f, in_f in LAYERS:
        lin = nn.Linear(in_f, out_f)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(out_f, in_f, generator=g) / math.sqrt(in_f))
            lin.bias.copy_(torch.randn(out_f, generator=g) * 0.1)
        sparse = {}
        for fmt, kw in FORMATS.items():
            kw = dict(kw)
            layout = kw.pop("layout")
            sparse[fmt] = so.SparseLinear.from_dense(lin, layout, **kw)
        inputs = [torch.randn(1, in_f, generator=g) for _ in range(n_inputs)]
        layers.append(Layer(out_f, in_f, lin, sparse, inputs))
    return layers


@dataclass
class LoadRow:
    """Quiet and loaded medians of one sparse layer and the dense layer of its shape (us)."""

    layer: str
    format: str
    density: float
    dense_quiet_us: float
    sparse_quiet_us: float
    ratio_quiet: float  # sparse / dense
    dense_loaded_us: float
    sparse_loaded_us: float
    ratio_loaded: float
    sparse_slowdown: float  # loaded / quiet
    ratio_drift: float  # ratio_loaded / ratio_quiet
    calls: int
    load_iters_per_s: float  # the busy process's a.exp() rate during the loaded timing
    load_held: bool  # the busy process was still running at the end of the loaded timing


@dataclass
class InterleavedRow:
    """A sparse call and a torch op, each alone and alternated (medians, us)."""

    layer: str
    format: str
    op: str
    sparse_alone_us: float
    sparse_mixed_us: float
    sparse_slowdown: float  # mixed / alone - 1
    op_alone_us: float
    op_mixed_us: float
    op_slowdown: float
    calls: int


@dataclass
class ServingRow:
    """Calls from ``SERVING_THREADS`` Python threads to one shared module."""

    layer: str
    module: str  # a format name or "dense"
    threads: int
    calls: int
    p50_us: float
    p99_us: float
    tail: float  # p99 / p50
    mismatches: int  # results not close to the precomputed reference (or calls that raised)
    bitwise_diffs: int  # results not bitwise equal to it
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    calls_per_s: float = 0.0


def torch_ops(seed: int = 1) -> dict[str, Callable[[], torch.Tensor]]:
    """The torch ops that alternate with the sparse calls."""
    g = torch.Generator().manual_seed(seed)
    ln = nn.LayerNorm(768)
    x = torch.randn(1, 768, generator=g)
    a, v = torch.randn(64, 64, generator=g), torch.randn(64, generator=g)
    q, k = torch.randn(12, 128, 64, generator=g), torch.randn(12, 64, 128, generator=g)
    ops = {
        TORCH_OPS[0]: lambda: ln(x),
        TORCH_OPS[1]: lambda: torch.mv(a, v),
        TORCH_OPS[2]: lambda: torch.bmm(q, k),
    }
    return ops


def run_load(layers: list[Layer], counts: Counts, busy: BusyLoad) -> list[LoadRow]:
    """Quiet, then loaded, per sparse layer beside its dense layer."""
    rows = []
    for layer in layers:
        x = layer.inputs[0]
        ln = nn.LayerNorm(layer.in_features)
        before = lambda ln=ln, x=x: ln(x)  # noqa: E731  (the norm before the layer)
        for fmt, sp in layer.sparse.items():
            fns = {"dense": lambda d=layer.dense, x=x: d(x), "sparse": lambda s=sp, x=x: s(x)}
            busy.off()
            quiet = alternate(fns, counts, before)
            for _attempt in range(2):  # again if the load ran out during the timing
                busy.on()
                i0, t0 = busy.iterations(), time.perf_counter()
                loaded = alternate(fns, counts, before)
                rate = (busy.iterations() - i0) / (time.perf_counter() - t0)
                ok = busy.alive()
                busy.off()
                if ok:
                    break
            dq, sq = median_us(quiet["dense"]), median_us(quiet["sparse"])
            dl, sl = median_us(loaded["dense"]), median_us(loaded["sparse"])
            rq, rl = sq / dq, sl / dl
            rows.append(LoadRow(
                layer.name, fmt, round(sp.sparse_weight().density, 4), dq, sq, rq, dl, sl, rl,
                sl / sq, rl / rq, len(quiet["sparse"]), rate, ok,
            ))
    return rows


def run_interleaved(layers: list[Layer], counts: Counts) -> list[InterleavedRow]:
    """Each sparse layer alternated with each torch op, against each alone."""
    ops = torch_ops()
    rows = []
    for layer in layers:
        x = layer.inputs[0]
        # nn.Linear first, as the reference: what any layer streaming this many weight bytes
        # does to the torch op after it (caches), whatever its threads do.
        for fmt, sp in {"dense": layer.dense, **layer.sparse}.items():
            for name, op in ops.items():
                s = interleave(lambda s=sp, x=x: s(x), op, counts)
                sa, sm = median_us(s["sparse_alone"]), median_us(s["sparse_mixed"])
                oa, om = median_us(s["op_alone"]), median_us(s["op_mixed"])
                rows.append(InterleavedRow(layer.name, fmt, name, sa, sm, sm / sa - 1, oa, om,
                                           om / oa - 1, len(s["sparse_mixed"])))
    return rows


def serve(module: nn.Module, inputs: list[torch.Tensor], threads: int, calls: int,
          warmup: int) -> tuple[list[int], int, int, list[str], float]:
    """``threads`` Python threads each make ``calls`` calls to ``module``; every result is
    checked against the module's own single-caller result for that input.

    Returns (latencies ns, mismatches, bitwise diffs, errors, wall seconds).
    """
    with torch.no_grad():
        refs = [module(x) for x in inputs]
        for _ in range(warmup):
            module(inputs[0])
    lat: list[list[int]] = [[] for _ in range(threads)]
    bad = [0] * threads
    diff = [0] * threads
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        clock = time.perf_counter_ns
        with torch.no_grad():  # grad mode is per thread
            barrier.wait()
            for i in range(calls):
                j = (t + i) % len(inputs)
                try:
                    t0 = clock()
                    y = module(inputs[j])
                    lat[t].append(clock() - t0)
                except Exception as e:  # a race that raises counts as a mismatch
                    bad[t] += 1
                    errors.append(f"thread {t} call {i}: {type(e).__name__}: {e}")
                    continue
                if not torch.equal(y, refs[j]):
                    diff[t] += 1
                    if y.shape != refs[j].shape or not torch.allclose(y, refs[j], rtol=1e-5,
                                                                      atol=1e-5):
                        bad[t] += 1

    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for th in pool:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t0
    return [v for ls in lat for v in ls], sum(bad), sum(diff), errors[:5], wall


def run_serving(layers: list[Layer], counts: Counts) -> list[ServingRow]:
    """The serving condition for each sparse layer and each dense layer."""
    rows = []
    for layer in layers:
        modules: dict[str, nn.Module] = {"dense": layer.dense, **layer.sparse}
        for name, module in modules.items():
            lat, bad, diff, errors, wall = serve(module, layer.inputs, SERVING_THREADS,
                                                 counts.serving_calls, counts.warmup)
            calls = SERVING_THREADS * counts.serving_calls
            if lat:
                p50, p99 = percentile_us(lat, 0.5), percentile_us(lat, 0.99)
            else:
                p50 = p99 = float("nan")
            rows.append(ServingRow(layer.name, name, SERVING_THREADS, calls, p50, p99, p99 / p50,
                                   bad, diff, errors, wall, calls / wall))
    return rows


# --- targets, machine, report ------------------------------------------------------------------
@dataclass
class Target:
    """One of the issue's targets on one row."""

    condition: str
    row: str
    what: str
    value: float
    limit: float
    passed: bool


def targets(load: list[LoadRow], mixed: list[InterleavedRow], serving: list[ServingRow]
            ) -> list[Target]:
    """The issue's targets, each evaluated on each row it concerns."""
    out = []
    for r in load:
        row = f"{r.layer} {r.format}"
        out.append(Target("loaded", row, "sparse loaded / quiet median", r.sparse_slowdown,
                          LOADED_SLOWDOWN_MAX, r.sparse_slowdown <= LOADED_SLOWDOWN_MAX))
        drift = max(r.ratio_drift, 1 / r.ratio_drift)
        out.append(Target("loaded", row, "sparse/dense ratio, loaded vs quiet (either way)",
                          drift, LOADED_RATIO_DRIFT_MAX, drift <= LOADED_RATIO_DRIFT_MAX))
    for r in mixed:
        if r.format == "dense":  # the reference rows
            continue
        row = f"{r.layer} {r.format} + {r.op}"
        out.append(Target("interleaved", row, "sparse call slow-down", r.sparse_slowdown,
                          INTERLEAVED_SLOWDOWN_MAX, r.sparse_slowdown <= INTERLEAVED_SLOWDOWN_MAX))
        out.append(Target("interleaved", row, "torch op slow-down", r.op_slowdown,
                          INTERLEAVED_SLOWDOWN_MAX, r.op_slowdown <= INTERLEAVED_SLOWDOWN_MAX))
    dense_tail = {r.layer: r.tail for r in serving if r.module == "dense"}
    for r in serving:
        row = f"{r.layer} {r.module}"
        if r.module != "dense":
            limit = SERVING_TAIL_FACTOR_MAX * dense_tail[r.layer]
            out.append(Target("serving", row, "sparse p99/p50 (limit: 1.5 x dense p99/p50)",
                              r.tail, limit, r.tail <= limit))
        out.append(Target("serving", row, "mismatches", r.mismatches, 0, r.mismatches == 0))
    return out


def simd_level() -> str:
    """``sparse_ops._C.simd_level()`` where the extension has it, else "unknown"."""
    try:
        from sparse_ops import _C
    except ImportError:
        return "unknown (no sparse_ops._C)"
    fn = getattr(_C, "simd_level", None)
    return str(fn()) if callable(fn) else "unknown"


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "header": header(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "simd_level": simd_level(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()),
    }


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(r) + " |" for r in rows]]


def to_markdown(result: dict) -> str:
    """The report: machine, the four conditions' tables and the targets."""
    m = result["machine"]
    lines = [
        "# Sparse layers under load (issue 14)",
        "",
        f"Machine: {m.get('header', m['cpu'])}, {m['logical_cpus']} logical CPUs, SIMD "
        f"{m['simd_level']}, "
        f"torch {m['torch']}, {m['torch_threads']} torch threads; load average "
        f"{m['loadavg_start'][0]:.2f} at the start, {m['loadavg_end'][0]:.2f} at the end"
        + (" (--quick: small counts, not a measurement)" if result["quick"] else "") + ".",
        "",
        "Batch 1, eager, no_grad. Times are medians of per-call perf_counter_ns samples (us); "
        "quiet and loaded: each call right after a LayerNorm of its input, dense and sparse "
        "alternated call by call; ratio = sparse / dense (< 1: sparse faster).",
        "",
        "## Quiet and loaded (a busy 2-thread torch process beside)",
        "",
    ]
    lines += _md_table(
        ["layer (out x in)", "format", "density", "dense quiet", "sparse quiet", "ratio quiet",
         "dense loaded", "sparse loaded", "ratio loaded", "sparse loaded/quiet",
         "ratio loaded/quiet", "calls", "load exp/s"],
        [[r["layer"], r["format"], f"{r['density']:g}", f"{r['dense_quiet_us']:.1f}",
          f"{r['sparse_quiet_us']:.1f}", f"{r['ratio_quiet']:.2f}", f"{r['dense_loaded_us']:.1f}",
          f"{r['sparse_loaded_us']:.1f}", f"{r['ratio_loaded']:.2f}",
          f"{r['sparse_slowdown']:.2f}x", f"{r['ratio_drift']:.2f}x", str(r["calls"]),
          f"{r['load_iters_per_s']:.0f}"] for r in result["load"]],
    )
    lines += ["", "## Interleaved with torch ops (slow-down: alternated / alone - 1)", "",
              "The `dense` rows alternate `nn.Linear` itself with the op: the reference for what",
              "streaming the weights does to the op after them. Targets apply to the sparse rows.",
              ""]
    lines += _md_table(
        ["layer", "format", "torch op", "sparse alone", "sparse alternated", "sparse +",
         "op alone", "op alternated", "op +", "calls"],
        [[r["layer"], r["format"], r["op"], f"{r['sparse_alone_us']:.1f}",
          f"{r['sparse_mixed_us']:.1f}", f"{r['sparse_slowdown']:+.1%}", f"{r['op_alone_us']:.1f}",
          f"{r['op_mixed_us']:.1f}", f"{r['op_slowdown']:+.1%}", str(r["calls"])]
         for r in result["interleaved"]],
    )
    lines += ["", f"## Serving: {SERVING_THREADS} Python threads, one shared module", ""]
    lines += _md_table(
        ["layer", "module", "calls", "p50 us", "p99 us", "p99/p50", "mismatches",
         "bitwise diffs", "calls/s"],
        [[r["layer"], r["module"], str(r["calls"]), f"{r['p50_us']:.1f}", f"{r['p99_us']:.1f}",
          f"{r['tail']:.2f}", str(r["mismatches"]), str(r["bitwise_diffs"]),
          f"{r['calls_per_s']:.0f}"] for r in result["serving"]],
    )
    t = result["targets"]
    passed = sum(x["passed"] for x in t)
    lines += ["", f"## Targets: {passed} of {len(t)} met", ""]
    lines += _md_table(
        ["condition", "row", "target", "value", "limit", "verdict"],
        [[x["condition"], x["row"], x["what"], _fmt_value(x), _fmt_limit(x),
          "PASS" if x["passed"] else "FAIL"] for x in t],
    )
    return "\n".join(lines) + "\n"


def _fmt_value(t: dict) -> str:
    if t["what"] == "mismatches":
        return str(int(t["value"]))
    if t["condition"] == "interleaved":
        return f"{t['value']:+.1%}"
    return f"{t['value']:.2f}"


def _fmt_limit(t: dict) -> str:
    if t["what"] == "mismatches":
        return "0"
    if t["condition"] == "interleaved":
        return f"<= {t['limit']:.0%}"
    return f"<= {t['limit']:.2f}"


def run(quick: bool) -> dict:
    """Every condition on every row; the result as plain data (what load.json holds)."""
    torch.set_num_threads(THREADS)
    counts = QUICK if quick else FULL
    info = machine()
    layers = build_layers()
    busy = BusyLoad()
    t0 = time.perf_counter()
    with torch.no_grad():
        try:
            load = run_load(layers, counts, busy)
        finally:
            busy.close()
        mixed = run_interleaved(layers, counts)
    serving = run_serving(layers, counts)  # each serving thread enters no_grad itself
    info["loadavg_end"] = list(os.getloadavg())
    tg = targets(load, mixed, serving)
    return {
        "machine": info,
        "quick": quick,
        "threads": THREADS,
        "layers": [f"{o}x{i}" for o, i in LAYERS],
        "formats": list(FORMATS),
        "torch_ops": list(TORCH_OPS),
        "busy_process_starts": busy.starts,
        "seconds": time.perf_counter() - t0,
        "load": [asdict(r) for r in load],
        "interleaved": [asdict(r) for r in mixed],
        "serving": [asdict(r) for r in serving],
        "targets": [asdict(x) for x in tg],
        "all_targets_met": all(x.passed for x in tg),
    }


def main(argv: list[str] | None = None) -> int:
    """The CLI: run, print the report, write load.md and load.json."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run (< 30 s)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where load.md / load.json go (default bench/out/<cpu>-<simd>)")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is not met")
    args = ap.parse_args(argv)
    result = run(args.quick)
    md = to_markdown(result)
    print(md)
    out = args.out if args.out is not None else out_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.md").write_text(md)
    (out / "load.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'load.md'} and load.json ({result['seconds']:.0f} s)")
    return 1 if args.strict and not result["all_targets_met"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
