"""Stopping what a killed driver's local Ray left behind. A driver killed with SIGKILL (or
by the OOM killer) leaves its Ray's dashboard and runtime-env agents running (about 85 MB
each, parent pid 1, SIGTERM ignored once their raylet is gone) and its session folder. They
are found by their open files under that folder: on resume of that run
(:func:`reap_previous_ray`, from the run dir's ``.ray_temp`` marker), and, for the
``/tmp/ac-ray-*`` folders a long run-dir path needs, whenever a local Ray starts
(:func:`reap_orphans`: the folder's ``owner`` file names the driver, dead now)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

ORPHAN_PREFIX = "ac-ray-"      # /tmp/ac-ray-*: a local Ray's session folder outside the run dir
OWNER = "owner"                # in it: "<driver pid> <its start time>" (a pid is reused)


def processes_using(folder: Path) -> list[int]:
    """Pids of processes with a file open under ``folder`` (Linux /proc; [] elsewhere)."""
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(os.readlink(fd).startswith(f"{folder}/") for fd in (proc / "fd").iterdir()):
                out.append(int(proc.name))
        except OSError:
            continue
    return out


def kill_processes_using(folder: Path, *, rounds: int = 1) -> int:
    """SIGKILL the processes with files open under ``folder`` (this one excepted), again
    for up to ``rounds`` rounds half a second apart while any is left (a raylet still alive
    may start a new worker). Returns how many were killed."""
    import signal
    import time

    killed = 0
    for i in range(rounds):
        pids = [p for p in processes_using(folder) if p != os.getpid()]
        if not pids:
            break
        for pid in pids:              # Ray's agents ignore SIGTERM once their raylet is gone
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        if i + 1 < rounds:
            time.sleep(0.5)
    return killed


def reap_previous_ray(run_dir: Path) -> int:
    """After a driver was killed (SIGKILL), some processes of the local Ray it started
    (dashboard and runtime-env agents) outlive it. Stop exactly those — found by their open
    files in that run's own Ray folder — and remove a /tmp folder of ours. Returns how many.
    A marker written for another run dir that still exists (this one is a copy of it, whose
    Ray may be alive) is dropped without touching that Ray; one whose run dir is gone (this
    one was moved) is reaped."""
    marker = run_dir / ".ray_temp"
    if not marker.is_file():
        return 0
    lines = marker.read_text().split("\n")
    folder, owner = Path(lines[0].strip()), (lines[1].strip() if len(lines) > 1 else "")
    if owner and Path(owner) != run_dir.resolve() and Path(owner).is_dir():
        marker.unlink()
        return 0
    killed = kill_processes_using(folder)
    if folder.name.startswith(ORPHAN_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)
    marker.unlink()
    return killed


def _started(pid: int) -> str | None:
    """A process's start time (clock ticks since boot, /proc/PID/stat field 22), None when
    no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def write_owner(folder: Path) -> None:
    """Mark ``folder`` as this driver's, for :func:`reap_orphans`; unmarked (never reaped)
    where a process's start time cannot be read (no /proc: it would look dead at once)."""
    if (started := _started(os.getpid())) is not None:
        (folder / OWNER).write_text(f"{os.getpid()} {started}\n")


def reap_orphans(tmp: Path = Path("/tmp")) -> list[tuple[Path, int]]:
    """Stop the processes of, and remove, each ``tmp/ac-ray-*`` folder whose driver is dead
    (its ``owner`` pid is gone, or is another process now). A folder without an owner file
    (one being made, or made by an older version) is left alone. Returns (folder, processes
    stopped) per folder removed."""
    out = []
    for folder in tmp.glob(f"{ORPHAN_PREFIX}*"):
        try:
            pid, started = (folder / OWNER).read_text().split()
            if _started(int(pid)) == started or _started(os.getpid()) is None:
                continue          # its driver runs, or no /proc here to tell
        except (OSError, ValueError):
            continue
        out.append((folder, kill_processes_using(folder)))
        shutil.rmtree(folder, ignore_errors=True)
    return out
