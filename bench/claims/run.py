"""One claims run: measure the machine, build the preset, run every claim's jobs under one
progress bar, analyse, compare simulator and kernels, write the report."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from sparse_ops.matmul import default_backend

from . import agreement, breakeven, energy, imbalance, machine, model_row, nm, report, training
from . import bytes as bytes_claims
from .config import Sizes
from .lab import Lab
from .preset import make_preset
from .result import ClaimResult
from .workloads import Job

# (jobs of the claim, analysis of the claim), in claim order.
EXPERIMENTS: list[tuple[Callable[[Sizes], list[Job]], Callable[[Lab], ClaimResult]]] = [
    (breakeven.jobs_claim1, breakeven.analyse_claim1),
    (breakeven.jobs_claim2, breakeven.analyse_claim2),
    (nm.jobs, nm.analyse),
    (bytes_claims.jobs_claim4, bytes_claims.analyse_claim4),
    (lambda sizes: [], bytes_claims.analyse_claim5),
    (imbalance.jobs, imbalance.analyse),
    (energy.jobs, energy.analyse),
    (training.jobs, training.analyse),
]


def all_jobs(sizes: Sizes) -> list[Job]:
    """Every job of every claim, each once, in first-asked order."""
    seen: dict[Job, None] = {}
    for jobs, _ in EXPERIMENTS:
        for j in jobs(sizes):
            seen.setdefault(j, None)
    return list(seen)


def run_claims(sizes: Sizes, device: str, out: Path, seed: int = 0,
               backend: str | None = None, command: str = "python -m bench.claims",
               progress: bool = True) -> dict[str, Path]:
    """Run every claim at ``sizes`` on ``device`` and write the report into ``out``.

    Returns the written paths (``md``, ``json``, ``csv``, ``plots``).
    """
    t0 = time.perf_counter()
    others0 = machine.others_cpu_seconds()
    torch.manual_seed(seed)
    dtype = torch.float16 if device == "cuda" else torch.float32
    jobs = all_jobs(sizes)
    bar = tqdm(total=len(jobs) + 2, desc="claims", unit="step", disable=not progress)
    bar.set_postfix_str("measuring the machine")
    elem = torch.empty((), dtype=dtype).element_size()
    mach = machine.measure(device, dtype, sizes.peak_side, sizes.rows * sizes.cols * elem,
                           sizes.dram_copy_mib)
    bar.update(1)
    preset = make_preset(mach, word_bytes=elem)
    lab = Lab(sizes=sizes, device=device, dtype=dtype, machine=mach, preset=preset,
              seed=seed, backend=backend)
    lab.run(jobs, bar)
    bar.set_postfix_str("analysis and report")
    results = [analyse(lab) for _, analyse in EXPERIMENTS]
    _tag_cells(lab)
    agree, dense_cal = agreement.compare(lab)
    bar.set_postfix_str("simulating the sparsified Llama")
    model = model_row.model_rows(sizes, mach, preset)
    wall = time.perf_counter() - t0
    others = (machine.others_cpu_seconds() - others0) / (wall * mach.cores)
    info = report.RunInfo(
        mode=sizes.name, device=device, dtype=str(dtype).replace("torch.", ""), seed=seed,
        backend=backend or default_backend(torch.device(device)),
        seconds=wall, date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        command=command, others_cpu_share=others,
        disturbed_cells=sum(c.extra.get("others_cpu_share", 0) > 0.1
                            for c in lab.cells.values()),
        timed_cells=sum(c.speedup is not None for c in lab.cells.values()),
    )
    paths = report.write(out, results, agree, dense_cal, mach, preset, sizes, info,
                         list(lab.cells.values()), model=model)
    bar.update(1)
    bar.close()
    return paths


def _tag_cells(lab: Lab) -> None:
    """Name each cell's experiment: the claims whose jobs include it."""
    for number, (jobs, _) in enumerate(EXPERIMENTS, start=1):
        for job in jobs(lab.sizes):
            cell = lab.cells.get(job)
            if cell is not None:
                tags = [t for t in cell.experiment.split(",") if t]
                if str(number) not in tags:
                    cell.experiment = ",".join(tags + [str(number)])
