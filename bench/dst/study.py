"""The Fantastic Weights comparison: every pruning criterion x growth x density x seed.

One run trains an MLP ``in → 128 → 128 → 10`` (SGD, momentum 0.9) on a task and reports its
test accuracy. Modes: ``dense`` (nn.Linear), ``static`` (sparse, fixed mask) and DST with each
pruning criterion and ``gradient`` or ``random`` growth (cosine drop fraction, ERK densities).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

import sparse_ops as so

from .tasks import load

CRITERIA = so.dst.PRUNE_CRITERIA


@dataclass
class StudyConfig:
    tasks: tuple[str, ...] = ("digits", "teacher")
    densities: tuple[float, ...] = (0.5, 0.2, 0.1, 0.05, 0.02)
    criteria: tuple[str, ...] = CRITERIA
    growth: tuple[str, ...] = ("gradient", "random")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 600
    batch: int = 64
    hidden: int = 128
    lr: float = 0.05
    update_every: int = 50
    drop_fraction: float = 0.3
    stop_frac: float = 0.75
    distribution: str = "erk"
    threads: int = 1  # tiny layers: one thread beats two (no OpenMP barriers)
    extra: dict = field(default_factory=dict)

    @classmethod
    def quick(cls) -> StudyConfig:
        """The reduced grid of ``--quick``: two densities, two seeds, shorter runs."""
        return cls(densities=(0.5, 0.05), seeds=(0, 1), steps=250, growth=("gradient",),
                   update_every=25)


def _model(d_in: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, classes))


def _sparsify(model: nn.Module, density: float, distribution: str) -> nn.Module:
    if "distribution" in inspect.signature(so.sparsify).parameters:
        return so.sparsify(model, "csr", density=density, distribution=distribution)
    return so.sparsify(model, "csr", density=density)  # uniform only


def run_one(cfg: StudyConfig, task: str, data, density: float | None, mode: str,
            grow: str | None, seed: int) -> dict:
    """Train one network; returns its test accuracy and timing. ``mode``: ``"dense"``,
    ``"static"`` or a pruning criterion."""
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(seed)
    model = _model(x_tr.shape[1], cfg.hidden, int(y_tr.max()) + 1)
    if mode != "dense":
        model = _sparsify(model, density, cfg.distribution)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    dst = None
    if mode not in ("dense", "static"):
        dst = so.dst.DynamicSparsity(
            model, opt, prune=mode, grow=grow, update_every=cfg.update_every,
            drop_fraction=cfg.drop_fraction, schedule="cosine",
            stop_at=int(cfg.stop_frac * cfg.steps), seed=seed,
        )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    g = torch.Generator().manual_seed(1000 + seed)
    n = len(x_tr)
    order = torch.randperm(n, generator=g)
    pos = 0
    start = time.perf_counter()
    for _ in range(cfg.steps):
        if pos + cfg.batch > n:
            order, pos = torch.randperm(n, generator=g), 0
        idx = order[pos:pos + cfg.batch]
        pos += cfg.batch
        loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
        loss.backward()
        opt.step()
        if dst is not None:
            dst.step()
        opt.zero_grad()
        sched.step()
    elapsed = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        acc = float((model(x_te).argmax(1) == y_te).float().mean())
    swapped = sum(s["total_swapped"] for s in dst.stats().values()) if dst is not None else 0
    return {"task": task, "density": density, "mode": mode, "grow": grow, "seed": seed,
            "acc": acc, "seconds": elapsed, "swapped": swapped}


def run_study(cfg: StudyConfig, log=print) -> dict:
    """Every run of the grid; returns ``{"config", "runs", "seconds"}``."""
    torch.set_num_threads(cfg.threads)
    runs = []
    start = time.perf_counter()
    for task in cfg.tasks:
        data = load(task, 0)
        for seed in cfg.seeds:
            runs.append(run_one(cfg, task, data, None, "dense", None, seed))
        for density in cfg.densities:
            for seed in cfg.seeds:
                runs.append(run_one(cfg, task, data, density, "static", None, seed))
                for grow in cfg.growth:
                    for crit in cfg.criteria:
                        runs.append(run_one(cfg, task, data, density, crit, grow, seed))
            done = [r for r in runs if r["task"] == task and r["density"] == density]
            log(f"  {task} density {density}: {len(done)} runs, "
                f"{time.perf_counter() - start:.0f} s so far")
    return {"config": asdict(cfg), "runs": runs, "seconds": time.perf_counter() - start}
