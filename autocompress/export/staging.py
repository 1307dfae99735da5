"""Export's staging folder: written under a temporary name, locked while written, renamed
at the end, so nothing half-written looks complete; one a killed export left is removed by
the next export into the same parent."""
from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import time
from contextlib import suppress
from pathlib import Path

from autocompress.errors import AutocompressError


def staging_folder(parent: Path, prefix: str) -> tuple[Path, int]:
    """A new folder with a unique name, made with the umask's permissions like the run dir's
    other folders (``tempfile.mkdtemp`` makes it 0700), and the descriptor that holds its
    lock while this export writes it. Staging folders an export killed (``kill -9``) left
    behind, whose lock nobody holds, are removed first: those older than a minute (a new
    one is made, then locked: in between it is unlocked)."""
    name = re.compile(re.escape(prefix) + "[0-9a-f]{8}")
    for old in parent.iterdir():
        if name.fullmatch(old.name) and old.is_dir() and not old.is_symlink():
            with suppress(OSError):      # another export may remove it meanwhile
                if time.time() - old.stat().st_mtime <= 60:
                    continue
                fd = locked(old)
                try:
                    shutil.rmtree(old)
                finally:
                    os.close(fd)
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path, locked(path)


def locked(folder: Path) -> int:
    """An open descriptor of ``folder`` holding an exclusive ``flock`` on it; raises
    ``OSError`` (BlockingIOError) when another process holds it."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def named_for(exc: AutocompressError, tmp: Path, out: Path) -> AutocompressError:
    """``exc`` naming ``out`` where it names the staging folder ``tmp`` (removed on failure),
    and saying that nothing was written."""
    if str(tmp) not in str(exc):
        return exc
    def fix(text: str | None) -> str | None:
        return text.replace(str(tmp), str(out)) if text else text
    return type(exc)(f"{fix(exc.raw_message)}; nothing was written to {out}",
                     loc=fix(exc.loc), hint=fix(exc.hint))
