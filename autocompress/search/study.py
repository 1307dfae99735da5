"""Optuna study set-up (storage in the run dir, each process's seeded sampler), what the
study is told of a record (objective values; constraints as fractions of their limits), and
the cheapest candidate of a space.

The storage is Optuna's journal file (``study.journal``, ``search/journal.py``): an
append-only log under an ``flock``, safe for several worker processes, and about 5x cheaper
per trial than SQLite here (an ask, 40 suggestions and a tell: 12 ms against 60 ms). A run dir
made before it, with a ``study.db``, keeps its SQLite study on resume."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from autocompress.config import SearchConfig, pareto_objectives
from autocompress.search.journal import journal_storage
from autocompress.search.records import TrialRecord
from autocompress.space import ResolvedSpace
from autocompress.space.distributions import Choice, Fixed
from autocompress.space.knobs import cheap_end

STARTUP_TRIALS = 10   # TPE's and GP's random start-up trials (enqueued ones count)


def storage_for(run_dir: Path) -> Any:
    """The run's study storage: its SQLite ``study.db`` if it has one (made before the
    journal), else the journal file (``search/journal.py``)."""
    import optuna

    db = run_dir / "study.db"
    if db.exists():   # SQLite waits up to 60 s for a lock instead of failing at once
        return optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}",
                                          engine_kwargs={"connect_args": {"timeout": 60}})
    return journal_storage(run_dir)


def sampler_seed(seed: int, trials: int, worker: int) -> int:
    """The seed of one process's sampler. Optuna keeps no sampler state in the storage, so
    every process that opens the study starts its sampler afresh: with the same seed, a
    second worker would draw the first one's random (start-up) parameters again, and a resumed
    run the draws it made before the kill. Only the first process of a new study takes the
    run's seed as it is (one worker: the same seed gives the same parameters); the others
    derive one from it, the trials already in the study and the worker's index.

    >>> sampler_seed(7, 0, 0), sampler_seed(7, 12, 0) != sampler_seed(7, 12, 1)
    (7, True)
    """
    if trials == 0 and worker == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed % 2**32, trials, worker]).generate_state(1)[0])


def make_study(cfg: SearchConfig, objectives: tuple[str, ...], run_dir: Path, *,
               resume: bool, worker: int = 0) -> Any:
    """Create (or, with ``resume``, reopen) the run's study, its sampler seeded for this
    process (``sampler_seed``; ``worker`` is the process's index, 0 for the main one)."""
    import warnings

    import optuna

    # optuna sets its own logger to INFO when first imported: quiet it after the import
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {
        "tpe": lambda seed: optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=STARTUP_TRIALS),
        # Gaussian process with log expected hypervolume improvement; sees the constraints
        # set on each trial like TPE does (needs scipy, which scikit-learn brings)
        "gp": lambda seed: optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS),
        "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=20),
        "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    }
    make = samplers[cfg.search.sampler]
    directions = ["maximize" if o == "accuracy" else "minimize" for o in objectives]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(study_name=cfg.name, storage=storage_for(run_dir),
                                    sampler=make(cfg.seed), directions=directions,
                                    load_if_exists=resume)
        seed = sampler_seed(cfg.seed, len(study.get_trials(deepcopy=False)), worker)
        if seed != cfg.seed:
            study.sampler = make(seed)
    return study


def objective_values(rec: TrialRecord, objectives: tuple[str, ...]) -> list[float]:
    """Objective vector of a record. An infeasible (untrained) candidate gets accuracy 0;
    its violated constraints keep it off the front either way."""
    data, out = rec.to_dict(), []
    for obj in pareto_objectives(objectives):
        value = obj.get(data)
        if value is None and obj.name != "accuracy":
            raise ValueError(f"trial {rec.number} has no {obj.path} to tell the study")
        out.append(0.0 if value is None else value)
    return out


def relative_constraints(rec: TrialRecord) -> dict[str, float]:
    """The record's constraints (``value - limit`` in the budget's unit) as a fraction of
    the limit, as the sampler is told them: TPE and NSGA-II rank infeasible trials by the
    sum of violations, where 1 KB of Flash over must not weigh what 1 ms over does. The sign,
    so feasibility, is unchanged; the records keep the raw values.

    >>> rec = TrialRecord(number=0, state="infeasible", params={}, seed=0,
    ...     cost={"m": {"latency_ms": 15.0, "flash_kb": 500.0}},
    ...     constraints={"m.max_latency_ms": 5.0, "m.max_flash_kb": -500.0})
    >>> relative_constraints(rec)
    {'m.max_latency_ms': 0.5, 'm.max_flash_kb': -0.5}
    """
    from autocompress.hardware.cost import BUDGET_KEYS

    out: dict[str, float] = {}
    for key, excess in rec.constraints.items():
        prof, _, budget = key.partition(".")
        value = (rec.cost.get(prof) or {}).get(BUDGET_KEYS.get(budget, ""))
        limit = None if value is None else value - excess
        out[key] = excess / limit if limit else excess
    return out


def _extreme(dist: Any, *, high: bool) -> Any:
    values = sorted(dist.choices) if isinstance(dist, Choice) else sorted(dist.values())
    return values[-1] if high else values[0]


def _fewest_clusters(dist: Any) -> int:
    """The smallest k that clusters (k >= 2), else the smallest k there is.

    >>> from autocompress.space.distributions import Range
    >>> _fewest_clusters(Choice(choices=(0, 16, 4))), _fewest_clusters(Choice(choices=(0,)))
    (4, 0)
    >>> _fewest_clusters(Range(low=0, high=64, step=8))
    8
    """
    if isinstance(dist, Choice):
        return min((k for k in dist.choices if k >= 2), default=min(dist.choices))
    low, high = dist.low, dist.high
    step = dist.step or 1
    first = low if low >= 2 else low + step * math.ceil((2 - low) / step)
    return int(first if first <= high else low)


def cheapest_params(rspace: ResolvedSpace) -> dict[str, Any]:
    """The smallest candidate: narrowest/shallowest arch, most pruning and sparsity, fewest
    bits, fewest weight clusters (k >= 2: k 0 or 1 means no clustering); each knob's cheap
    end is in ``space/knobs.py``."""
    out: dict[str, Any] = {}
    for name, dist in rspace.dists.items():
        if isinstance(dist, Fixed):
            continue
        end = cheap_end(name)
        out[name] = (_fewest_clusters(dist) if end == "clusters"
                     else _extreme(dist, high=end == "high"))
    return out
