"""The study's storage: Optuna's journal file in new run dirs, SQLite kept for old ones, and
a journal torn by a kill mid-append repaired before the next append, a lock that dies with
its holder."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from autocompress.search.journal import JOURNAL, JournalLock
from autocompress.search.study import storage_for


def _study(run: Path, n: int) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=storage_for(run),
                                directions=["maximize", "minimize"], load_if_exists=True)
    for i in range(n):
        trial = study.ask()
        trial.suggest_int("x", 0, 9)
        study.tell(trial, [0.5, float(i)])
    return study


def test_new_run_uses_the_journal(tmp_path):
    _study(tmp_path, 2)
    assert (tmp_path / JOURNAL).is_file() and not (tmp_path / "study.db").exists()
    assert len(optuna.load_study(study_name="s", storage=storage_for(tmp_path)).trials) == 2


def test_run_dir_with_sqlite_keeps_it(tmp_path):
    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert isinstance(storage_for(tmp_path), optuna.storages.RDBStorage)
    assert not (tmp_path / JOURNAL).exists()


def _tear(run: Path) -> None:
    with (run / JOURNAL).open("ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "w", "study_id": 0, "datetime_st')


def test_torn_journal_tail_is_cut(tmp_path):
    _study(tmp_path, 2)
    _tear(tmp_path)
    study = _study(tmp_path, 1)                      # storage_for cuts, then appends
    assert [t.number for t in study.trials] == [0, 1, 2]
    again = optuna.load_study(study_name="s", storage=storage_for(tmp_path))
    assert [t.state.name for t in again.trials] == ["COMPLETE"] * 3
    assert (tmp_path / JOURNAL).read_bytes().endswith(b"\n")


def test_without_the_cut_optuna_refuses_the_journal(tmp_path):
    """Why the cut exists: the next append glues onto the torn line."""
    from optuna.storages.journal import JournalFileBackend

    _study(tmp_path, 1)
    _tear(tmp_path)
    raw = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / JOURNAL)))
    study = optuna.load_study(study_name="s", storage=raw)
    with pytest.raises((AttributeError, ValueError)):      # the new trial is unreadable
        study.tell(study.ask(), [0.1, 1.0])


def test_a_live_process_appends_after_another_was_torn(tmp_path):
    """A worker killed mid-append: the survivor's next append must not glue onto it."""
    study = _study(tmp_path, 1)
    _tear(tmp_path)                                  # as if another worker died writing
    trial = study.ask()
    assert trial.number == 1
    study.tell(trial, [0.7, 2.0])
    again = optuna.load_study(study_name="s", storage=storage_for(tmp_path))
    assert [(t.number, t.state.name) for t in again.trials] == [(0, "COMPLETE"),
                                                                (1, "COMPLETE")]


HOLD_AND_DIE = """
import os, sys
from pathlib import Path
from autocompress.search.journal import JournalLock
JournalLock(Path(sys.argv[1])).acquire()
os.kill(os.getpid(), 9)
"""


def test_a_lock_held_by_a_killed_process_is_free_and_the_dir_can_move(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _study(run, 1)
    proc = subprocess.run([sys.executable, "-c", HOLD_AND_DIE, str(run / JOURNAL)],
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -9
    moved = tmp_path / "moved"
    run.rename(moved)
    start = time.perf_counter()
    study = _study(moved, 1)
    assert time.perf_counter() - start < 5           # no grace period to wait out
    assert len(study.trials) == 2


def test_lock_pickles_without_its_file(tmp_path):
    import pickle

    lock = JournalLock(tmp_path / JOURNAL)
    lock.acquire()
    copy = pickle.loads(pickle.dumps(lock))
    lock.release()
    assert copy.acquire() and copy.path == lock.path
    copy.release()


def test_next_trial_counts_a_trial_another_worker_finishes_while_it_reads(tmp_path, monkeypatch):
    """Read the records first and the running trials second, and a trial another worker
    records and tells in between is in neither: one trial too many ran near a run's end."""
    import types

    from autocompress.search import loop
    from autocompress.search.journal import journal_storage
    from autocompress.search.records import (
        RecordLog,
        TrialRecord,
        append_record,
        counted,
        read_records,
    )
    from autocompress.search.recovery import tell

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=journal_storage(tmp_path), directions=["maximize"])
    dists = {"x": optuna.distributions.IntDistribution(0, 100)}
    records_path = tmp_path / "records.jsonl"
    log = RecordLog(records_path)
    session = types.SimpleNamespace(
        timed_out=lambda: False, study=study, run_dir=tmp_path, records_path=records_path,
        log=log, target=2, ctx=types.SimpleNamespace(rspace=types.SimpleNamespace(
            distributions=lambda: dists)))

    def finish(trial: optuna.trial.Trial) -> None:         # what a worker does: record, tell
        rec = TrialRecord(number=trial.number, state="complete", params=trial.params,
                          metrics={"accuracy": 0.5})
        append_record(records_path, rec)
        tell(study, trial, rec, ("accuracy",))

    finish(study.ask(dists))                   # trial 0 done
    other = study.ask(dists)                   # trial 1 running in another worker
    real = log.read

    def racing(**kwargs):                      # ... which finishes it as this one reads
        out = real(**kwargs)
        if other.number not in {r["number"] for r in read_records(records_path, warn=False)}:
            finish(other)
        return out

    monkeypatch.setattr(log, "read", racing)
    assert loop.next_trial(session) is None    # 1 done + 1 running = the target of 2
    assert counted(read_records(records_path)) == 2


def test_a_baseline_that_keeps_killing_its_process_is_recorded_failed_after_three_runs(
        tmp_path):
    """It was enqueued again after every interruption: a candidate that kills its process
    (out of memory) ran again on every resume, and in the main process killed the search."""
    from autocompress.search.records import counted, read_records
    from autocompress.search.recovery import MAX_TRIES, interrupted

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize"])
    study.enqueue_trial({"x": 3}, user_attrs={"baseline": "uniform-int8"})
    path = tmp_path / "records.jsonl"
    for run in range(1, MAX_TRIES + 1):
        trial = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
        assert trial.params == {"x": 3} and trial.user_attrs.get("tries", 1) == run
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        rec = interrupted(study, study.trials[trial.number], "the run was killed", path, seed=0)
    assert rec.error.startswith(f"not run again after {MAX_TRIES} interruptions")
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting == [] and counted(read_records(path)) == 1    # counted, not replaced


def test_a_baseline_run_again_after_a_kill_keeps_its_first_runs_seed(tmp_path):
    """Its seed was run seed + its new number: the re-run uniform-int8 baseline scored 0.956
    where it had 0.970, so a baseline's figures depended on whether the run was killed."""
    from autocompress.search.recovery import interrupted, trial_seed

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize"])
    dist = {"x": optuna.distributions.IntDistribution(0, 9)}
    study.tell(study.ask(dist), 0.5)                    # trial 0: a searched one
    study.enqueue_trial({"x": 3}, user_attrs={"baseline": "uniform-int8"})
    first = study.ask(dist)                             # trial 1: the baseline, killed
    assert first.user_attrs["baseline"] and trial_seed(100, first) == 101
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    interrupted(study, study.trials[first.number], "the run was killed",
                tmp_path / "records.jsonl", seed=trial_seed(100, first))
    again = study.ask(dist)
    assert again.number == 2 and again.params == {"x": 3}
    assert trial_seed(100, again) == 101                # its first run's, not 102
    assert trial_seed(100, study.ask(dist)) == 103      # a searched trial: seed + number
