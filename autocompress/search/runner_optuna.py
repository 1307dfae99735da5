"""Optuna backend: the ask/tell loop (``search/loop.py``) over the run's study in this
process and, with ``workers > 1``, in spawned worker processes sharing the study's journal
file; every trial is appended to records.jsonl before the next one starts."""
from __future__ import annotations

from pathlib import Path

from autocompress.config import SearchConfig
from autocompress.search.entry import entry
from autocompress.search.loop import run_workers
from autocompress.search.session import SearchResult, check_cpus, finish, open_session


def run_search(cfg: SearchConfig | None, run_dir: str | Path, *, trials: int | None = None,
               baselines: bool = True, quiet: bool = False, resume: bool = False,
               workers: int = 1, report: bool = True) -> SearchResult:
    """Run (or, with ``resume``, continue) a search in ``run_dir``; ``workers`` processes
    share the study (the journal file) and the records. Returns the records and the front;
    ``report`` writes ``run_dir/report/`` as ``autocompress search`` does.

    The number of finished trials to reach is fixed when the run starts (trials + baselines)
    and stored in the study, so a resumed run ends with the same count; trials that failed
    because the run was interrupted are replaced. A resume continues with the run's own
    config: give None, or a config that differs only in ``search.threads`` and
    ``search.timeout_s`` (its ``search.trials`` and ``search.baselines`` are not used: the
    run keeps its own; ``trials`` raises the count). With ``workers > 1`` from a script, call it under
    ``if __name__ == "__main__":`` (the worker processes are spawned and import the script).
    """
    return entry(_run, cfg, run_dir, trials=trials, workers=workers, resume=resume,
                 report=report, baselines=baselines, quiet=quiet)


def _run(cfg: SearchConfig, run_dir: Path, *, trials: int | None, workers: int, resume: bool,
         baselines: bool, quiet: bool) -> SearchResult:
    session = open_session(cfg, run_dir, trials=trials, baselines=baselines, quiet=quiet,
                           resume=resume, backend="optuna", workers=workers)
    check_cpus(session, workers)
    run_workers(session, workers)
    return finish(session)
