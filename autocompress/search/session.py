"""A search session, the same for both backends and every worker process: check the config,
write the run files, train or load the teacher, open the study (recovering trials a crash left
running, enqueueing baselines and the start-up design: ``recovery``) and fix the target trial
count; and the end of a run (``finish``)."""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from autocompress.budgets import DEVICE_FILE, budgets_of
from autocompress.config import SearchConfig, lead_profile, pareto_objectives
from autocompress.config_checks import check_new_run, field_loc
from autocompress.data import scale_hint
from autocompress.errors import ConfigError
from autocompress.pareto import ParetoFront
from autocompress.search import user_code
from autocompress.search.baselines import baselines as all_baselines
from autocompress.search.early_stop import EarlyStopping, FileBoard, chance_level, rung_report
from autocompress.search.initial import NOTE, spread_design
from autocompress.search.progress import Progress
from autocompress.search.ray_reap import reap_previous_ray
from autocompress.search.records import RecordLog, counted, interrupted, read_records
from autocompress.search.recovery import enqueue, recover
from autocompress.search.reduce import Reduction, check_budget_reachable
from autocompress.search.rundir import (
    REDUCTION_FILE,
    check_run_files,
    check_study_files,
    environment,
    prepare_run_dir,
    record_resume,
    run_file_hashes,
    write_json,
    write_yaml,
)
from autocompress.search.sampling import infeasible_trend
from autocompress.search.setup import SearchContext, build_context
from autocompress.search.study import (
    STARTUP_TRIALS,
    make_study,
)
from autocompress.stats import binomial_se
from autocompress.train import Teacher, TrainSettings, get_teacher, weak_teacher_warning
from autocompress.train.augment import from_config
from autocompress.train.device import device_problem, training_device
from autocompress.train.teacher import UserTeacher


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    records: list[dict[str, Any]]     # records.jsonl's, latest per trial number
    front: ParetoFront                # select(), knee(), points, to_dataframe()
    report: tuple[Path, ...] = ()     # the report files written

    def __repr__(self) -> str:        # the records hold per-layer costs: hundreds of KB
        return (f"SearchResult(run_dir={str(self.run_dir)!r}, {len(self.records)} records, "
                f"front: {[p.get('number') for p in self.front.points]})")


def _write_run_files(cfg: SearchConfig, ctx: SearchContext, run_dir: Path,
                     launch: dict[str, Any] | None = None) -> None:
    shutil.copyfile(cfg.space_path(), run_dir / "space.yaml")
    resolved = cfg.to_dict()
    resolved["model"]["space"] = "space.yaml"
    write_yaml(run_dir / "config.resolved.yaml", resolved,
               header=f"# resolved from {cfg.path}; every default filled in\n")
    write_json(run_dir / DEVICE_FILE, dict(ctx.device_limits))
    (run_dir / "profiles").mkdir(exist_ok=True)
    for name, prof in ctx.profiles.items():
        shutil.copyfile(prof.path, run_dir / "profiles" / f"{name}.yaml")
    env = environment(cfg.seed, {n: p.sha256 for n, p in ctx.profiles.items()})
    env["config_dir"] = str(cfg.import_dir().resolve())      # where its modules live
    env["run_files_sha256"] = run_file_hashes(run_dir)
    env[user_code.KEY] = user_code.code_hashes(cfg)     # compared on resume and export
    env.update(launch or {})     # backend and workers: several workers draw other trials
    write_json(run_dir / "env.json", env)


