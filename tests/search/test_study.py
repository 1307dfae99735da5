"""The study's storage: Optuna's journal file in new run dirs, SQLite kept for old ones, and
a journal torn by a kill mid-append repaired before it is opened."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autocompress.search.study import JOURNAL, storage_for


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
