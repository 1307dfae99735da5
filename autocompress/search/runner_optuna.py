"""Optuna backend: the ask/tell loop (``search/loop.py``) over the run's study in this
process and, with ``workers > 1``, in spawned worker processes sharing the study's journal
file; every trial is appended to records.jsonl before the next one starts."""
from __future__ import annotations

from pathlib import Path

from autocompress.config import SearchConfig
from autocompress.search.loop import run_workers
from autocompress.search.session import SearchResult, check_cpus, finish, open_session


def run_search(cfg: SearchConfig, run_dir: Path, *, trials: int | None = None,
               baselines: bool = True, quiet: bool = False, resume: bool = False,
               workers: int = 1) -> SearchResult:
    """Run (or, with ``resume``, continue) a search in ``run_dir``; ``workers`` processes
    share the study (the journal file) and the records.

    The number of finished trials to reach is fixed when the run starts (trials + baselines)
    and stored in the study, so a resumed run ends with the same count; trials that failed
    because the run was interrupted are replaced.
    """
    session = open_session(cfg, run_dir, trials=trials, baselines=baselines, quiet=quiet,
                           resume=resume)
    check_cpus(session, workers)
    run_workers(session, workers)
    return finish(session)
