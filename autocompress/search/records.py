"""Trial records: one JSON object per line in ``records.jsonl`` — the run's source of truth.

Appends are flushed and fsync'd, so a crash or kill never loses a completed trial.
A corrupted line is skipped with a warning naming the file and line, never silently.
"""
from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autocompress.errors import RunDirError, strip_ansi

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
    threads: int | None = None        # torch CPU threads it ran with: scores depend on it
    channels: Mapping[str, Sequence[int]] = field(default_factory=dict)   # pruned layer ->
    # [output channels kept, of]: the ratio is rounded (profiles' align.channels): .25 of 8 kept 8

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
    if isinstance(data.get("error"), str):     # an exception's text: Ray's is coloured
        data["error"] = strip_ansi(data["error"])
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


def interrupted(record: Mapping[str, Any]) -> bool:
    """A trial stopped from outside (a kill, a lost worker): replaced, not counted."""
    return str(record.get("error") or "").startswith("interrupted")


def counted(records: list[dict[str, Any]]) -> int:
    """Finished trials that count towards the target (interrupted ones are replaced)."""
    return sum(1 for r in records if not interrupted(r))


def read_records(path: Path, *, warn: bool = True) -> list[dict[str, Any]]:
    """All valid records of a run (latest record wins for a repeated trial number)."""
    return RecordLog(path, warn=warn).read(final=True)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_record(data: Any) -> int:
    """Its trial number, or ``ValueError`` naming the first field of the wrong type: a
    hand-edited record (a string accuracy) crashed the report and export far from the line.

    >>> check_record({"number": 3, "state": "complete", "metrics": {"accuracy": "0.9"}})
    Traceback (most recent call last):
    ...
    ValueError: metrics.accuracy is '0.9', not a number
    """
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if not isinstance(data.get("number"), int) or isinstance(data["number"], bool):
        raise ValueError(f"number is {data.get('number')!r}, not an integer")
    if data.get("state") not in STATES:
        raise ValueError(f"bad state {data.get('state')!r}")
    for key in ("params", "plan", "metrics", "constraints", "cost", "channels"):
        if not isinstance(data.get(key, {}), dict):
            raise ValueError(f"{key} is {data[key]!r}, not an object")
    flat = [(f"{k}.{n}", v) for k in ("metrics", "constraints")
            for n, v in data.get(k, {}).items()]
    for profile, cost in data.get("cost", {}).items():
        if not isinstance(cost, dict):
            raise ValueError(f"cost.{profile} is {cost!r}, not an object")
        flat += [(f"cost.{profile}.{n}", cost[n]) for n in ("latency_ms", "flash_kb",
                                                            "peak_sram_kb") if n in cost]
    flat += [(k, data[k]) for k in ("seed", "duration_s") if k in data]
    for name, value in flat:
        if not _number(value):
            raise ValueError(f"{name} is {value!r}, not a number")
    return int(data["number"])


class RecordLog:
    """``records.jsonl`` read incrementally: each :meth:`read` parses only the lines appended
    since the last one and returns every valid record (as :func:`read_records`). A search reads
    the records twice per trial (the ask decision, the progress line): re-reading the whole
    file made a run quadratic (1 s per trial at 466 trials of a 78-layer model, 17 MB)."""

    def __init__(self, path: Path, *, warn: bool = False) -> None:
        self.path, self.warn = path, warn
        self._reset(None)

    def _reset(self, inode: int | None) -> None:
        self._inode, self._offset, self._lineno = inode, 0, 0
        self._by_number: dict[int, dict[str, Any]] = {}
        self._line_of: dict[int, int] = {}

    def read(self, *, final: bool = False) -> list[dict[str, Any]]:
        """The records so far. Only complete lines are parsed (another worker may be in
        the middle of an append) unless ``final``: then a last line without its newline
        (torn by a kill) is parsed too, and skipped with a warning when it is not valid."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._reset(None)
            return []
        if stat.S_ISDIR(st.st_mode):
            raise RunDirError("records.jsonl is a folder, not the run's records file",
                              loc=str(self.path), hint="move it away, or point at the run dir "
                                                       "that holds the records")
        if st.st_ino != self._inode or st.st_size < self._offset:   # replaced or cut
            self._reset(st.st_ino)
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = len(data) if final else data.rfind(b"\n") + 1
        for raw in data[:end].decode("utf-8", errors="replace").splitlines():
            self._lineno += 1
            if raw.strip():
                self._add(raw, self._lineno)
        out = [self._by_number[n] for n in sorted(self._by_number)]
        if final:                # a torn tail read once: the next read starts over
            self._reset(None)
        else:
            self._offset += end
        return out

    def _add(self, line: str, lineno: int) -> None:
        try:
            data = json.loads(line)
            number = check_record(data)
        except (ValueError, KeyError, TypeError) as exc:
            if self.warn:
                print(f"warning: {self.path}:{lineno}: skipping corrupted record ({exc})",
                      file=sys.stderr)
            return
        self._by_number[number] = data
        self._line_of[number] = lineno

    def counted_before(self, number: int) -> int:
        """Records that count towards the target written before trial ``number``'s (its
        place in the run: several workers' lines interleave in the file)."""
        line = self._line_of.get(number, self._lineno + 1)
        return sum(1 for n, rec in self._by_number.items()
                   if self._line_of[n] < line and counted([rec]))
