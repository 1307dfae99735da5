"""Optuna backend: ask/tell loop over the resolved space, constraints told to the sampler,
every trial appended to records.jsonl before the next one starts."""
from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autocompress.config import SearchConfig
from autocompress.errors import ConfigError
from autocompress.pareto import ParetoFront
from autocompress.search.objective import cost_plan, run_trial
from autocompress.search.progress import Progress
from autocompress.search.records import TrialRecord, append_record, read_records
from autocompress.search.rundir import environment, prepare_run_dir, write_json, write_yaml
from autocompress.search.setup import SearchContext, build_context
from autocompress.search.study import baselines_for, cheapest_params, make_study, objective_values
from autocompress.train import TrainSettings, get_teacher


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    records: list[dict[str, Any]]
    front: ParetoFront


def check_budget_reachable(ctx: SearchContext) -> None:
    """Refuse, before any training, a budget that even the cheapest candidate misses."""
    if not ctx.budgets:
        return
    params = cheapest_params(ctx.rspace)
    plan = ctx.rspace.to_plan(params)
    _, costs, constraints = cost_plan(ctx, plan, ctx.cfg.seed)
    over = {k: v for k, v in constraints.items() if v > 0}
    if over:
        parts = []
        for key, excess in over.items():
            prof, metric = key.split(".", 1)
            value = costs[prof].summary()[metric.removeprefix("max_")]
            parts.append(f"{key} needs {value:.2f} > limit {value - excess:.2f}")
        raise ConfigError("no candidate in the space can meet the budget: the cheapest one "
                          f"({'; '.join(parts)})", loc=f"{ctx.cfg.path} hardware.budgets",
                          hint="raise the limits or allow smaller models in the search space")


def run_search(cfg: SearchConfig, run_dir: Path, *, trials: int | None = None,
               baselines: bool = True, quiet: bool = False, resume: bool = False) -> SearchResult:
    torch.set_num_threads(cfg.search.threads)
    ctx = build_context(cfg)
    check_budget_reachable(ctx)
    prepare_run_dir(run_dir, resume=resume)
    if not resume:
        shutil.copyfile(cfg.space_path(), run_dir / "space.yaml")
        resolved = cfg.to_dict()
        resolved["model"]["space"] = "space.yaml"
        write_yaml(run_dir / "config.resolved.yaml", resolved,
                   header=f"# resolved from {cfg.path}; every default filled in\n")
        env = environment(cfg.seed, {n: p.sha256 for n, p in ctx.profiles.items()})
        env["config_dir"] = str(Path(cfg.base_dir).resolve())
        write_json(run_dir / "env.json", env)
    records_path = run_dir / "records.jsonl"
    progress = Progress(total=0, profile=cfg.hardware.profiles[0], quiet=quiet)
    progress.say(f"run dir {run_dir}  ({len(ctx.rspace.distributions())} searched parameters, "
                 f"profiles {', '.join(ctx.profiles)})")
    tc = cfg.teacher
    teacher = get_teacher(run_dir, ctx.data, widths=tc.widths, seed=cfg.seed,
                          settings=TrainSettings(epochs=tc.epochs, lr=tc.lr,
                                                 batch_size=cfg.train.batch_size))
    progress.say(f"teacher {teacher.key}: val accuracy {teacher.val_accuracy:.3f}")

    logging.getLogger("optuna").setLevel(logging.WARNING)
    study = make_study(cfg, ctx.objectives, run_dir, resume=resume)
    done = {t.number for t in study.trials if t.state.is_finished()}
    pending_baselines: Mapping[str, dict[str, Any]] = {}
    if baselines and not resume:
        pending_baselines = baselines_for(ctx.rspace)
        for name, params in pending_baselines.items():
            study.enqueue_trial(params, user_attrs={"baseline": name})
    n_trials = trials or cfg.search.trials
    progress.total = n_trials + len(pending_baselines)
    progress.done = len(done)
    records = read_records(records_path)
    dists = ctx.rspace.distributions()
    while len([t for t in study.trials if t.state.is_finished()]) < progress.total:
        trial = study.ask(dists)
        baseline = trial.user_attrs.get("baseline")
        seed = cfg.seed + trial.number
        rec = run_trial(ctx, teacher, trial.params, number=trial.number, seed=seed,
                        baseline=baseline, trial_dir=run_dir / "trials" / str(trial.number))
        _tell(study, trial, rec, ctx.objectives)
        append_record(records_path, rec)
        records.append(rec.to_dict())
        front = ParetoFront.from_records(records, _pareto_objectives(ctx.objectives),
                                         _budgets(cfg))
        progress.trial(rec, len(front.points))
    records = read_records(records_path)
    front = ParetoFront.from_records(records, _pareto_objectives(ctx.objectives), _budgets(cfg))
    return SearchResult(run_dir=run_dir, records=records, front=front)


def _tell(study: Any, trial: Any, rec: TrialRecord, objectives: tuple[str, ...]) -> None:
    import optuna

    if rec.state == "failed":
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    for key, value in rec.constraints.items():
        trial.set_constraint(key, value)
    study.tell(trial, objective_values(rec, objectives))


def _pareto_objectives(objectives: tuple[str, ...]) -> list[Any]:
    from autocompress.pareto import Objective

    out = []
    for name in objectives:
        if name == "accuracy":
            out.append(Objective(name="accuracy", sense="max", path="metrics.accuracy"))
        else:
            prof, metric = name.split(".", 1)
            out.append(Objective(name=name, sense="min", path=f"cost.{prof}.{metric}"))
    return out


def _budgets(cfg: SearchConfig) -> list[Any]:
    from autocompress.pareto import Budget

    return [Budget(profile=prof, metric=key.removeprefix("max_"), limit=float(limit))
            for prof, limits in cfg.hardware.budgets.items() for key, limit in limits.items()]
