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


def test_only_a_lost_workers_tune_lines_are_dropped():
    """A lost worker printed Tune's 20-line traceback and "Trials did not complete" (with
    --quiet, all the run said); silencing Tune's loggers wholesale hid every other error."""
    import logging

    from ray.exceptions import ActorDiedError, RayActorError

    from autocompress.search.ray_tune_parts import TUNE_LOGGERS, quiet_lost_workers

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger(TUNE_LOGGERS[0])
    keep = Keep()
    logger.addHandler(keep)
    try:
        with quiet_lost_workers():
            logger.error("Trial task failed for trial trial_3", exc_info=ActorDiedError())
            logger.error("Trial task failed for trial trial_4", exc_info=RayActorError(
                error_msg="The actor died because of an error raised in its creation task"))
            logger.error("Trial task failed for trial trial_5", exc_info=ValueError("bug"))
            logger.error("Error handling checkpoint /x")
            logging.getLogger(TUNE_LOGGERS[1]).error("Trials did not complete: [trial_3]")
        logger.error("Trial task failed for trial trial_6", exc_info=ActorDiedError())
    finally:
        logger.removeHandler(keep)
    assert seen == ["Trial task failed for trial trial_4", "Trial task failed for trial trial_5",
                    "Error handling checkpoint /x", "Trial task failed for trial trial_6"]
