"""The local Ray starts in a background thread during the driver's set-up: after the config and
run dir are checked, before the teacher; its errors reach the driver; its thread outlives the
start (Ray's processes die with the thread that started them)."""
from __future__ import annotations

import os
import time

import pytest

from autocompress.config import load_config
from autocompress.errors import AutocompressError
from autocompress.search import ray_cluster, ray_reap
from autocompress.search.session import open_session

from ..conftest import TINY, write_config


def test_start_error_is_raised_in_the_driver_and_stop_cleans_up(tmp_path, monkeypatch):
    def boom(**_: object) -> None:
        raise RuntimeError("raylet did not start")

    monkeypatch.setattr(ray_cluster, "init_ray", boom)
    monkeypatch.setattr(ray_cluster, "shutdown_ray", lambda: None)
    local = ray_cluster.LocalRay(tmp_path, 2)
    assert (tmp_path / ".ray_temp").read_text().split("\n")[0] == str(local.temp)
    with pytest.raises(RuntimeError, match="raylet did not start"):
        local.wait()
    local.stop()
    assert not local.thread.is_alive() and not (tmp_path / ".ray_temp").exists()


def test_thread_lives_until_stop(tmp_path, monkeypatch):
    started, stopped = [], []
    monkeypatch.setattr(ray_cluster, "init_ray", lambda **kw: started.append(kw["num_cpus"]))
    monkeypatch.setattr(ray_cluster, "shutdown_ray", lambda: stopped.append(True))
    local = ray_cluster.LocalRay(tmp_path, 3)
    local.wait()
    assert started == [3] and local.thread.is_alive() and not stopped
    local.stop()
    assert stopped == [True] and not local.thread.is_alive()


def test_on_ready_runs_once_the_run_dir_is_written_before_the_teacher(tmp_path):
    run = tmp_path / "run"
    seen = []

    def ready(progress: object) -> None:
        seen.append(((run / "config.resolved.yaml").is_file(), any(run.glob("teacher-*.pt"))))

    open_session(load_config(write_config(tmp_path, TINY)), run, quiet=True, on_ready=ready)
    assert seen == [(True, False)] and any(run.glob("teacher-*.pt"))


def test_on_ready_does_not_run_on_a_config_mistake(tmp_path):
    seen = []
    body = TINY.replace("data: digits", "data: nosuchmodule:make")
    with pytest.raises(AutocompressError, match="nosuchmodule"):
        open_session(load_config(write_config(tmp_path, body)), tmp_path / "run", quiet=True,
                     on_ready=seen.append)
    assert seen == [] and not (tmp_path / "run").exists()


def test_a_finished_run_resumed_on_ray_starts_no_ray(tmp_path, monkeypatch):
    from autocompress.search import runner_ray
    from autocompress.search.runner_optuna import run_search

    cfg = load_config(write_config(tmp_path, TINY.replace("trials: 3", "trials: 1")))
    run_search(cfg, tmp_path / "run", quiet=True, baselines=False, report=False)

    def no_ray(*a: object) -> None:
        raise AssertionError("a local Ray was started with no trial left to run")

    monkeypatch.setattr(runner_ray, "LocalRay", no_ray)
    res = runner_ray.run_search_ray(cfg, tmp_path / "run", quiet=True, resume=True, report=False)
    assert len(res.records) == 1


def test_tune_runs_its_trials_in_the_workers_ray_started_with_the_imports_done(tmp_path):
    """The raylet starts one worker per CPU, each importing torch and Ray Tune as it starts
    (during the driver's set-up). Tune gave its trial actors a runtime env of their own
    (``PL_DISABLE_FORK``), which no started worker has, so each actor started a fresh process
    after the set-up. Now the actor runs with an empty runtime env, in a worker the raylet
    started with the imports done. (Whether it lands on the very worker started first is
    Ray's scheduling: it did in most runs, not in every one, so that is not asserted.)"""
    import os
    import sys

    import ray
    from ray import tune

    def trial(config: dict) -> None:
        tune.report({"env": ray.get_runtime_context().get_runtime_env_string(),
                     "loaded": all(name in sys.modules for name in ray_cluster.PRELOAD)})

    before = os.environ.get("PL_DISABLE_FORK")
    local = ray_cluster.LocalRay(tmp_path, 1)
    try:
        local.wait()
        res = tune.Tuner(tune.with_resources(trial, {"cpu": 1}),
                         run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"),
                                                   verbose=0)).fit()
        assert res[0].metrics["loaded"] and res[0].metrics["env"] in ("{}", "")
    finally:
        local.stop()
    from ray.tune.execution import class_cache  # left as it was, for a later Ray

    assert class_cache.DEFAULT_ENV_VARS.get("PL_DISABLE_FORK") == "1"
    assert os.environ.get("PL_DISABLE_FORK") == before


