"""Ray Tune backend: the same study, objective (``run_trial``), run dir and records as the
Optuna backend, with trials spread over a local Ray or a Ray cluster.

The searcher is the run's own Optuna study driven by ask/tell from the Ray driver
(``StudySearcher``), so constraints, enqueued baselines, the target trial count, crash
recovery and resume are exactly the Optuna backend's. Trials run in reused actors
(``reuse_actors=True``; each takes the driver's search context from the object store once)
with ``search.threads`` CPUs
and torch threads each. A trial returns its record and baked weights in its result; the
driver appends the record, writes ``trials/<n>/model.pt`` and tells the study, so worker
nodes need no access to the run dir (the weights are taken out of the result before Tune
keeps it in its experiment state). A trial whose worker was lost is recorded interrupted
and replaced (on a new actor: ``newest_first`` gives a freed actor to the newest trial); a
user error in a trial stops the search with that error. Early-stopping rungs go through one
actor on the driver's node that owns ``rungs.jsonl``.

Ray keeps its session files under ``RUN_DIR/ray_tmp`` (or a short ``/tmp/ac-ray-*`` folder
when that path is too long for a Unix socket) and Tune its experiment state under
``RUN_DIR/ray``; ``RAY_AUTH_MODE=disabled`` stops it writing a token to the home folder.
ray is imported only here, in ``ray_cluster`` and in ``ray_trial``, never at
``import autocompress`` or CLI start-up.
"""
from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from autocompress import errors
from autocompress.compress.checkpoint import write_durable
from autocompress.config import SearchConfig
from autocompress.config_checks import field_loc
from autocompress.search.early_stop import EarlyStopping, FileBoard
from autocompress.search.entry import entry
from autocompress.search.loop import next_trial, show
from autocompress.search.progress import Progress
from autocompress.search.ray_address import check_address
from autocompress.search.ray_cluster import LocalRay, cluster_cpu_note, connect, driver_env, shutdown_ray
from autocompress.search.ray_trial import trainable, user_error
from autocompress.search.ray_tune_parts import (
    newest_first,
    quiet_lost_workers,
    stop_when,
    trial_gpus,
    trial_name,
    weights_mover,
)
from autocompress.search.records import TrialRecord, append_record, counted, read_records
from autocompress.search.recovery import interrupted, tell, trial_seed
from autocompress.search.session import (
    SearchResult,
    Session,
    check_cpus,
    finish,
    open_session,
    own_teacher,
)

TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"


def _shared_context(session: Session) -> Any:
    """The driver's search context in Ray's object store: each actor gets the same data,
    resolved space, profiles and cost models from there and reads no file (a worker node
    has neither the run dir nor, necessarily, the config's folder; an actor's working
    folder is Tune's). None when it cannot be serialized: each actor then builds it from
    the config, as the Optuna backend's workers do."""
    import ray

    try:
        return ray.put(session.ctx)
    except Exception as exc:          # any serialization failure: each actor builds it
        session.progress.warn(f"warning: search context not shared through Ray ({type(exc).__name__}: "
                             f"{exc}); each worker builds it")
        return None


