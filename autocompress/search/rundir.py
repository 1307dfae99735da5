"""Run directory: the unit users move around, resume and export from.

``config.resolved.yaml`` (every default filled in), ``env.json`` (package versions, seed,
profile sha256, git revision), ``study.journal`` (Optuna; optuna-dashboard opens it),
``records.jsonl``, ``teacher-*.pt``, ``trials/<n>/model.pt``, ``report/``, ``export/``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from autocompress.budgets import DEVICE_FILE  # and the device limits it was searched with
from autocompress.errors import RunDirError
from autocompress.yamlio import dump_yaml

PACKAGES = ("autocompress", "torch", "torch-pruning", "optuna", "numpy", "scikit-learn",
            "onnx", "onnxruntime", "pandas", "matplotlib", "ray")


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def require_run_dir(path: Path) -> Path:
    """``path`` if it is a run directory (it holds ``config.resolved.yaml``); else the error."""
    if path.is_file():       # a config, records.jsonl or another of the run's files
        inside = (path.parent / "config.resolved.yaml").is_file()
        raise RunDirError("a file, not a run directory", loc=str(path), hint=(
            f"pass the folder that holds it: {path.parent}" if inside else "pass the folder "
            "a previous `autocompress search` wrote (a config starts a new one: "
            "`autocompress search CONFIG`)"))
    if not (path / "config.resolved.yaml").is_file():
        raise RunDirError("not a run directory (no config.resolved.yaml)" if path.is_dir()
                          else "run directory not found", loc=str(path),
                          hint="pass the folder a previous `autocompress search` wrote")
    return path


_HELD: dict[Path, int] = {}    # run dir -> the fd holding its lock, while this process searches


def prepare_run_dir(path: Path, *, resume: bool) -> Path:
    """The run dir, created for a new run, locked for this search (``release_run_dir``)."""
    if resume:
        return _lock(require_run_dir(path))
    if path.exists() and not path.is_dir():
        raise RunDirError("run directory path is a file", loc=str(path),
                          hint="choose another --run-dir")
    if path.exists() and any(path.iterdir()):
        raise RunDirError("run directory already exists and is not empty", loc=str(path),
                          hint="choose another --run-dir, or continue it with --resume")
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / "trials").mkdir(exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create run directory: {exc.strerror}", loc=str(path),
                          hint="choose a writable --run-dir") from None
    return _lock(path)


def _lock(path: Path) -> Path:
    """An exclusive lock (``RUN_DIR/.lock``) for as long as this process searches it (the kernel
    frees it when the process dies, killed too): a second search of it, e.g. a --resume
    beside the live run, is refused; it failed the live run's running trials."""
    import fcntl
    import os

    key = path.resolve()
    if key in _HELD:
        return path
    fd = os.open(key / ".lock", os.O_RDWR | os.O_CREAT, 0o644)   # NFS locks need a writable file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirError("another search is running in this run directory", loc=str(path),
                          hint="let it finish or stop it, then continue with --resume") from None
    except OSError:          # a file system without locks: search unguarded, as before
        os.close(fd)
        return path
    _HELD[key] = fd
    return path


def release_run_dir(path: Path) -> None:
    import os

    fd = _HELD.pop(Path(path).resolve(), None)
    if fd is not None:
        os.close(fd)


RUN_FILES = ("config.resolved.yaml", "space.yaml")   # what a resumed run must keep
REDUCTION_FILE = "space_reduction.json"   # and the space reduction, where the run made one


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_file_hashes(run_dir: Path) -> dict[str, str]:
    """sha256 of the files a resumed run reads its settings from (kept in ``env.json``)."""
    optional = tuple(n for n in (REDUCTION_FILE, DEVICE_FILE) if (run_dir / n).is_file())
    return {name: _sha256(run_dir / name) for name in (*RUN_FILES, *optional)}


def check_run_files(run_dir: Path) -> None:
    """Before a resume or an export: the config, space and profiles are the ones the run
    started with
    (an edited space breaks the study; an edited config or profile would mix two searches).
    Run dirs written before the hashes were kept are not checked. A run dir without
    ``env.json``, written last, was killed while its files were written, before any trial
    (resumed, it lost the device's memory limits and every later check)."""
    try:
        env = json.loads((run_dir / "env.json").read_text())
    except (OSError, ValueError):
        records = run_dir / "records.jsonl"
        if records.is_file() and records.stat().st_size:     # not killed during set-up
            raise RunDirError("env.json is missing or unreadable (it holds the sha256 of the "
                              "run's config, space and profiles)", loc=str(run_dir / "env.json"),
                              hint="restore it from a copy of the run dir") from None
        raise RunDirError("the run was stopped while its files were written (env.json is "
                          "missing or unreadable): no trial ran", loc=str(run_dir),
                          hint="start the search again with a new --run-dir (or delete this "
                               "one)") from None
    saved = dict(env.get("run_files_sha256", {}))
    if saved:          # profiles: the copies in profiles/ (env.json has their sha256 anyway)
        saved.update({f"profiles/{n}.yaml": d for n, d in env.get("profiles_sha256", {}).items()})
    for name, digest in saved.items():
        path = run_dir / name
        if not path.is_file() or _sha256(path) != digest:
            raise RunDirError(f"{name} changed since the run started", loc=str(path),
                              hint="a run keeps the config, space and profiles it was searched "
                                   "with (a resume or an export would mix two): restore the "
                                   "file, or start a new run from the changed one")


