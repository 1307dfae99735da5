"""Driver-side pieces handed to Ray Tune: trial names, each trial's GPU share, the callback
that takes each result's weights out before Tune keeps the result, and the stopper that ends
every running trial once the search has to stop (a user error: as on the Optuna backend, whose
workers stop at once; Tune ran the other trials to their end, possibly hours, before the
driver exited 2)."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

TUNE_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune")


def trial_gpus(device: str, workers: int, cluster_gpus: float, *, loc: str = "train.device"
               ) -> float:
    """A trial's share of a GPU on Ray (Ray then shows the worker that GPU as ``cuda``): none
    where it trains on the CPU (``train.device: cpu``, or ``auto`` on a cluster without GPUs);
    else one GPU each where there are enough, or an equal share of one (a fractional request
    must fit on a single GPU: 3 workers on 2 GPUs take half of one each, not 2/3).

    >>> trial_gpus("auto", 2, 1.0), trial_gpus("auto", 2, 8.0), trial_gpus("auto", 3, 2.0)
    (0.5, 1.0, 0.5)
    """
    from autocompress.errors import ConfigError

    if device == "cpu" or (device == "auto" and cluster_gpus <= 0):
        return 0.0
    if cluster_gpus <= 0:
        raise ConfigError(f"{device!r} needs a GPU, but the Ray cluster has none",
                          loc=loc, hint="train.device: auto trains on the CPU "
                          "where there is no GPU; or start the Ray nodes with --num-gpus")
    return min(1.0, 1.0 / math.ceil(workers / cluster_gpus))   # a share fits on one GPU


def trial_name(trial: Any) -> str:
    return f"trial_{trial.config.get('number', trial.trial_id)}"


def weights_mover(stash: dict[str, str]) -> Any:
    """A Tune callback that takes each result's weights out before Tune keeps the result
    (as the trial's ``last_result``, written into its experiment state at every checkpoint:
    for a large model, megabytes per trial, over and over); the searcher writes them."""
    from ray.tune import Callback

    class WeightsMover(Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any,
                            result: dict[str, Any], **info: Any) -> None:
            if "weights_b64" in result:      # Tune lets callbacks edit the result in place
                stash[trial.trial_id] = result.pop("weights_b64")

    return WeightsMover()


def newest_first() -> Any:
    """Tune's FIFO scheduler, but starting the newest pending trial. The actor a finished
    trial frees (``reuse_actors``) goes to the trial the scheduler picks; FIFO picked the
    oldest pending one, which after a lost worker is its replacement, still waiting for the
    new actor Tune starts for it: it took the freed actor and Tune removed the new one
    (``TuneController._maybe_reuse_cached_actor``), so while trials were shorter than an
    actor's start every later trial ran on the one surviving actor. Newest first, the freed
    actor goes to the trial the searcher just added and the replacement keeps its new actor
    (it takes a freed one only when no newer trial comes: the search is at its end)."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import FIFOScheduler

    class NewestFirst(FIFOScheduler):
        def choose_trial_to_run(self, tune_controller: Any) -> Any:
            pending = [t for t in tune_controller.get_trials() if t.status == Trial.PENDING]
            return pending[-1] if pending else super().choose_trial_to_run(tune_controller)

    return NewestFirst()


def stop_when(stop: Callable[[], bool]) -> Any:
    """A Tune stopper that stops the whole experiment (every running trial) once ``stop()``;
    Tune asks it at every step of its loop."""
    from ray.tune import Stopper

    class StopAll(Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return stop()

    return StopAll()


class LostWorkerNoise(logging.Filter):
    """Drops Tune's "Trial task failed" traceback for a trial whose Ray worker died (the
    searcher records it interrupted, replaces it and says so) and its closing "Trials did
    not complete" summary. Every other line stays, an actor that failed to start (e.g. a
    module a node cannot import) included."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith("Trials did not complete"):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not (text.startswith("Trial task failed") and worker_lost(exc))


def worker_lost(exc: BaseException | None) -> bool:
    from ray.exceptions import RayActorError

    return isinstance(exc, RayActorError) and "creation task" not in str(exc)


@contextmanager
def quiet_lost_workers() -> Iterator[None]:
    """:class:`LostWorkerNoise` on Tune's loggers while the block runs."""
    noise = LostWorkerNoise()
    for name in TUNE_LOGGERS:
        logging.getLogger(name).addFilter(noise)
    try:
        yield
    finally:
        for name in TUNE_LOGGERS:
            logging.getLogger(name).removeFilter(noise)
