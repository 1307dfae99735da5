"""Trial records: one JSON object per line in ``records.jsonl`` — the run's source of truth.

Appends are flushed and fsync'd, so a crash or kill never loses a completed trial.
A corrupted line is skipped with a warning naming the file and line, never silently.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATES = ("complete", "infeasible", "failed", "pruned")


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    number: int
    state: str
    params: Mapping[str, Any]
    plan_id: str = ""
    plan: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    cost: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    constraints: Mapping[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    seed: int = 0
    error: str | None = None
    baseline: str | None = None
    rung: int | None = None          # dense-phase epochs reached when early-stopped (pruned)
    note: str | None = None           # e.g. why a baseline lies outside the searched space
    started_at: float | None = None   # unix time the trial started (ends duration_s later)
    worker: str | None = None         # host:pid of the process that ran it

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {self.state!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.constraints.values())


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) on ``path`` (created if missing), held by
    one process at a time: serialises appends and ask-decisions of several workers."""
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def append_record(path: Path, record: TrialRecord | Mapping[str, Any]) -> None:
    """Append one record (flushed, fsync'd), under a lock so several worker processes can
    append to the same file without interleaving."""
    data = record.to_dict() if isinstance(record, TrialRecord) else dict(record)
    with file_lock(path.with_name(f".{path.name}.lock")):
        append_line(path, json.dumps(data, sort_keys=True, allow_nan=False, default=float))


def append_line(path: Path, text: str) -> None:
    """Append one line to a JSON-lines file (flushed, fsync'd); the caller holds its lock.
    A kill mid-write leaves no final newline: the line then starts on a fresh one, so only
    the torn line is lost, never the next."""
    line = text + "\n"
    with open(path, "a+b") as fh:
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = "\n" + line
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def counted(records: list[dict[str, Any]]) -> int:
    """Finished trials that count towards the target (interrupted ones are replaced)."""
    return sum(1 for r in records if not str(r.get("error") or "").startswith("interrupted"))


def read_records(path: Path, *, warn: bool = True) -> list[dict[str, Any]]:
    """All valid records of a run (latest record wins for a repeated trial number)."""
    if not path.exists():
        return []
    by_number: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                number = int(data["number"])
                if data.get("state") not in STATES:
                    raise ValueError(f"bad state {data.get('state')!r}")
            except (ValueError, KeyError, TypeError) as exc:
                if warn:
                    print(f"warning: {path}:{lineno}: skipping corrupted record ({exc})",
                          file=sys.stderr)
                continue
            by_number[number] = data
    return [by_number[n] for n in sorted(by_number)]
