"""The Optuna ask/tell loop, run by one or several worker processes on one study.

Several processes are safe because (1) the decision "is another trial due?" and the ask
happen under a file lock in the run dir, counting recorded trials plus trials running in
other workers, so no worker overshoots the target; (2) Optuna numbers trials in the storage
(the journal file, appended under its lock) and pops each enqueued baseline once; (3) records
are appended under a lock and fsync'd. A worker that dies leaves its trial RUNNING (marked with
the worker's pid): the main process, between its own trials, records it interrupted and starts
the worker again; one that failed otherwise (exit 2: it said why) has its gap filled at the end.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from autocompress.budgets import budgets_of
from autocompress.config import SearchConfig, lead_profile, pareto_objectives
from autocompress.errors import AutocompressError, is_disk_full, one_line
from autocompress.pareto import Objective, ParetoFront
from autocompress.search.baselines import suggest_all
from autocompress.search.early_stop import EarlyStopping, FileBoard
from autocompress.search.objective import run_trial
from autocompress.search.records import (
    TrialRecord,
    append_record,
    counted,
    file_lock,
    read_records,
)
from autocompress.search.recovery import recover, tell, trial_seed
from autocompress.search.reduce import Reduction
from autocompress.search.session import Session, load_teacher
from autocompress.search.setup import build_context
from autocompress.search.study import make_study


def next_trial(session: Session) -> tuple[Any, dict[str, Any]] | None:
    """Ask the study for the next trial and its parameters, or None when the target is
    reached (by recorded trials plus those other workers are running) or the search's
    time limit (``search.timeout_s``) has passed."""
    import optuna

    if session.timed_out():
        return None
    study = session.study
    with file_lock(session.run_dir / ".ask.lock"):
        # the study before the records: a trial is recorded before it is told, so one that
        # another worker finishes between the two reads is in the records (read the other
        # way round, it was in neither and one trial too many ran)
        live = {t.number for t in study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
        records = session.log.read()
        recorded = {r["number"] for r in records}
        running = live - recorded
        if counted(records) + len(running) >= session.target:
            return None
        trial = study.ask()
        trial.set_user_attr("pid", os.getpid())    # a worker that dies: its trials are known
        fixed = trial.user_attrs.get("baseline_params")
        params = dict(fixed) if fixed is not None else suggest_all(
            trial, session.ctx.rspace.distributions())
    return trial, params


def board_for(session: Session) -> FileBoard | None:
    policy = EarlyStopping.from_config(session.cfg.search.early_stopping)
    return None if policy is None else FileBoard(session.run_dir / "rungs.jsonl", policy)


def work(session: Session, between: Callable[[], None] | None = None) -> int:
    """Run trials until the target is reached; returns how many this worker ran.
    ``between``: called before each trial (the main process watches its workers there)."""
    cfg, ctx, run_dir = session.cfg, session.ctx, session.run_dir
    board = board_for(session)
    done = 0
    while True:
        if between is not None:
            between()
        if (nxt := next_trial(session)) is None:
            break
        trial, params = nxt
        rec = run_trial(ctx, session.teacher, params, number=trial.number,
                        seed=trial_seed(cfg.seed, trial), baseline=trial.user_attrs.get("baseline"),
                        note=trial.user_attrs.get("note"), board=board,
                        trial_dir=run_dir / "trials" / str(trial.number))
        append_record(session.records_path, rec)   # the record first: the run dir is the truth
        tell(session.study, trial, rec, ctx.objectives)
        done += 1
        show(session, rec)
    return done


def show(session: Session, rec: TrialRecord) -> None:
    """The trial's progress line, with counts, front size and best accuracy read from the
    records, so they are the run's (every worker's, and before a resume), not this process's."""
    records = session.log.read()
    front = ParetoFront.from_records(records, pareto_objectives(session.ctx.objectives),
                                     budgets_of(session.cfg))
    best = front.select()
    # its place among the records (another worker may have appended since): the counters
    # of several workers' lines neither repeat nor skip
    session.progress.done = session.log.counted_before(rec.number)
    session.progress.trial(rec, len(front.points),
                           best=None if best is None else Objective.accuracy().get(best))