def _searcher(session: Session, remaining: int, stash: dict[str, str]) -> Any:
    from ray.tune.search import Searcher

    def _seed(trial: Any) -> int:        # the trial's training seed, as on the Optuna backend
        return trial_seed(session.cfg.seed, trial)

    class StudySearcher(Searcher):
        """Optuna ask/tell from the driver, recording every finished trial. A trial whose
        worker was lost is recorded interrupted and replaced (at most ``remaining`` times
        in a run, so a candidate that kills every worker cannot loop); a user error stops
        the search (``stop``, raised once Tune has ended), as does an error handling a
        result."""

        def __init__(self) -> None:
            super().__init__()
            self.live: dict[str, Any] = {}
            self.full = False          # the target is reached counting running trials
            self.lost = 0
            self.stop: Exception | None = None

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            if self.stop is not None:
                return Searcher.FINISHED
            if self.full and self.live:      # wait: a running trial may yet be lost
                return None
            nxt = next_trial(session)
            if nxt is None:
                self.full = True
                return None if self.live else Searcher.FINISHED
            trial, params = nxt
            self.live[trial_id] = trial
            return {"number": trial.number, "params": params,
                    "seed": _seed(trial),
                    "baseline": trial.user_attrs.get("baseline"),
                    "note": trial.user_attrs.get("note")}

        def save(self, checkpoint_path: str) -> None:   # the study is the searcher's state
            return None

        def restore(self, checkpoint_path: str) -> None:
            return None

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                              error: bool = False) -> None:
            trial = self.live.pop(trial_id, None)
            if trial is None:   # Tune calls again (error=True) when this raised: done already
                return
            try:
                self._complete(trial_id, trial, result or {})
            except Exception as exc:  # e.g. a full disk: Tune only logs it; the driver raises it
                self.stop = self.stop or exc
                raise

        def _complete(self, trial_id: str, trial: Any, result: dict[str, Any]) -> None:
            weights = stash.pop(trial_id, "")
            if "record" in result:
                rec = TrialRecord(**json.loads(result["record"]))
                if weights:
                    out = session.run_dir / "trials" / str(rec.number)
                    out.mkdir(parents=True, exist_ok=True)
                    write_durable(out / "model.pt", base64.b64decode(weights))
            elif "crash" in result:
                rec = self._failed(trial, result["crash"])
            elif "user_error" in result or self.stop is not None or self.lost < remaining:
                if "user_error" in result or self.stop is not None:   # Tune stopped it
                    self.stop = self.stop or user_error(result["user_error"])
                    why = ("stopped by a user error" if isinstance(self.stop,
                                                                   errors.AutocompressError)
                           else "stopped by an error in the driver")
                else:
                    self.lost += 1
                    why = f"its Ray worker was lost; its log is under {session.run_dir / 'ray'}"
                self._interrupted(trial, why)
                return
            else:
                rec = self._failed(trial, f"its Ray worker was lost ({self.lost} lost "
                                          f"already, not replaced); its log is under "
                                          f"{session.run_dir / 'ray'}")
            append_record(session.records_path, rec)
            tell(session.study, trial, rec, session.ctx.objectives)
            show(session, rec)

        def _failed(self, trial: Any, error: str) -> TrialRecord:
            return TrialRecord(number=trial.number, state="failed", params=trial.params,
                               seed=_seed(trial), error=error,
                               baseline=trial.user_attrs.get("baseline"))

        def _interrupted(self, trial: Any, why: str) -> None:
            import optuna

            session.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            frozen = session.study.get_trials(deepcopy=False)[trial.number]
            interrupted(session.study, frozen, why, session.records_path, seed=_seed(trial))
            self.full = False                # a new trial replaces it
            session.progress.warn(f"trial {trial.number} interrupted ({why})")

    return StudySearcher()


def run_search_ray(cfg: SearchConfig | None, run_dir: str | Path, *,
                   trials: int | None = None, baselines: bool = True, quiet: bool = False,
                   resume: bool = False, workers: int = 1, address: str | None = None,
                   report: bool = True) -> SearchResult:
    """``run_search`` on Ray: ``workers`` concurrent trials, on a local Ray started with
    ``workers * search.threads`` CPUs while the driver sets up, or on the cluster at
    ``address``."""
    return entry(_run_ray, cfg, run_dir, trials=trials, workers=workers, resume=resume,
                 report=report, baselines=baselines, quiet=quiet, address=address)


