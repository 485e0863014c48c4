"""Runs jobs: times each sparse product and its dense equivalent in the same breath, and
simulates both on the preset. One progress bar over all jobs of a run.

Dense equivalents (what "dense" means in every ratio):

- ``spmm``  ``Y = S @ X``: ``torch.mm(W, X)`` with the full dense ``W (rows, cols)``;
- ``spmm_t`` ``Z = S^T @ dY``: ``torch.mm(W.t(), dY)``;
- ``sddmm`` ``dS = (dY @ X^T) at S's nonzeros``: ``torch.mm(dY, X.t())`` then multiplied by the
  0/1 mask, as masked dense training computes a sparse weight's gradient.

Speedups are ``dense time / sparse time`` (> 1: sparse faster); simulated speedups are
``dense elapsed cycles / sparse elapsed cycles`` on the preset.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

import sparse_accel_sim as sim
import sparse_ops as so
from bench.timing import median_seconds
from sparse_ops.matmul import product_ops
from sparse_ops.registry import get_layout

from .config import Sizes
from .machine import Machine, others_cpu_seconds
from .preset import Preset, sparse_arch
from .result import Cell
from .workloads import Job, Spec, Workload, base_weight, build

DISTURBED = 0.1   # share of the CPU other processes may take while a cell is timed


@dataclass
class SimPair:
    """The simulator's results for the dense and the sparse version of one job."""

    dense: sim.Result
    sparse: sim.Result


