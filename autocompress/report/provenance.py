"""What a run was made from, read from its directory: ``config.resolved.yaml`` (as text),
``env.json`` (seed, package versions, profile sha256, git revision, platform). Either may be
missing or unreadable; what is missing is listed in ``notes`` instead of raising.

Example:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "env.json").write_text(json.dumps({"seed": 3, "packages": {"torch": "2.13"}}))
    >>> p = read_provenance(d)
    >>> p.seed, p.packages, p.notes
    (3, {'torch': '2.13'}, ('config.resolved.yaml not found',))
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.resolved.yaml"
ENV_NAME = "env.json"
_DETAIL_KEYS = (("created", "created"), ("git_rev", "git revision"), ("python", "python"),
                ("platform", "platform"), ("gpu", "GPU"), ("config_dir", "config dir"))


@dataclass(frozen=True, kw_only=True)
class Provenance:
    run_name: str
    config_text: str | None = None
    seed: int | None = None
    profile_hashes: dict[str, str] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    details: tuple[tuple[str, str], ...] = ()  # (label, value), e.g. ("git revision", "ea4e…")
    notes: tuple[str, ...] = ()


def read_provenance(run_dir: Path | str) -> Provenance:
    run = Path(run_dir)
    notes: list[str] = []
    config_text = _read_text(run / CONFIG_NAME, notes)
    env: dict[str, Any] = {}
    env_text = _read_text(run / ENV_NAME, notes)
    if env_text is not None:
        try:
            loaded = json.loads(env_text)
        except ValueError as exc:
            notes.append(f"{ENV_NAME} is not valid JSON ({exc})")
        else:
            if isinstance(loaded, dict):
                env = loaded
            else:
                notes.append(f"{ENV_NAME} does not hold a JSON object")
    seed = env.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        seed = _seed_from_config(config_text)
    return Provenance(
        run_name=run.resolve().name, config_text=config_text, seed=seed,
        profile_hashes=_str_map(env.get("profiles_sha256")),
        packages=_str_map(env.get("packages")),
        details=tuple((label, str(env[key])) for key, label in _DETAIL_KEYS
                      if env.get(key) not in (None, "")) + _launch_details(env),
        notes=tuple(notes))


def _launch_details(env: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The backend and workers the run started with, and each resume (its time, revision,
    backend and workers, and the target it set): the trials after a resume ran under it."""
    def launch(entry: Any) -> str:
        if not isinstance(entry, dict) or entry.get("backend") is None:
            return ""
        return f"{entry['backend']}, {entry.get('workers')} worker(s)"

    out = [("backend", launch(env))] if launch(env) else []
    resumes = env.get("resumes")
    for i, entry in enumerate(resumes if isinstance(resumes, list) else [], start=1):
        if isinstance(entry, dict):
            parts = [str(entry.get("at") or ""),
                     f"git {entry['git_rev']}" if entry.get("git_rev") else "", launch(entry),
                     f"target {entry['target_trials']} trials (baselines included)"
                     if entry.get("target_trials") is not None else ""]
            out.append((f"resume {i}", "; ".join(p for p in parts if p)))
    return tuple(out)


def _read_text(path: Path, notes: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        notes.append(f"{path.name} not found")
    except OSError as exc:
        notes.append(f"{path.name} unreadable ({exc.strerror or exc})")
    return None


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in sorted(value.items())}


def _seed_from_config(text: str | None) -> int | None:
    """The top-level ``seed:`` of the resolved config, without a YAML parser."""
    match = re.search(r"^seed:\s*(-?\d+)\s*(#.*)?$", text or "", flags=re.MULTILINE)
    return int(match.group(1)) if match else None