def test_a_copied_run_dir_does_not_stop_the_original_runs_ray(tmp_path):
    """The marker of a killed run's Ray names its run dir: a copy of the run dir resumed
    while the original still runs must not kill the original's Ray processes."""
    import shutil
    import subprocess
    import sys

    original = tmp_path / "run"
    original.mkdir()
    folder = ray_cluster.ray_temp_dir(original)
    (folder / "session.log").write_text("")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; "
                               "f = open(sys.argv[1]); time.sleep(60)", str(folder / "session.log")])
    try:
        deadline = time.time() + 20
        while holder.pid not in ray_reap.processes_using(folder) and time.time() < deadline:
            time.sleep(0.1)
        shutil.copytree(original, tmp_path / "copy")
        assert ray_reap.reap_previous_ray(tmp_path / "copy") == 0
        assert holder.poll() is None                     # the original's process lives
        assert ray_reap.reap_previous_ray(original) == 1   # its own run dir: reaped
        assert holder.wait(timeout=10) != 0
    finally:
        holder.kill()


def test_a_killed_drivers_tmp_ray_folder_is_reaped_by_the_next_local_ray(tmp_path):
    """A driver killed with SIGKILL left its Ray's agents running and /tmp/ac-ray-* behind
    until that run was resumed; a user who starts a new run instead kept them. The next local
    Ray stops the processes of a folder whose owner is dead, and only those."""
    import subprocess
    import sys

    def folder(name: str, owner_pid: int | None) -> tuple[object, subprocess.Popen]:
        path = tmp_path / f"{ray_reap.ORPHAN_PREFIX}{name}"
        path.mkdir()
        if owner_pid is not None:
            ray_reap.write_owner(path) if owner_pid == os.getpid() else \
                (path / ray_reap.OWNER).write_text(f"{owner_pid} 1\n")
        (path / "agent.log").write_text("")
        agent = subprocess.Popen([sys.executable, "-c", "import sys, time; "
                                  "f = open(sys.argv[1]); time.sleep(60)", str(path / "agent.log")])
        deadline = time.time() + 20
        while agent.pid not in ray_reap.processes_using(path) and time.time() < deadline:
            time.sleep(0.1)
        return path, agent

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    made = {name: folder(name, pid) for name, pid in
            (("killed", dead.pid), ("alive", os.getpid()), ("unowned", None))}
    try:
        assert ray_reap.reap_orphans(tmp_path) == [(made["killed"][0], 1)]
        assert made["killed"][1].wait(timeout=10) != 0 and not made["killed"][0].exists()
        for name in ("alive", "unowned"):          # a live driver's, or one being made
            assert made[name][1].poll() is None and made[name][0].exists(), name
    finally:
        for _, agent in made.values():
            agent.kill()


def test_without_proc_a_live_runs_folder_is_never_taken_for_an_orphan(tmp_path, monkeypatch):
    """Where a start time cannot be read (no /proc), the owner was written as 'pid None' and
    read back as dead: a second Ray run removed the running one's session folder."""
    monkeypatch.setattr(ray_reap, "_started", lambda pid: None)
    live = tmp_path / f"{ray_reap.ORPHAN_PREFIX}live"
    live.mkdir()
    ray_reap.write_owner(live)
    (tmp_path / f"{ray_reap.ORPHAN_PREFIX}old").mkdir()
    (tmp_path / f"{ray_reap.ORPHAN_PREFIX}old" / ray_reap.OWNER).write_text("1 123\n")
    assert ray_reap.reap_orphans(tmp_path) == [] and live.is_dir()