def check_study_files(run_dir: Path) -> None:
    """Before a resume: the study is there when the records hold trials (a resume without
    ``study.journal`` started the study over and re-ran, and overwrote, every recorded trial;
    records missing for a study's finished trials: ``recovery.recover``), and neither is a
    link."""
    for name in ("records.jsonl", "study.journal", "rungs.jsonl"):
        if (run_dir / name).is_symlink():
            raise RunDirError(f"{name} is a symbolic link: the search would append to the "
                              "file it points to", loc=str(run_dir / name),
                              hint="replace the link with a copy of the file")
    records = run_dir / "records.jsonl"
    has_records = records.is_file() and records.stat().st_size > 0
    has_study = (run_dir / "study.journal").is_file() or (run_dir / "study.db").is_file()
    hint = ("restore it from a copy of the run dir, or start a new run (--run-dir); this "
            "one's trials stay readable by `autocompress report` and `export`")
    if has_records and not has_study:
        raise RunDirError("study.journal is missing though records.jsonl holds trials: a "
                          "resume would start the study over and run them again",
                          loc=str(run_dir / "study.journal"), hint=hint)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> str | None:
    """HEAD of the checkout this package runs from, ``-dirty`` when its package or profile
    files differ from HEAD; None when the package is not a checkout's (installed inside
    another repository, it gave that repository's HEAD)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                              cwd=root)
    try:
        top, head = git("rev-parse", "--show-toplevel"), git("rev-parse", "HEAD")
        if top.returncode or head.returncode or Path(top.stdout.strip()).resolve() != root:
            return None
        dirty = git("diff", "--quiet", "HEAD", "--", "autocompress", "hardware_profiles")
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + "-dirty" * (dirty.returncode == 1)


def gpu_name() -> str | None:
    """The GPU torch sees first, or None."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def environment(seed: int, profiles: Mapping[str, str]) -> dict[str, Any]:
    """What reproducing a run needs: versions, seed, profile hashes, platform, GPU (None
    where torch sees none: ``train.device: auto`` then trains on the CPU)."""
    import torch

    return {"seed": seed, "profiles_sha256": dict(profiles), "packages": package_versions(),
            "python": platform.python_version(), "platform": platform.platform(),
            "gpu": gpu_name(), "cuda": torch.version.cuda, "git_rev": git_revision(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def record_resume(run_dir: Path, launch: Mapping[str, Any] | None = None) -> str | None:
    """Add this resume's versions (and ``launch``: its backend and workers) to ``env.json``
    (``resumes``: the trials after it ran under them); a note when they differ from those
    the run started with."""
    env = json.loads((run_dir / "env.json").read_text())
    now = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "packages": package_versions(), "python": platform.python_version(),
           "gpu": gpu_name(), "git_rev": git_revision(), **dict(launch or {})}
    env["resumes"] = [*env.get("resumes", []), now]
    write_json(run_dir / "env.json", env)
    changed = [f"{name} {now['packages'].get(name)} (the run started with {version})"
               for name, version in env.get("packages", {}).items()
               if now["packages"].get(name) != version]
    if env.get("git_rev") != now["git_rev"]:
        changed.append(f"autocompress at {now['git_rev']} (the run started at "
                       f"{env.get('git_rev')})")
    return (f"note: this resume runs {', '.join(changed)}; env.json's resumes keep it"
            if changed else None)


def search_environment(run_dir: Path) -> dict[str, Any]:
    """The versions the run's search ran under (``env.json``: at its start and at each
    resume), for an export's manifest beside the export's own."""
    try:
        env = json.loads((run_dir / "env.json").read_text())
    except (OSError, ValueError):
        return {}
    return {key: env[key] for key in ("packages", "python", "gpu", "git_rev", "created",
                                      "resumes")
            if key in env}


def write_text(path: Path, text: str) -> None:
    """Write beside, then rename: a reader never sees half a file, and a symlink planted at
    ``path`` (a run dir from someone else) is replaced, not written through."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_yaml(path: Path, data: Any, header: str = "", **dump: Any) -> None:
    write_text(path, header + dump_yaml(data, sort_keys=False, **dump))


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> Any:
    """The SearchConfig of a run directory (``config.resolved.yaml``, with ``overrides``
    applied), importing its ``module:callable`` data and model from the original config's
    folder (``env.json``)."""
    from dataclasses import replace

    from autocompress.config import load_config

    cfg = load_config(require_run_dir(run_dir) / "config.resolved.yaml", overrides)
    try:
        config_dir = json.loads((run_dir / "env.json").read_text()).get("config_dir")
    except (OSError, ValueError):
        config_dir = None
    return replace(cfg, code_dir=config_dir) if config_dir else cfg


def load_run(run_dir: Path) -> tuple[Any, list[dict[str, Any]]]:
    """(SearchConfig, records) of a run directory."""
    from autocompress.search.records import read_records

    return load_run_config(run_dir), read_records(run_dir / "records.jsonl")
