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


def test_rays_lines_on_the_drivers_output_have_no_colour_codes(monkeypatch):
    """A lost worker's "(raylet) A worker died ..." came with colour codes into log files."""
    import io

    from ray._private import worker

    from autocompress.search.ray_cluster import driver_env

    for name in ("RAY_AUTH_MODE", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "RAY_AIR_NEW_OUTPUT",
                 "RAY_COLOR_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    driver_env()
    out = io.StringIO()
    worker.print_worker_logs({"lines": ["A worker died or was killed"], "pid": "raylet",
                              "is_err": False}, out)
    assert out.getvalue() == "(raylet) A worker died or was killed\n"


def test_an_errors_colour_codes_are_not_recorded(tmp_path):
    from autocompress.search.records import append_record

    path = tmp_path / "records.jsonl"
    append_record(path, {"number": 0, "error": "RayTaskError: \x1b[36mray::f()\x1b[39m boom"})
    assert json.loads(path.read_text())["error"] == "RayTaskError: ray::f() boom"


def test_a_node_that_cannot_set_up_the_search_stops_it(monkeypatch):
    """Another autocompress on a node than the driver's: the search context did not unpickle
    there, every trial sent there failed at once, and the run ended with nothing trained."""
    from autocompress.errors import AutocompressError
    from autocompress.search import ray_trial

    def skewed(key: str, payload: dict) -> None:
        raise AttributeError("Can't get attribute 'ResolvedSpace' on <module 'x'>\ntraceback")

    monkeypatch.setattr(ray_trial, "_set_up", skewed)
    monkeypatch.setattr(ray_trial, "_CACHE", {})
    payload = {"threads": 1, "cfg": types.SimpleNamespace(path="c.yaml"), "run_id": "r"}
    with pytest.raises(AutocompressError, match=r"cannot set up the search \(AttributeError: "
                                                r"Can't get attribute 'ResolvedSpace'") as exc:
        ray_trial._run({}, payload)
    assert exc.value.loc == "Ray cluster" and "same autocompress" in exc.value.hint


def test_a_one_off_set_up_failure_fails_that_trial_only(monkeypatch):
    """Any exception in a node's set-up stopped the whole search, blamed on a version skew:
    an out-of-memory or a lost object on one node is that trial's failure (recorded)."""
    from autocompress.search import ray_trial

    def short_of_memory(key: str, payload: dict) -> None:
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(ray_trial, "_set_up", short_of_memory)
    monkeypatch.setattr(ray_trial, "_CACHE", {})
    payload = {"threads": 1, "cfg": types.SimpleNamespace(path="c.yaml"), "run_id": "r"}
    with pytest.raises(MemoryError):
        ray_trial._run({}, payload)
    assert ray_trial._CACHE == {}
