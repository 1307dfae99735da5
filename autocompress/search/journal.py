"""The study's storage file: Optuna's journal (an append-only JSON-lines log) with our lock.

Optuna's own file locks are a symlink or an open(O_EXCL) file with a grace period: a holder
killed mid-append leaves the lock behind, the next process waits out the grace period (or
spins, when the run dir was moved and the symlink dangles), and two waiters can both break
it. An ``flock`` has none of that: the kernel frees it when its holder dies. The lock also
cuts a torn last line (a writer killed mid-append) each time it is taken, so the next append
never glues onto it; Optuna would read the glued line as an error from then on."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Any

JOURNAL = "study.journal"


def cut_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last newline (call under the writers' lock). Reads only
    the tail; returns the bytes cut."""
    try:
        f = path.open("rb+")
    except FileNotFoundError:
        return 0
    with f:
        size = os.fstat(f.fileno()).st_size     # of the open file, not a cached stat
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        keep, pos = 0, size
        while pos > 0:
            step = min(1 << 16, pos)
            f.seek(pos - step)
            i = f.read(step).rfind(b"\n")
            if i >= 0:
                keep = pos - step + i + 1
                break
            pos -= step
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


class JournalLock:
    """Lock object for ``optuna.storages.journal.JournalFileBackend`` (it calls ``acquire``
    and ``release``): an exclusive ``flock`` on ``.<journal>.lock``, then the torn-tail cut."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.path = journal.with_name(f".{journal.name}.lock")
        self._fh: IO[bytes] | None = None

    def acquire(self) -> bool:
        fh = open(self.path, "a+b")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except BaseException:                  # e.g. Ctrl-C while waiting
            fh.close()
            raise
        self._fh = fh
        try:
            cut_torn_tail(self.journal)
        except BaseException:
            self.release()
            raise
        return True

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    def __getstate__(self) -> dict[str, Any]:     # a study pickled (Ray) holds no lock
        return {"journal": self.journal, "path": self.path, "_fh": None}


def journal_storage(run_dir: Path) -> Any:
    """Optuna storage on ``RUN_DIR/study.journal``, its torn tail (if any) cut first."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = (run_dir / JOURNAL).resolve()
    lock = JournalLock(path)
    lock.acquire()
    try:
        check_journal(path)
    finally:
        lock.release()
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=lock))


def check_journal(path: Path) -> None:
    """Every line of the journal is a JSON object (Optuna's replay raised a JSONDecodeError
    traceback on a garbled line)."""
    import json

    from autocompress.errors import RunDirError

    if not path.is_file():
        return
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            try:
                ok = isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            if not ok:
                raise RunDirError(f"line {number} is not a journal line (JSON object): "
                                  f"{line[:60]!r}", loc=str(path),
                                  hint="restore study.journal from a copy of the run dir; "
                                       "the run's trials stay readable by `autocompress "
                                       "report` and `export`")
