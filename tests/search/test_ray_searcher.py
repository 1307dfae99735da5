"""The Ray driver's searcher: an error while it handles a finished trial is raised by the
driver, not hidden behind a KeyError from Tune's second call."""
from __future__ import annotations

import json
import types

import optuna
import pytest

from autocompress.search import runner_ray
from autocompress.search.records import TrialRecord


def test_an_error_handling_a_result_stops_the_search_with_that_error(tmp_path, monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize"])
    session = types.SimpleNamespace(study=study, run_dir=tmp_path, records_path=tmp_path / "r",
                                    cfg=types.SimpleNamespace(seed=0),
                                    ctx=types.SimpleNamespace(objectives=()))

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner_ray, "append_record", full_disk)
    searcher = runner_ray._searcher(session, remaining=3, stash={})
    trial = study.ask()
    searcher.live["t0"] = trial
    rec = TrialRecord(number=trial.number, state="complete", params={},
                      metrics={"accuracy": 0.5})
    with pytest.raises(OSError, match="No space"):
        searcher.on_trial_complete("t0", {"record": json.dumps(rec.to_dict())})
    # Tune catches it and calls again with error=True: that was a KeyError (exit 1, the disk
    # error only in a log line); now it is a no-op and the driver raises the first error
    searcher.on_trial_complete("t0", None, error=True)
    assert isinstance(searcher.stop, OSError)
    assert searcher.suggest("t1") == "FINISHED"
