"""What a search's Python entry points (``run_search``, ``run_search_ray``) check and do around
a run, so that a call from Python gets what ``autocompress search`` gets: a config built or
changed in Python (``dataclasses.replace``) validated as a config file is, a resumed run
continued with its own config, the report written, and torch's thread count given back.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.config import SearchConfig
from autocompress.errors import AutocompressError, RunDirError

if TYPE_CHECKING:
    from autocompress.search.session import SearchResult

# Settings a resumed run may change: they set how fast trials run (CPU threads per trial,
# e.g. on a machine with other cores; the device they train on) or how long this command
# may run, not what the study samples or what a trial scores.
RESUME_SETTABLE = ("search.threads", "search.timeout_s", "train.device")
# a resume may be given these differently: the trial count (raised with ``trials``), the
# baselines (the run keeps its own) and the space file's path (its text is compared)
_RESUME_IGNORED = ("search.trials", "search.baselines", "model.space")


def check_call(cfg: SearchConfig | None, run_dir: str | Path, *, trials: int | None,
               workers: int, resume: bool) -> tuple[SearchConfig, Path]:
    """The config to search with and the run dir; an AutocompressError for a call that the
    command line would have refused."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise AutocompressError(
            "a search was started while a worker process imported your script",
            hint="worker processes are spawned and import the main script: put the call "
                 "under `if __name__ == \"__main__\":`")
    for name, value in (("trials", trials), ("workers", workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, Integral)
                                  or value < 1):
            raise AutocompressError(f"expected a whole number >= 1, got {value!r}", loc=name)
    run_dir = Path(run_dir)
    if resume:
        return resume_config(cfg, run_dir), run_dir
    if cfg is None:
        raise AutocompressError("a new search needs a config", loc="cfg",
                                hint="autocompress.load_config('config.yaml')")
    return check_config(cfg), run_dir


def check_config(cfg: SearchConfig) -> SearchConfig:
    """``cfg`` through every check a config file gets (a config changed in Python skipped
    them: an unknown sampler failed after the teacher trained); errors name the field."""
    from autocompress.config import parse_config
    from autocompress.yamlio import Located

    if not isinstance(cfg, SearchConfig):
        raise AutocompressError(f"expected a SearchConfig, got {type(cfg).__name__}",
                                loc="cfg", hint="autocompress.load_config('config.yaml')")
    doc = Located(data=cfg.to_dict(), file=f"{cfg.path or 'the config'} (as given)")
    checked = parse_config(doc, base_dir=cfg.base_dir)
    return replace(checked, path=cfg.path, code_dir=cfg.code_dir)


def resume_config(cfg: SearchConfig | None, run_dir: Path) -> SearchConfig:
    """The run's own config (``config.resolved.yaml``); ``cfg``, if given, may change only
    :data:`RESUME_SETTABLE` (a resume with another config mixed two searches in one run).
    Its ``search.trials`` and ``search.baselines`` are not used: the run keeps its own
    (``trials=`` raises the count), as the command line does."""
    from autocompress.search.rundir import check_run_files, load_run_config

    own = load_run_config(run_dir)
    check_run_files(run_dir)            # an edited run file first: that is what changed
    if cfg is None:
        return own
    mine, given = _flat(own.to_dict()), _flat(cfg.to_dict())
    for key in sorted(set(mine) | set(given)):
        if key not in RESUME_SETTABLE + _RESUME_IGNORED and mine.get(key) != given.get(key):
            raise RunDirError(
                f"the config given differs from the run's at {key}: "
                f"{given.get(key, 'not set')!r}, the run has {mine.get(key, 'not set')!r}",
                loc=str(run_dir / "config.resolved.yaml"),
                hint="give None as the config to continue the run as it was searched (a "
                     f"resume may change only {', '.join(RESUME_SETTABLE)}); start a new run "
                     "to change the rest")
    space = Path(cfg.space_path())       # moved since: the run searches its own copy anyway
    if space.is_file() and space.read_bytes() != (run_dir / "space.yaml").read_bytes():
        raise RunDirError(f"the search space {cfg.space_path()} differs from the run's copy",
                          loc=str(run_dir / "space.yaml"),
                          hint="give None as the config to continue the run as it was "
                               "searched; start a new run to search another space")
    return check_config(replace(own, search=replace(own.search, threads=cfg.search.threads,
                                                    timeout_s=cfg.search.timeout_s),
                                train=replace(own.train, device=cfg.train.device)))


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@contextmanager
def threads_kept() -> Iterator[None]:
    """A search sets torch's thread count (``search.threads``); the caller gets its own back."""
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_report_for(run_dir: Path, records: list[dict[str, Any]], cfg: SearchConfig
                     ) -> list[Path]:
    from autocompress.budgets import budgets_of
    from autocompress.config import objectives_of, pareto_objectives
    from autocompress.report import write_report

    return write_report(run_dir, records, pareto_objectives(objectives_of(cfg)), budgets_of(cfg))


def report_run(run_dir: str | Path) -> list[Path]:
    """(Re)write a run dir's ``report/`` from its records; the files written."""
    from autocompress.search.rundir import check_run_files, load_run

    cfg, records = load_run(Path(run_dir))
    check_run_files(Path(run_dir))     # an edited budget would be drawn as the run's
    return write_report_for(Path(run_dir), records, cfg)


def entry(search: Callable[..., SearchResult], cfg: SearchConfig | None, run_dir: str | Path,
          *, trials: int | None, workers: int, resume: bool, report: bool,
          **kwargs: Any) -> SearchResult:
    """Run a backend's ``search(cfg, run_dir, trials=, workers=, resume=, **kwargs)`` as the
    command line does: the call checked, torch's threads given back, the report written."""
    from autocompress.search.rundir import release_run_dir

    cfg, path = check_call(cfg, run_dir, trials=trials, workers=workers, resume=resume)
    try:
        with threads_kept():
            result = search(cfg, path, trials=trials, workers=workers, resume=resume, **kwargs)
    finally:
        release_run_dir(path)            # taken when the session opened the run dir
    if report:
        result = replace(result, report=tuple(write_report_for(path, result.records, cfg)))
    return result
