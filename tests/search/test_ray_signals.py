"""A Ray search stopped by SIGTERM (a preempted machine, a scheduler) says so in one line and
keeps its completed trials: a local Ray starts in a thread, where Ray's C++ core took SIGTERM
for its crash handler (a stack dump, then an abort 3 s later while the driver was still
stopping: exit 134 and no --resume line when the whole process group got the signal)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from autocompress.search import ray_cluster

from ..conftest import ROOT, TINY, wait_for_first_record, write_config


def test_ray_started_in_a_thread_leaves_sigterm_to_the_callers_handler(monkeypatch):
    import faulthandler

    import ray

    def take_sigterm(**kwargs: object) -> None:    # a C-level handler, as Ray's core installs
        faulthandler.register(signal.SIGTERM, chain=False)

    monkeypatch.setattr(ray, "init", take_sigterm)
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        start = threading.Thread(target=ray_cluster.init_ray)
        start.start()
        start.join()
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        faulthandler.unregister(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]


def _search(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autocompress.cli", "search", *args,
                             "--backend", "ray", "--workers", "2", "--quiet"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="known race (README, crash safety): when the group's "
                   "SIGTERM has killed the local Ray's GCS first, ray.shutdown can wait on it "
                   "until Ray's core ends the driver after 60 s with exit 1 (once in 5 runs, "
                   "2026-11-28); still to fix: a shutdown that does not wait on a dead GCS")
def test_sigterm_to_the_whole_job_is_one_line_and_resume_completes(tmp_path):
    """As a scheduler or a machine's shutdown does, the signal goes to every process of the
    job (the driver and its Ray); the resume then runs the rest, each number once."""
    cfg = write_config(tmp_path, TINY.replace("trials: 3", "trials: 4"))
    run = tmp_path / "run"
    records = run / "records.jsonl"
    proc = _search(str(cfg), "--run-dir", str(run))
    wait_for_first_record(proc, records)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == [f"interrupted: completed trials are saved in {records}; "
                                        f"continue with: autocompress search --resume {run}"]
    kept = [json.loads(x) for x in records.read_text().splitlines()]
    proc = _search("--resume", str(run))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert lines[:len(kept)] == kept                              # completed trials kept
    numbers = [r["number"] for r in lines]
    assert len(numbers) == len(set(numbers))                      # each number once
    counted = [r for r in lines if not str(r["error"] or "").startswith("interrupted")]
    assert len(counted) == 4 + 5                                  # 4 trials + 5 baselines


def test_sigaction_is_none_where_ctypes_cannot_open_the_process(monkeypatch):
    """On Windows ``ctypes.CDLL(None)`` raises TypeError ('/' in None): a local Ray, started in
    a thread, failed to start there instead of keeping Ray's SIGTERM disposition."""
    import ctypes

    def windows_cdll(name: object, *args: object, **kwargs: object) -> None:
        raise TypeError("argument of type 'NoneType' is not iterable")

    monkeypatch.setattr(ctypes, "CDLL", windows_cdll)
    assert ray_cluster.sigaction(signal.SIGTERM) is None
