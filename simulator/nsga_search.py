"""Multi-objective search of a design space with Optuna's NSGA-II, instead of a full grid.

Each generation asks ``chunk`` trials of the sampler, turns them into design points (list
axes are categorical choices, ``Range`` axes integer or float suggestions, the sparsity
options one categorical choice), evaluates them together on the same executors as ``sweep``
(local processes or Dask) and tells the objective values back. Trials whose combination is
not a valid architecture are told as failed. With ``out=DIR`` results are stored and reused
like a sweep's, so a search resumes, and points seen before are not simulated again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .area import AreaTable
from .design_point import DesignPoint
from .energy import EnergyTable
from .pareto import DEFAULT_OBJECTIVES, objective_matrix, pareto
from .results_store import ResultsStore
from .space import Range, Space, SpaceError, load_space
from .sweep import make_executor, run_points, workload_spec
from .workload import Layer


@dataclass
class SearchResult:
    """Rows of every evaluated trial (in trial order), their Pareto front, and the study."""

    rows: list[dict[str, Any]]
    front: list[dict[str, Any]]
    study: Any = field(repr=False, default=None)


def _suggest(trial: Any, space: Space) -> tuple[dict[str, Any], Any]:
    values: dict[str, Any] = {}
    for k, axis in space.axes.items():
        if isinstance(axis, Range):
            if axis.integer:
                step = int(axis.step) if axis.step else 1
                values[k] = trial.suggest_int(k, int(axis.low), int(axis.high), step=step,
                                              log=axis.log)
            else:
                values[k] = trial.suggest_float(k, axis.low, axis.high, step=axis.step,
                                                log=axis.log)
        else:
            values[k] = axis[trial.suggest_categorical(k, list(range(len(axis))))]
    option = None
    if space.sparsity:
        labels = [o.label for o in space.sparsity]
        option = space.sparsity[labels.index(trial.suggest_categorical("sparsity", labels))]
    return values, option


def search(space: Space | str | Path, workload: Layer | list[Layer], *, trials: int = 100,
           chunk: int | None = None, objectives: tuple[str, ...] = DEFAULT_OBJECTIVES,
           executor: Any = "local", address: str | None = None, processes: int | None = None,
           n_workers: int | None = None, out: str | Path | None = None,
           seed: int | None = None, sampler_seed: int = 0,
           energy_table: EnergyTable | str | Path | None = None,
           area_table: AreaTable | str | Path | None = None,
           progress: bool = True) -> SearchResult:
    """Search ``space`` for the Pareto front of ``objectives`` (all minimised) with NSGA-II.

    Args:
        space: a ``Space`` or a space file path.
        workload: the layers each point runs.
        trials: trials in all.
        chunk: trials asked and evaluated together (one generation; default: the sampler's
            population, ``max(8, 4 * workers)``).
        objectives: row columns to minimise.
        executor, address, processes, n_workers, out: as for ``sweep``.
        seed: pattern seed (default: the space file's).
        sampler_seed: seed of the NSGA-II sampler (same seed, same trials).
    """
    import optuna

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be an integer >= 1, got {trials!r}")
    if not isinstance(space, Space):
        space = load_space(space)
    spec = workload_spec(workload, seed=space.seed if seed is None else seed,
                         energy_table=energy_table, area_table=area_table)
    store = ResultsStore(out) if out is not None else None
    ex = make_executor(executor, processes=processes, address=address, n_workers=n_workers)
    try:
        size = chunk or max(8, 4 * ex.workers)
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ValueError(f"chunk must be an integer >= 2 for a search, got {size!r}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.NSGAIISampler(population_size=size, seed=sampler_seed)
        study = optuna.create_study(directions=["minimize"] * len(objectives),
                                    sampler=sampler)
        rows: list[dict[str, Any]] = []
        from tqdm import tqdm

        bar = tqdm(total=trials, desc="search", unit="trial", disable=not progress)
        try:
            while len(study.trials) < trials:
                n = min(size, trials - len(study.trials))
                asked, points = [], []
                for _ in range(n):
                    trial = study.ask()
                    values, option = _suggest(trial, space)
                    try:
                        arch = space.arch_for(values, option)
                    except SpaceError:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                        continue
                    asked.append(trial)
                    points.append(DesignPoint(arch, option.density if option else None))
                got = run_points(points, spec, ex, out=store, progress=False) if points else []
                values_ = objective_matrix(got, objectives) if got else []
                for trial, row, vals in zip(asked, got, values_, strict=True):
                    row = {**row, "point": len(rows), "trial": trial.number}
                    rows.append(row)
                    study.tell(trial, [float(v) for v in vals])
                bar.update(n)
        finally:
            bar.close()
    finally:
        if ex is not executor:
            ex.close()
    if not rows:
        raise ValueError("no trial gave a valid architecture: check the space")
    return SearchResult(rows, pareto(rows, objectives), study)