@dataclass
class Session:
    """A prepared run: context, teacher, study (baselines enqueued, target trial count
    stored) — what every backend and every worker process needs."""
    cfg: SearchConfig
    run_dir: Path
    ctx: SearchContext
    teacher: Teacher
    study: Any
    progress: Progress
    deadline: float | None = None     # time.time() after which no trial starts (timeout_s)

    @property
    def records_path(self) -> Path:
        return self.run_dir / "records.jsonl"

    @cached_property
    def log(self) -> RecordLog:
        """The records, read incrementally (each read parses only the new lines)."""
        return RecordLog(self.records_path)

    @property
    def target(self) -> int:
        return int(self.study.user_attrs["target_trials"])

    def timed_out(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline


def check_device(cfg: SearchConfig, resume: bool) -> None:
    """Refuse a GPU the config asks for that this machine lacks (a resume may move a run to
    another machine: ``--set train.device=...`` is one of the settings it may change)."""
    if (problem := device_problem(cfg.train.device)) is not None:
        raise ConfigError(problem, loc=field_loc(cfg, "train.device"), hint=(
            "resume with --set train.device=auto (the GPU where there is one, else the CPU)"
            if resume else "train.device: auto takes the GPU where there is one, else the CPU"))


def own_teacher(cfg: SearchConfig) -> UserTeacher | None:
    """``teacher.model``, your own trained teacher, if the config names one."""
    return None if cfg.teacher.model is None else UserTeacher(
        cfg.teacher.model, cfg.import_dir(), loc=field_loc(cfg, "teacher.model"))


def load_teacher(cfg: SearchConfig, ctx: SearchContext, run_dir: Path) -> Teacher:
    tc, own = cfg.teacher, own_teacher(cfg)
    return get_teacher(run_dir, ctx.data, widths=tc.widths, seed=cfg.seed, own=own,
                       settings=TrainSettings(epochs=tc.epochs, lr=tc.lr,
                                              batch_size=cfg.train.batch_size,
                                              device=training_device(cfg.train.device),
                                              augment=from_config(cfg.train.augment)))


def open_session(cfg: SearchConfig, run_dir: Path, *, trials: int | None = None,
                 baselines: bool = True, quiet: bool = False, resume: bool = False,
                 on_ready: Callable[[Progress], None] | None = None,
                 backend: str = "optuna", workers: int = 1) -> Session:
    """Validate, write the run files, train or load the teacher, create or reopen the study
    (recovering trials a crash left running) and fix the target number of trials.
    ``on_ready(progress)`` runs once the config is valid and the run dir is written, before
    the teacher: work that may overlap the rest of the set-up (the Ray backend starts a
    local Ray there)."""
    if not resume:
        check_new_run(cfg)                      # here, not on load: old runs load
        # the resolved config keeps them: a resume (even of a run killed during set-up,
        # before the study held its target) has the same plan
        cfg = replace(cfg, search=replace(cfg.search, trials=trials or cfg.search.trials,
                                          baselines=cfg.search.baselines and baselines))
    timeout = cfg.search.timeout_s
    deadline = None if timeout is None else time.time() + timeout
    torch.set_num_threads(cfg.search.threads)
    if resume:
        check_run_files(run_dir)
        check_study_files(run_dir)
    check_device(cfg, resume)
    # A resumed run keeps the reduction it started with (none for a run made before it).
    ctx = build_context(cfg, reduction=Reduction.load(run_dir) if resume else None)
    if ctx.new_run_error is not None and not resume:
        raise ctx.new_run_error
    if (own := own_teacher(cfg)) is not None and not resume:   # a bad path: before the
        own.build(ctx.data)                                          # run dir is written
    check_budget_reachable(ctx)
    prepare_run_dir(run_dir, resume=resume)
    if not resume:        # the reduction first: env.json keeps its hash with the run files'
        if ctx.reduction is not None:    # every worker process (and a resume) reads it here
            write_json(run_dir / REDUCTION_FILE, ctx.reduction.to_dict())
        _write_run_files(cfg, ctx, run_dir, {"backend": backend, "workers": workers})
    records_path = run_dir / "records.jsonl"
    progress = Progress(total=0, profile=lead_profile(cfg), quiet=quiet,
                        label=len(cfg.hardware.profiles) > 1)
    searched = sum(len(d.values()) > 1 for d in ctx.rspace.dists.values())
    progress.say(f"run dir {run_dir}  ({searched} searched parameters, "
                 f"profiles {', '.join(ctx.profiles)}, training on "
                 f"{training_device(cfg.train.device)})")
    if not searched and cfg.search.trials > 1:
        progress.warn("warning: the space has no parameter left to search (every knob is fixed"
                     + (" or dropped by the space reduction"
                        if ctx.reduction is not None and ctx.reduction.dropped else "")
                     + "): every trial trains the same plan; give knobs a choice of values")
    if ctx.reduction is not None and ctx.reduction.dropped:
        progress.say(ctx.reduction.summary())
    for note in filter(None, (p.quick_note() for p in ctx.profiles.values())):
        progress.warn(note)
    if resume and (reaped := reap_previous_ray(run_dir)):   # either backend, run dir locked
        progress.say(f"stopped {reaped} leftover process(es) of the killed run's Ray")
    if on_ready is not None:
        on_ready(progress)
    teacher = load_teacher(cfg, ctx, run_dir)
    progress.say(f"teacher {teacher.key}: val accuracy {teacher.val_accuracy:.3f}")
    val = ctx.data.val
    chance = chance_level(val.y)
    if teacher.val_accuracy < chance + 3 * binomial_se(chance, len(val)):
        alpha = ctx.rspace.dists.get("distill/alpha")
        kd_off = alpha is not None and max(alpha.values()) == 0     # it teaches nothing
        progress.warn(f"warning: the teacher is not measurably above chance ({chance:.3f}); "
                     "its soft targets carry no knowledge: " + (
                         "check that teacher.model loads its trained weights"
                         if cfg.teacher.model else "raise teacher.epochs")
                     + ("" if kd_off else " (or search a lower distill alpha in the space)")
                     + scale_hint(ctx.data.train.x))

    study = make_study(cfg, ctx.objectives, run_dir, resume=resume)
    by_number = {r["number"]: r for r in read_records(records_path)}
    interrupted_n = (recover(study, by_number, ctx.objectives, records_path, base_seed=cfg.seed)
                     if resume else 0)
    if "target_trials" not in study.user_attrs:
        extra = all_baselines(ctx.rspace) if cfg.search.baselines else []
        n = trials or cfg.search.trials
        design = None           # costed first: a kill while costing leaves nothing enqueued
        if cfg.search.sampler != "random" and cfg.search.initial_design == "spread":
            design = spread_design(ctx, min(n, STARTUP_TRIALS - sum(b.in_space for b in extra)),
                                   cfg.seed + 1)
            progress.say(design.summary())
        for base in extra:
            attrs: dict[str, Any] = {"baseline": base.name}
            if base.note:
                attrs["note"] = base.note
            if not base.in_space:
                attrs["baseline_params"] = dict(base.params)
            enqueue(study, dict(base.params) if base.in_space else {}, attrs)
        for i, params in enumerate(design.picks if design else ()):
            enqueue(study, params, {"note": NOTE.format(axis=design.axis), "design": "spread",
                                    "pick": i})
        study.set_user_attr("target_trials", n + len(extra))
    elif trials:
        n_base = len({t.user_attrs["baseline"] for t in study.trials
                      if t.user_attrs.get("baseline")})
        study.set_user_attr("target_trials", trials + n_base)
    progress.total = int(study.user_attrs["target_trials"])
    if resume:       # listed in env.json once the study and the teacher have opened
        if note := record_resume(run_dir, {"backend": backend, "workers": workers,
                                           "target_trials": progress.total}):
            progress.warn(note)
        for line in user_code.code_changes(run_dir, cfg, "the trials run from now on use "
                                           "it as it is, the trials recorded used it as it was"):
            progress.warn(line)
        if ctx.new_run_error is not None:      # an old run: it goes on, but say what is off
            progress.warn(f"warning: {ctx.new_run_error.raw_message} (a new search refuses "
                          "this; the run resumes as it started)")
        done = counted(list(by_number.values()))
        progress.say(f"resuming: {len(by_number)} trials recorded"
                     + (f" ({interrupted_n} of them interrupted, recorded failed)"
                        if interrupted_n else "")
                     + (f"; {done} finished meet the run's target of {progress.total} "
                        + ("(baselines included), " if any(r.get("baseline") for r in
                                                           by_number.values()) else "")
                        + "so none is left to run (raise --trials to run more)"
                        if done >= progress.total else ""))
    return Session(cfg=cfg, run_dir=run_dir, ctx=ctx, teacher=teacher, study=study,
                   progress=progress, deadline=deadline)


def check_cpus(session: Session, workers: int) -> None:
    """Say so when ``workers x search.threads`` exceeds this machine's CPUs: the trials
    would slow each other down (``--set search.threads=N`` works on a resume too)."""
    cpus, threads = os.cpu_count() or 1, session.cfg.search.threads
    if workers * threads > cpus:
        fix = f"--workers {cpus}" if threads == 1 else \
            f"--set search.threads={max(1, cpus // workers)}"
        session.progress.warn(f"warning: {workers} workers x {threads} threads = "
                             f"{workers * threads} > {cpus} CPUs here, so trials will slow each "
                             f"other down (use {fix})")


def finish(session: Session) -> SearchResult:
    """The end of a run (either backend): say how often the sampler proposed over-budget
    candidates and what early stopping did, and return the records and front."""
    records = read_records(session.records_path)
    if session.timed_out() and (done := counted(records)) < session.target:
        session.progress.warn(f"search.timeout_s ({session.cfg.search.timeout_s:g} s) reached: "
                             f"{done} of {session.target} trials done; `autocompress search "
                             f"--resume {session.run_dir}` runs the rest")
    session.progress.say(infeasible_trend(records).summary())
    students = [r["metrics"]["accuracy"] for r in records if r["state"] == "complete"]
    if note := weak_teacher_warning(session.teacher.val_accuracy, students,
                                    len(session.ctx.data.val),
                                    own=session.cfg.teacher.model is not None):
        session.progress.warn(note)
    policy = EarlyStopping.from_config(session.cfg.search.early_stopping)
    if policy is not None:
        val = session.ctx.data.val
        rungs = FileBoard(session.run_dir / "rungs.jsonl", policy).entries()
        session.progress.say(rung_report(rungs, policy, chance_level(val.y), len(val),
                                         {r["number"] for r in records if not interrupted(r)}))
    front = ParetoFront.from_records(records, pareto_objectives(session.ctx.objectives),
                                     budgets_of(session.cfg))
    return SearchResult(run_dir=session.run_dir, records=records, front=front)