def _run_ray(cfg: SearchConfig, run_dir: Path, *, trials: int | None, workers: int,
             resume: bool, baselines: bool, quiet: bool, address: str | None) -> SearchResult:
    driver_env()
    if address:            # join first: a cluster that is not there fails before any set-up
        check_address(address)
        connect(address)
        if note := cluster_cpu_note(cfg.search.threads):
            print(f"warning: {note}", file=sys.stderr, flush=True)
    local: list[LocalRay] = []

    def start_local(progress: Progress) -> None:    # once the config and run dir are valid
        cpus = workers * cfg.search.threads
        # one CPU more for the early-stopping board's actor (it asks for none): the raylet
        # starts a worker per CPU, torch preloaded, so the board's does not take a trial's
        board = 1 if cfg.search.early_stopping else 0
        local.append(LocalRay(run_dir, cpus + board))   # (a resume reaped the killed run's)
        progress.say(f"starting a local Ray ({cpus} CPUs{' + 1 for early stopping' * board}, "
                     f"temp {local[0].temp})")

    try:      # a fresh run always has trials to run; a resumed one may have none left
        session = open_session(cfg, run_dir, trials=trials, baselines=baselines, quiet=quiet,
                               resume=resume, backend="ray", workers=workers,
                               on_ready=None if address or resume else start_local)
        remaining = session.target - counted(read_records(session.records_path, warn=False))
        if not address:                              # a local Ray gets workers x threads CPUs
            check_cpus(session, workers)
        if remaining > 0:
            if not address and not local:
                start_local(session.progress)
            _run_tune(session, workers, local[0] if local else None, remaining)
    finally:
        for started in local:
            started.stop()            # a no-op after _run_tune
        if address:
            shutdown_ray()                   # leave the cluster (a no-op after _run_tune)
    return finish(session)


def _run_tune(session: Session, workers: int, local: LocalRay | None, remaining: int) -> None:
    """The Tune phase: ``local`` is the Ray started during set-up (None: joined already)."""
    import logging

    import ray
    from ray import tune
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cfg, threads = session.cfg, session.cfg.search.threads
    try:
        if local is not None:
            local.wait()
        for name in ("ray.tune", "ray.tune.analysis.experiment_analysis"):
            logging.getLogger(name).setLevel(logging.ERROR)   # no 'metrics not found'
        board = None
        policy = EarlyStopping.from_config(cfg.search.early_stopping)
        if policy is not None:
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                  soft=False)
            board = ray.remote(num_cpus=0)(FileBoard).options(scheduling_strategy=here) \
                .remote(session.run_dir.resolve() / "rungs.jsonl", policy)
        own = own_teacher(cfg)     # sent as its import path, built in the worker
        payload = {"cfg": cfg, "own_teacher": own, "board": board, "threads": threads,
                   "teacher": session.teacher if own is None else
                   replace(session.teacher, model=None),
                   "reduction": session.ctx.reduction, "ctx": _shared_context(session),
                   "run_id": str(session.run_dir.resolve())}
        gpu = trial_gpus(cfg.train.device, workers, ray.cluster_resources().get("GPU", 0.0),
                         loc=field_loc(cfg, "train.device"))
        payload["device"] = "cuda" if gpu else "cpu"   # the GPU Ray gives the worker, or none
        stash: dict[str, str] = {}                # trial id -> its weights (base64)
        searcher = _searcher(session, remaining, stash)   # it ends the run (num_samples -1)
        wrapped = tune.with_resources(tune.with_parameters(trainable, payload=payload),
                                        {"cpu": threads, **({"gpu": gpu} if gpu else {})})
        tuner = tune.Tuner(
            wrapped,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=newest_first(),
                                        num_samples=-1,
                                        max_concurrent_trials=workers, reuse_actors=True,
                                        trial_name_creator=trial_name,
                                        trial_dirname_creator=trial_name),
            run_config=tune.RunConfig(name="tune", verbose=0, callbacks=[weights_mover(stash)],
                                      stop=stop_when(lambda: searcher.stop is not None),
                                      storage_path=str(session.run_dir.resolve() / "ray")))
        # Tune takes a first Ctrl-C as "end the run gracefully" and returns normally: the
        # search then looked finished (exit 0, a partial report, no --resume line). Without
        # its handler Ctrl-C interrupts the search as on the Optuna backend.
        sigint = os.environ.get(TUNE_SIGINT)
        os.environ[TUNE_SIGINT] = "1"
        try:
            with quiet_lost_workers():
                tuner.fit()
        finally:
            if sigint is None:
                os.environ.pop(TUNE_SIGINT, None)
            else:
                os.environ[TUNE_SIGINT] = sigint
        if searcher.stop is not None:
            raise searcher.stop
    finally:
        if local is not None:
            local.stop()
        else:
            shutdown_ray()
