"""The study and records.jsonl kept in step: ``tell`` the study a finished trial's record
(written first), and after a crash ``recover`` the trials it left running, record an
``interrupted`` one (replaced; a baseline or start-up design trial is enqueued again, up to
:data:`MAX_TRIES` runs) and ``enqueue`` a fixed trial once."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from autocompress.errors import RunDirError
from autocompress.search.records import TrialRecord, append_record
from autocompress.search.study import objective_values, relative_constraints

MAX_TRIES = 3     # a baseline or design trial interrupted this often is recorded failed:
                  # it may be what kills its process (out of memory, a crash in native code)


def recover(study: Any, records: dict[int, dict[str, Any]], objectives: tuple[str, ...],
            records_path: Path, *, base_seed: int, pid: int | None = None,
            why: str = "the run was killed") -> int:
    """After a crash: a trial the study still shows running either finished (its record was
    written: tell the study) or was interrupted (record it failed). So is a finished trial
    whose record was cut off (a torn last line of records.jsonl, skipped with a warning).
    An interrupted baseline or initial-design trial is enqueued again; the failed record
    carries the trial's seed (:func:`trial_seed`, as it ran). ``pid``: only the trials of
    that worker process (user attr ``pid``; it died, the others run on), interrupted because
    ``why``. Returns how many."""
    import optuna

    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    if pid is not None:
        trials = [t for t in trials if t.user_attrs.get("pid") == pid]
    stale = [t for t in trials if t.state == state.RUNNING]
    lost = [t for t in trials if t.state in (state.COMPLETE, state.PRUNED, state.FAIL)
            and t.number not in records]
    if lost and not records:   # a record is written before the study is told: removed since
        raise RunDirError(f"records.jsonl holds no record though the study has {len(lost)} "
                          "finished trial(s): a resume would record them interrupted and "
                          "train them again", loc=str(records_path),
                          hint="restore it from a copy of the run dir, or start a new run "
                               "(--run-dir); this one's study stays in study.journal")
    for frozen in stale + lost:
        rec, running = records.get(frozen.number), frozen.state == state.RUNNING
        if running:
            trial = optuna.Trial(study, frozen._trial_id)
            if rec is not None and rec["state"] in ("complete", "infeasible", "pruned",
                                                    "failed"):
                tell(study, trial, TrialRecord(**rec), objectives)
                continue
            study.tell(trial, state=state.FAIL)
        records[frozen.number] = interrupted(study, frozen, why if running else
                                             "its record was cut off", records_path,
                                             seed=rec["seed"] if rec else
                                             trial_seed(base_seed, frozen)).to_dict()
    return len(stale) + len(lost)


def trial_seed(base_seed: int, trial: Any) -> int:
    """A trial's training seed: ``base_seed + number``, or, for a baseline or start-up
    design trial run again after an interruption, its first run's (user attr ``seed``), so
    that its figures do not depend on whether the run was killed."""
    return int(trial.user_attrs.get("seed", base_seed + trial.number))


def interrupted(study: Any, trial: Any, why: str, records_path: Path, *,
                seed: int) -> TrialRecord:
    """Record ``trial`` (no longer running in the study) as interrupted, so that it does not count
    towards the target and a new trial replaces it; a baseline or initial-design trial is
    enqueued again, once (a WAITING copy already there is kept, so a kill between the
    enqueue and the record does not enqueue it twice), unless it ran :data:`MAX_TRIES` times:
    then it is recorded failed and counted (a candidate that killed its process every time
    ran again on every resume, and in the main process killed the search)."""
    attrs = {k: v for k, v in trial.user_attrs.items() if k != "pid"}   # who ran it
    tries = int(attrs.get("tries", 1))
    fixed = bool(attrs.get("baseline") or attrs.get("design"))
    if fixed and tries < MAX_TRIES:
        enqueue(study, {} if "baseline_params" in attrs else
                dict(trial.system_attrs.get("fixed_params", trial.params)),
                {**attrs, "tries": tries + 1, "seed": seed})
    error = (f"not run again after {tries} interruptions (the last: {why}; if its process "
             "was killed each time: out of memory, or a crash in native code?)"
             if fixed and tries >= MAX_TRIES
             else f"interrupted ({why}); a new trial replaces it")
    failed = TrialRecord(number=trial.number, state="failed", params=trial.params, seed=seed,
                         baseline=attrs.get("baseline"), error=error)
    append_record(records_path, failed)
    return failed


def enqueue(study: Any, params: dict[str, Any], attrs: dict[str, Any]) -> None:
    """Enqueue a baseline or start-up design trial unless a waiting one has the same
    attributes (each is enqueued once, even when a kill repeats the step that enqueues)."""
    import optuna

    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if not any(t.user_attrs == attrs for t in waiting):
        study.enqueue_trial(params, user_attrs=attrs)


def tell(study: Any, trial: Any, rec: TrialRecord, objectives: tuple[str, ...]) -> None:
    import optuna

    with warnings.catch_warnings():     # telling again after a crash: already set, same value
        warnings.filterwarnings("ignore", message="The constraint value is ignored")
        for key, value in relative_constraints(rec).items():
            trial.set_constraint(key, value)
    if rec.state == "failed" or (rec.baseline and trial.user_attrs.get("baseline_params")):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)   # see search/baselines.py
    elif rec.state == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, objective_values(rec, objectives))