@dataclass
class Lab:
    """Everything a run shares: sizes, device, the preset, the base weight, the results."""

    sizes: Sizes
    device: str
    dtype: torch.dtype
    machine: Machine
    preset: Preset
    seed: int = 0
    backend: str | None = None
    cells: dict[Job, Cell] = field(default_factory=dict)
    sims: dict[Job, SimPair] = field(default_factory=dict)
    _dense_sim: dict[tuple, sim.Result] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = base_weight(self.sizes.rows, self.sizes.cols, self.seed)
        self.dense_w = self.base.to(device=self.device, dtype=self.dtype)
        self._operands: dict[tuple[str, int], torch.Tensor] = {}
        self._t0 = time.perf_counter()

    # --- operands -------------------------------------------------------------------------
    def operand(self, which: str, batch: int) -> torch.Tensor:
        """Seeded dense operand ``x (cols, batch)`` or ``dy (rows, batch)``, row-major."""
        key = (which, batch)
        if key not in self._operands:
            g = torch.Generator().manual_seed(self.seed * 7919 + batch * 2 + (which == "dy"))
            n = self.sizes.cols if which == "x" else self.sizes.rows
            self._operands[key] = torch.randn(n, batch, generator=g).to(
                device=self.device, dtype=self.dtype)
        return self._operands[key]

    # --- running --------------------------------------------------------------------------
    def run(self, jobs: Iterable[Job], bar: tqdm | None = None) -> None:
        """Measure and simulate every job not done yet, spec by spec (each built once)."""
        todo: dict[Spec, list[Job]] = {}
        for job in jobs:
            if job not in self.cells and job not in todo.get(job.spec, []):
                todo.setdefault(job.spec, []).append(job)
        for spec, spec_jobs in todo.items():
            if bar is not None:
                bar.set_postfix_str(spec.fmt + f" d={spec.density:g}")
            work = build(spec, self.base, self.device, self.dtype, self.seed)
            for job in spec_jobs:
                self.cells[job] = self._run_job(job, work)
                if bar is not None:
                    bar.update(1)
            del work

    def _run_job(self, job: Job, work: Workload) -> Cell:
        s, spec = work.sparse, job.spec
        cell = Cell(
            experiment="", fmt=spec.fmt, layout=spec.layout, block=spec.block,
            density=s.density, batch=job.batch, rows=s.shape[0], cols=s.shape[1],
            product=job.product, pattern=spec.pattern, sparse_bytes=s.nbytes,
            dense_bytes=self.dense_w.numel() * self.dense_w.element_size(),
        )
        cell.extra["nnz"] = s.nnz
        if job.balance:
            cell.extra["balance"] = True
        if job.measure:
            sparse_fn, dense_fn = self._callables(job, work)
            cell.dense_s, cell.sparse_s, others = self._time_pair(dense_fn, sparse_fn)
            cell.extra["others_cpu_share"] = others
            cell.speedup = cell.dense_s / cell.sparse_s
            useful = 2 * s.nnz * job.batch
            cell.extra["sparse_gflops"] = useful / cell.sparse_s / 1e9
            cell.extra["dense_gflops"] = 2 * s.shape[0] * s.shape[1] * job.batch / \
                cell.dense_s / 1e9
        pair = self._simulate(job, work)
        self.sims[job] = pair
        cell.sim_dense_cycles = pair.dense.elapsed_cycles
        cell.sim_sparse_cycles = pair.sparse.elapsed_cycles
        cell.sim_speedup = pair.dense.elapsed_cycles / max(pair.sparse.elapsed_cycles, 1)
        cell.sim_utilization = pair.sparse.utilization
        cell.extra["sim_stall_share"] = pair.sparse.stall_cycles / max(
            pair.sparse.elapsed_cycles, 1)
        return cell

    def _time_pair(self, dense_fn: Callable[[], object],
                   sparse_fn: Callable[[], object]) -> tuple[float, float, float]:
        """Seconds of the dense and the sparse call, and the share of the machine other
        processes took meanwhile.

        ``rounds`` alternating medians of each, and the median of those, so both sides see
        the same spells of load. A measurement during which other processes took more than
        ``DISTURBED`` of the CPU is repeated (up to ``sizes.attempts`` times in all); the least
        disturbed attempt counts. Once the run is ``sizes.retry_budget_s`` old it stops
        re-timing, to bound its length on a busy machine.
        """
        best: tuple[float, float, float] | None = None
        for attempt in range(self.sizes.attempts):
            if attempt and time.perf_counter() - self._t0 > self.sizes.retry_budget_s:
                break
            others0, t0 = others_cpu_seconds(), time.perf_counter()
            dense, sparse = [], []
            with torch.no_grad():
                for _ in range(self.sizes.rounds):
                    dense.append(median_seconds(dense_fn, self.device, self.sizes.repeat,
                                                min_time=self.sizes.min_time))
                    sparse.append(median_seconds(sparse_fn, self.device, self.sizes.repeat,
                                                 min_time=self.sizes.min_time))
            wall = time.perf_counter() - t0
            share = (others_cpu_seconds() - others0) / (wall * self.machine.cores)
            if best is None or share < best[2]:
                best = (statistics.median(dense), statistics.median(sparse), share)
            if share <= DISTURBED:
                break
        assert best is not None
        return best

    def _callables(self, job: Job, work: Workload) -> tuple[Callable, Callable]:
        """(sparse call, dense call) of ``job``'s product; the sparse one on the default
        (fast) backend unless ``backend`` was set."""
        s, w = work.sparse, self.dense_w
        x, dy = self.operand("x", job.batch), self.operand("dy", job.batch)
        if job.product == "spmm":
            return (lambda: so.matmul(s, x, backend=self.backend)), (lambda: torch.mm(w, x))
        ops = product_ops(s.layout, self.backend, torch.device(self.device))
        struct, params = s.structure(), s.params()
        if job.product == "spmm_t":
            cols = s.shape[1]
            return (lambda: ops.spmm_t(*struct, s.values, dy, cols, *params),
                    lambda: torch.mm(w.t(), dy))
        maskf = work.mask.to(self.dtype)
        return (lambda: ops.sddmm(*struct, dy, x, *params),
                lambda: torch.mm(dy, x.t()).mul_(maskf))

    def _simulate(self, job: Job, work: Workload) -> SimPair:
        """Dense and sparse simulation of ``job`` on the preset (dense results cached).

        ``spmm``: GEMM M = batch, K = in, N = out, weight ``S.T``; ``spmm_t``: K = out,
        N = in, weight ``S`` (an N:M weight runs as unstructured CSR: its groups do not run
        along this reduction); ``sddmm``: ``simulate_sddmm`` with M = out, K = batch, N = in and
        output mask ``S != 0``, against the dense array computing every output.
        """
        spec = job.spec
        rows, cols = self.sizes.rows, self.sizes.cols
        layout = spec.layout
        if get_layout(layout).family == "nm" and job.product == "spmm_t":
            layout = "csr"
        base = self.preset.arch
        if job.sram_kb is not None:
            base = base.with_(ifmap_sram_kb=job.sram_kb, filter_sram_kb=job.sram_kb,
                              ofmap_sram_kb=job.sram_kb)
        arch = sparse_arch(base, layout, spec.block, (spec.n, spec.m) if spec.n else (2, 4),
                           job.balance)
        if job.product == "sddmm":
            mask = work.mask.cpu().numpy()
            key = ("sddmm", rows, job.batch, cols, job.sram_kb)
            if key not in self._dense_sim:
                self._dense_sim[key] = sim.simulate_sddmm(base, rows, job.batch, cols, mask,
                                                          name="dense sddmm")
            sparse = sim.simulate_sddmm(arch, rows, job.batch, cols, mask, name=spec.fmt)
            return SimPair(dense=self._dense_sim[key], sparse=sparse)
        k, n = (rows, cols) if job.product == "spmm_t" else (cols, rows)
        key = ("gemm", job.batch, k, n, job.sram_kb)
        if key not in self._dense_sim:
            self._dense_sim[key] = sim.simulate_gemm(base, job.batch, k, n, name="dense")
        sparse = sim.simulate_gemm(arch, job.batch, k, n, work.sim_weight(job.product),
                                   name=spec.fmt)
        return SimPair(dense=self._dense_sim[key], sparse=sparse)

    def cell(self, job: Job) -> Cell:
        """The cell of a job that has run."""
        return self.cells[job]
