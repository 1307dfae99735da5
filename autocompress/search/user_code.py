"""The user's own code a run imports (``data:``, ``model.builder``, ``teacher.model``): the
sha256 of each named module's source file is kept in ``env.json`` when the run starts, and a
resume or an export says which of them changed since. A warning, not a refusal (a comment or
a fix elsewhere in the file changes nothing the run depends on), but without it a resume
mixed trials trained on two datasets in one study, and an export rebuilt a model the trial's
weights were not trained in, silently. Only the named modules are hashed, not what they
import.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

KEY = "user_code_sha256"


def user_specs(cfg: Any) -> list[str]:
    """The ``module:callable`` strings of ``cfg`` (the built-in ``digits`` has none)."""
    return [s for s in (cfg.data.source, cfg.model.builder, cfg.teacher.model)
            if isinstance(s, str) and ":" in s]


def _source(module_name: str, import_dir: Path) -> Path | None:
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if file is None:
        added = str(import_dir) not in sys.path
        if added:
            sys.path.insert(0, str(import_dir))
        try:
            spec = importlib.util.find_spec(module_name)
            file = spec.origin if spec is not None else None
        except Exception:         # a parent package's __init__ runs, and may raise
            file = None
        finally:
            if added:
                sys.path.remove(str(import_dir))
    return Path(file) if file and str(file).endswith(".py") else None


def code_hashes(cfg: Any) -> dict[str, dict[str, str]]:
    """``{module: {"file": path, "sha256": digest}}`` of the user modules ``cfg`` names."""
    out: dict[str, dict[str, str]] = {}
    for spec in user_specs(cfg):
        name = spec.split(":")[0]
        path = _source(name, cfg.import_dir().resolve())
        if path is not None and path.is_file():
            out[name] = {"file": str(path.resolve()),
                         "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return out


def code_changes(run_dir: Path, cfg: Any, doing: str) -> list[str]:
    """Warning lines for the user modules whose source changed since the run started (none
    for a run dir written before the hashes were kept)."""
    try:
        saved = json.loads((run_dir / "env.json").read_text()).get(KEY) or {}
    except (OSError, ValueError):
        return []
    now = code_hashes(cfg)
    lines = []
    for name, then in saved.items():
        current = now.get(name)
        if current is None or current["sha256"] != then["sha256"]:
            what = "is gone" if current is None else "changed"
            lines.append(f"warning: {then['file']} ({name}) {what} since the search started: "
                         f"{doing}")
    return lines