def _die_with(parent: int, prctl: bool = sys.platform.startswith("linux")) -> None:
    """This process ends when ``parent`` dies (a ``kill -9`` of the search left its workers
    running trials on their own, beside a ``--resume`` started at once): on Linux the kernel
    kills it (``PR_SET_PDEATHSIG``); elsewhere, or where that call fails, a daemon thread
    sees it re-parented within half a second and exits."""
    if prctl:
        import ctypes
        import signal

        try:                                       # PR_SET_PDEATHSIG; -1 when it fails
            prctl = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) == 0
        except (OSError, AttributeError):
            prctl = False
    if os.getppid() != parent:          # it died before the call
        os._exit(1)
    if not prctl:
        import threading
        import time

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _worker_main(cfg: SearchConfig, run_dir: Path, quiet: bool, deadline: float | None,
                 index: int, parent: int, start_method: str) -> None:
    """Entry point of the extra worker process ``index`` (spawned: a fresh interpreter),
    which dies with the main process ``parent``. Like the CLI, it ends a user error with its
    one-line message (exit 2) and Ctrl-C, which the terminal sends to every worker, quietly
    (130): no traceback from each process.

    Its multiprocessing start method is the main process's (``start_method``; a spawned
    process has ``spawn``), so what libraries make in it behaves as in the main process:
    tqdm's lock, made through torch.fx, was a named semaphore left to the resource tracker,
    which printed a "leaked semaphore" warning after the run whenever a worker was stopped
    (SIGTERM) or killed."""
    import signal

    from autocompress.search.progress import Progress

    signal.signal(signal.SIGINT, signal.default_int_handler)   # ignored while it started
    mp.set_start_method(start_method, force=True)
    _die_with(parent)
    try:
        torch.set_num_threads(cfg.search.threads)
        ctx = build_context(cfg, reduction=Reduction.load(run_dir))
        study = make_study(cfg, ctx.objectives, run_dir, resume=True, worker=index)
        progress = Progress(total=int(study.user_attrs["target_trials"]),
                            profile=lead_profile(cfg), quiet=quiet,
                            label=len(cfg.hardware.profiles) > 1)
        work(Session(cfg=cfg, run_dir=run_dir, ctx=ctx, study=study, progress=progress,
                     teacher=load_teacher(cfg, ctx, run_dir), deadline=deadline))
    except KeyboardInterrupt:
        sys.exit(130)
    except AutocompressError as exc:
        print(one_line(exc, f"error (worker {index})"), file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        print(f"error (worker {index}): {exc}", file=sys.stderr)   # the main process resumes
        sys.exit(2)


def start_quiet(proc: Any) -> Any:
    """Start ``proc`` (spawned) with Ctrl-C ignored until its target restores it: a Ctrl-C
    while the new interpreter imports (before ``_worker_main`` can catch it) printed a
    traceback from the worker. The main process stops it then (``terminate``)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        proc.start()                  # signal handlers are the main thread's to set
        return proc
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)   # inherited across the exec
    try:
        proc.start()
    finally:
        signal.signal(signal.SIGINT, before)
    return proc


def run_workers(session: Session, workers: int) -> None:
    """Run the loop here and in ``workers - 1`` spawned processes. A worker that dies (killed,
    out of memory) is seen between this process's trials: its trial is recorded interrupted
    (replaced) and the worker started again, up to ``workers`` times in a run. At the end,
    a worker that failed otherwise (a user error, a full disk) did not leave the run short."""
    spawn = mp.get_context("spawn")
    method = mp.get_start_method(allow_none=True) or mp.get_all_start_methods()[0]

    def start(index: int) -> Any:
        return start_quiet(spawn.Process(target=_worker_main, daemon=True, args=(
            session.cfg, session.run_dir, session.progress.quiet, session.deadline, index,
            os.getpid(), method)))

    procs = {index: start(index) for index in range(1, workers)}
    started = list(procs.values())      # a restarted worker's dead one too, for the end
    restarts = [workers]

    def watch() -> None:
        for index, proc in list(procs.items()):
            code = proc.exitcode
            if code is None or code in (0, 2, 130) or not restarts[0]:
                continue          # running, done, or it said why (a user error: exit 2)
            by_number = {r["number"]: r for r in read_records(session.records_path)}
            why = f"its worker process died, exit code {code}"
            n = recover(session.study, by_number, session.ctx.objectives,
                        session.records_path, base_seed=session.cfg.seed, pid=proc.pid,
                        why=why + (": out of memory?" if code == -9 else ""))
            restarts[0] -= 1
            procs[index] = start(index)
            started.append(procs[index])
            session.progress.warn(f"warning: worker {index} died (exit code {code}); "
                                  f"{n} interrupted trial(s) replaced; worker started again")

    try:
        work(session, watch if procs else None)
    except BaseException:       # Ctrl-C reached every worker; SIGTERM or a crash only this one
        for proc in procs.values():
            proc.terminate()
        raise
    finally:
        for proc in procs.values():
            proc.join()
    if any(p.exitcode != 0 for p in started):   # all ended now: any RUNNING is stale (one
        # killed between its ask and its pid attribute is found only here)
        by_number = {r["number"]: r for r in read_records(session.records_path)}
        n = recover(session.study, by_number, session.ctx.objectives, session.records_path,
                    base_seed=session.cfg.seed, why="its worker process failed")
        if n:                   # one seen and replaced while the run went on is not again
            session.progress.warn(f"a worker process failed; {n} interrupted trial(s) "
                                  "replaced here")
        work(session)
