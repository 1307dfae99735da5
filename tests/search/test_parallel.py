"""Several workers on one study (Optuna processes, Ray Tune) and determinism."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autocompress.config import load_config
from autocompress.search import objective
from autocompress.search.runner_optuna import run_search
from autocompress.search.study import storage_for

from ..conftest import ROOT, SPACE, TINY, write_config

FAST = TINY                          # threads: 1 already (no oversubscription)


def _check_run(run: Path, expected: int) -> list[dict]:
    import optuna

    lines = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    numbers = [r["number"] for r in lines]
    assert sorted(numbers) == list(range(expected))          # each trial once, no gaps
    study = optuna.load_study(study_name="tiny", storage=storage_for(run))
    assert len(study.trials) == expected
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    return lines


def test_two_optuna_workers_share_one_study(tmp_path):
    cfg = load_config(write_config(tmp_path, FAST.replace("trials: 3", "trials: 4")))
    result = run_search(cfg, tmp_path / "run", quiet=True, workers=2, report=False)
    lines = _check_run(tmp_path / "run", 4 + 5)
    assert len(result.records) == 9
    assert sorted(r["baseline"] for r in lines if r["baseline"]) == sorted(
        ["uniform-int8", "fp32", "uniform-int4", "sparse-25", "sparse-50"])  # each popped once
    pids = {r["worker"].rsplit(":", 1)[1] for r in lines}
    assert str(os.getpid()) in pids and len(pids) == 2      # this process and the spawned one
    assert {r["threads"] for r in lines} == {cfg.search.threads}   # scores depend on it
    searched = [json.dumps(r["params"], sort_keys=True) for r in lines if not r["baseline"]]
    assert len(set(searched)) == len(searched) == 4         # the workers' samplers differ
    by_worker: dict[str, list] = {}
    for r in sorted(lines, key=lambda r: r["started_at"]):
        by_worker.setdefault(r["worker"], []).append(r)
    for runs in by_worker.values():                         # one trial at a time per worker
        for a, b in itertools.pairwise(runs):
            assert a["started_at"] + a["duration_s"] <= b["started_at"]


def test_a_user_error_in_a_worker_process_is_one_line_not_a_traceback(tmp_path, capfd):
    """The spawned worker fails to build its context (its model module raises there only):
    one line on stderr, exit 2 for that process; the main process replaces its share."""
    folder = tmp_path / "own"
    shutil.copytree(ROOT / "experiments" / "own_model", folder)
    nets = (folder / "mynets.py").read_text()
    (folder / "mynets.py").write_text(nets.replace(
        "    channels = input_shape[0]\n",
        "    import multiprocessing\n"
        "    if multiprocessing.current_process().name != 'MainProcess':\n"
        "        raise ValueError('no weights here')\n"
        "    channels = input_shape[0]\n"))
    text = (folder / "config.yaml").read_text().replace("epochs: 15", "epochs: 1").replace(
        "epochs: 6, finetune_epochs: 3", "epochs: 1, finetune_epochs: 1").replace(
        "trials: 12, sampler: tpe", "trials: 2, sampler: random, threads: 1")
    (folder / "config.yaml").write_text(text)
    result = run_search(load_config(folder / "config.yaml"), tmp_path / "run", quiet=True,
                        baselines=False, workers=2, report=False)
    assert len(result.records) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    assert "error (worker 1): " in err and "raised ValueError: no weights here" in err


def test_same_seed_same_parameters(tmp_path, monkeypatch):
    monkeypatch.setattr(objective, "fit", lambda *a, **k: 0.0)   # parameters, not training
    body = FAST.replace("trials: 3", "trials: 12").replace("sampler: random", "sampler: tpe")
    cfg = load_config(write_config(tmp_path, body))
    runs = [run_search(cfg, tmp_path / f"run{i}", quiet=True, baselines=False, report=False)
            for i in range(2)]
    first, second = ([r["params"] for r in res.records] for res in runs)
    assert len(first) == 12 and first == second
    other = load_config(write_config(tmp_path, body.replace("seed: 0", "seed: 1"), "c1.yaml"))
    third = run_search(other, tmp_path / "run2", quiet=True, baselines=False, report=False)
    assert [r["params"] for r in third.records] != first


def test_resumed_and_extra_processes_do_not_draw_the_same_parameters(tmp_path):
    """Optuna keeps no sampler state in the storage: a process that reopens the study (a
    resume, a second worker) must not replay the random draws the first one made."""
    from autocompress.search.baselines import suggest_all
    from autocompress.search.setup import build_context
    from autocompress.search.study import make_study

    cfg = load_config(write_config(tmp_path, FAST))
    ctx = build_context(cfg)
    dists, run = ctx.rspace.distributions(), tmp_path / "run"
    run.mkdir()

    def draw(study, n):
        out = []
        for _ in range(n):
            trial = study.ask()
            out.append(suggest_all(trial, dists))
            study.tell(trial, [0.5, 1.0])
        return out

    first = draw(make_study(cfg, ctx.objectives, run, resume=False), 3)
    resumed = draw(make_study(cfg, ctx.objectives, run, resume=True), 3)
    worker = draw(make_study(cfg, ctx.objectives, run, resume=True, worker=1), 3)
    again = draw(make_study(cfg, ctx.objectives, run, resume=True, worker=1), 3)
    assert not any(p in first for p in resumed + worker) and worker != resumed
    assert again != worker            # the worker's seed depends on the trials so far too
    fresh = tmp_path / "fresh"
    fresh.mkdir()                     # a new study, one worker: the run's own seed
    assert draw(make_study(cfg, ctx.objectives, fresh, resume=False), 3) == first


def test_gp_sampler_proposes_past_its_startup_trials(tmp_path, monkeypatch):
    import optuna

    monkeypatch.setattr(objective, "fit", lambda *a, **k: 0.0)   # parameters, not training
    guided = []
    inner = optuna.samplers.GPSampler.sample_relative

    def spy(self, study, trial, space):
        out = inner(self, study, trial, space)
        guided.append(bool(out))
        return out

    monkeypatch.setattr(optuna.samplers.GPSampler, "sample_relative", spy)
    body = FAST.replace("trials: 3", "trials: 12").replace("sampler: random", "sampler: gp")
    res = run_search(load_config(write_config(tmp_path, body)), tmp_path / "run", quiet=True,
                     baselines=False, report=False)
    assert len(res.records) == 12 and all(r["state"] != "failed" for r in res.records)
    assert guided.count(True) == 2                   # trials 10 and 11: the GP proposed them
    assert len({json.dumps(r["params"], sort_keys=True) for r in res.records}) == 12


@pytest.mark.ray
def test_ray_backend_local_head_two_workers(tmp_path):
    body = FAST.replace("trials: 3", "trials: 3").replace(
        "epochs: 1, finetune_epochs: 1", "epochs: 2, finetune_epochs: 1").replace(
        "sampler: random}", "sampler: random, early_stopping: {rungs: [1], min_dominating: 1, "
        "margin_se: 1, chance_se: 3}}").replace("data: digits", "data: countdata:make_data")
    (tmp_path / "countdata.py").write_text(COUNTED_DATA)
    cfg = write_config(tmp_path, body)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "autocompress.cli", "search", str(cfg),
                          "--run-dir", str(run), "--backend", "ray", "--workers", "2",
                          "--no-baselines"], cwd=ROOT, capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "starting a local Ray (2 CPUs" in res.stdout
    assert "early stopping: " in res.stdout                  # the run's end, on Ray too
    lines = _check_run(run, 3)
    assert {r["state"] for r in lines} <= {"complete", "infeasible", "pruned"}
    for r in lines:
        if r["state"] == "complete":
            assert (run / "trials" / str(r["number"]) / "model.pt").is_file()
    assert (run / "rungs.jsonl").is_file() and (run / "ray" / "tune").is_dir()
    states = list((run / "ray" / "tune").glob("experiment_state*.json"))
    assert states and not any("weights_b64" in p.read_text() for p in states)  # not kept
    rungs = [json.loads(x) for x in (run / "rungs.jsonl").read_text().splitlines()]
    assert rungs and all(e["margin"] > 0 and e["floor"] > 0 for e in rungs)   # via the actor
    assert (run / "report" / "trials.csv").is_file()
    pids = (tmp_path / "loads.txt").read_text().split()
    assert len(set(pids)) == 1, pids     # the driver only: actors get its data from Ray



@pytest.mark.ray
def test_ray_search_stops_at_its_timeout(tmp_path):
    """search.timeout_s on Ray: the driver's searcher stops asking once it has passed (here
    during set-up, before any trial), and Tune ends cleanly with the run short and resumable."""
    cfg = write_config(tmp_path, FAST.replace("trials: 3", "trials: 50, timeout_s: 1"))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "autocompress.cli", "search", str(cfg),
                          "--run-dir", str(run), "--backend", "ray", "--no-baselines"],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    done = len((run / "records.jsonl").read_text().splitlines()) \
        if (run / "records.jsonl").exists() else 0
    assert done < 50
    assert f"search.timeout_s (1 s) reached: {done} of 50 trials done" in res.stdout
    assert f"--resume {run}" in res.stdout


FLAKY = """
import os
from pathlib import Path

from torch import nn


def in_ray_worker():     # the driver is the test's child; Ray's workers are the raylet's
    return os.getppid() != int(os.environ["AC_TEST_PARENT"])


def build_model(input_shape, num_classes):
    if in_ray_worker() and os.environ["AC_TEST_FAULT"] == "user error":
        raise ValueError("this node has no weights")     # the search wraps it: ModelError
    if in_ray_worker():  # the first trial to get here loses its worker process
        try:
            os.close(os.open(Path(__file__).with_name("died"), os.O_CREAT | os.O_EXCL))
            os._exit(1)
        except FileExistsError:
            pass
    return nn.Sequential(       # experiments/own_model's
        nn.Conv2d(input_shape[0], 24, 3, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU(),
        nn.Conv2d(24, 48, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(48), nn.ReLU(),
        nn.Conv2d(48, 48, 3, padding=1, groups=48, bias=False), nn.BatchNorm2d(48), nn.ReLU(),
        nn.Conv2d(48, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
"""


SLOW_START = """
import os, time
from pathlib import Path

if os.getppid() != int(os.environ["AC_TEST_PARENT"]) and Path(os.environ["AC_TEST_DIED"]).exists():
    time.sleep(10)        # a Ray worker started after the loss: slower to start than a trial
"""


@pytest.mark.ray
@pytest.mark.parametrize("fault", ["lost worker", "user error"])
def test_ray_trial_that_loses_its_worker_or_raises_a_user_error(tmp_path, fault):
    """A trial whose worker process dies is recorded interrupted and replaced (the run ends
    with its trial count), and the surviving worker, once free, takes the newest trial, not
    the replacement that waits for its new worker (which Tune then removed: while trials were
    shorter than a worker's start, every later trial ran on the survivor); a user error in a
    trial stops the search with exit 2 and the error's own message, as on the Optuna
    backend, not a run of failed trials."""
    folder = tmp_path / "own"
    shutil.copytree(ROOT / "experiments" / "own_model", folder)
    (folder / "mynets.py").write_text(FLAKY)
    cfg = (folder / "config.yaml").read_text().replace("epochs: 15", "epochs: 1").replace(
        "epochs: 6, finetune_epochs: 3", "epochs: 1, finetune_epochs: 1").replace(
        "trials: 12, sampler: tpe", "trials: 3, sampler: random, threads: 1")
    (folder / "config.yaml").write_text(cfg)
    systmp = tmp_path / "systmp"            # the system temp dir, as the workers see it
    systmp.mkdir()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_START)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{ROOT}",
           "AC_TEST_PARENT": str(os.getpid()), "AC_TEST_FAULT": fault,
           "AC_TEST_DIED": str(folder / "died"), "TMPDIR": str(systmp)}
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "autocompress.cli", "search",
                          str(folder / "config.yaml"), "--run-dir", str(run), "--backend", "ray",
                          "--workers", "2", "--no-baselines"], cwd=ROOT, capture_output=True,
                         text=True, env=env, timeout=300)
    lines = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()] \
        if (run / "records.jsonl").exists() else []
    if fault == "user error":
        assert res.returncode == 2, res.stderr[-3000:]
        assert "Traceback" not in res.stderr
        assert "raised ValueError: this node has no weights" in res.stderr
        assert all(str(r["error"]).startswith("interrupted (stopped by a user error")
                   for r in lines), lines
        return
    assert res.returncode == 0, res.stderr[-3000:]
    lost = [r for r in lines if str(r["error"]).startswith("interrupted (its Ray worker")]
    assert len(lost) == 1 and "interrupted (its Ray worker was lost" in res.stdout
    counted = [r for r in lines if r not in lost]
    assert len(counted) == 3 and sorted(r["number"] for r in lines) == list(range(4))
    assert {r["state"] for r in counted} <= {"complete", "infeasible"}, counted
    # the lost trial's scratch folder stays in Ray's temp dir, not one per kill in /tmp
    assert not [p.name for p in systmp.iterdir() if p.name.startswith(("tmp", "autocompress"))]
    survivor = next(r["worker"] for r in counted if r["number"] < 2)    # trial 2 replaces
    after = sorted((r for r in counted if r["worker"] == survivor), key=lambda r: r["started_at"])
    assert after[1]["number"] == 3, lines


COUNTED_DATA = """\
import os
from pathlib import Path


def make_data(seed):
    with Path(__file__).with_name("loads.txt").open("a") as f:
        f.write(f"{os.getpid()}\\n")
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.images[:, None] / 16).astype("float32"), d.target
    return {"train": (x[:1200], y[:1200]), "val": (x[1200:1500], y[1200:1500]),
            "test": (x[1500:], y[1500:])}
"""


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_ray_driver_killed_then_resumed_loses_nothing(tmp_path, signame):
    """Run from the config's folder with relative paths, as users do (an actor's working
    folder is Tune's, so nothing may depend on the driver's); SIGTERM (a preempted machine)
    and Ctrl-C stop the search and say how to resume (Tune's own Ctrl-C handler ended the
    run as if it had finished: exit 0, no --resume line)."""
    import signal
    import time

    shutil.copyfile(SPACE, tmp_path / "space.yaml")           # a relative space: path too
    write_config(tmp_path, FAST.replace("trials: 3", "trials: 4").replace("SPACE", "space.yaml"))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "autocompress.cli", "search"]
    proc = subprocess.Popen([*args, "config.yaml", "--run-dir", "run", "--backend", "ray",
                             "--no-baselines", "--quiet"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    records = run / "records.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be killed"
    proc.send_signal(getattr(signal, signame))            # the driver; its local Ray dies too
    _, err = proc.communicate(timeout=120)
    if signame != "SIGKILL":
        assert proc.returncode == {"SIGTERM": 143, "SIGINT": 130}[signame], err[-3000:]
        assert "continue with: autocompress search --resume run" in err
    before = {json.loads(x)["number"]: json.loads(x) for x in records.read_text().splitlines()}
    marker = run / ".ray_temp"          # removed by a clean shutdown, not by SIGKILL
    assert marker.exists() == (signame == "SIGKILL")
    ray_tmp = Path(marker.read_text().split("\n")[0]) if marker.exists() else run / "ray_tmp"
    res = subprocess.run([*args, "--resume", "run", "--backend", "ray", "--quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    latest = {json.loads(x)["number"]: json.loads(x) for x in records.read_text().splitlines()}
    for n, rec in before.items():                         # finished trials untouched
        assert latest[n] == rec
    counted = [r for r in latest.values() if not str(r["error"] or "").startswith("interrupted")]
    assert len(counted) == 4 and sorted(latest) == list(range(len(latest)))
    assert {r["state"] for r in counted} <= {"complete", "infeasible"}, counted   # none failed
    from autocompress.search.ray_reap import processes_using

    assert processes_using(ray_tmp) == []                 # the killed run's Ray is gone too


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
@pytest.mark.slow
def test_ray_cluster_address_started_by_hand(tmp_path):
    """The cluster path of the README: `ray start --head` (here with 2 CPUs, a chosen temp dir
    and no auth token), then `autocompress search --backend ray --address HOST:PORT`; the
    search runs its trials on that cluster's worker processes and leaves the cluster up."""
    import tempfile

    from autocompress.search.ray_reap import processes_using

    ray_bin = Path(sys.executable).with_name("ray")
    port, temp = _free_port(), Path(tempfile.mkdtemp(prefix="ac-rt-", dir="/tmp"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    try:      # a failed or timed-out start may leave part of the cluster up: clean it below
        head = subprocess.run([str(ray_bin), "start", "--head", f"--port={port}",
                               "--num-cpus=2", f"--temp-dir={temp}",
                               "--include-dashboard=false", "--disable-usage-stats"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert head.returncode == 0, head.stderr[-2000:]
        cfg = write_config(tmp_path, FAST.replace("trials: 3", "trials: 4"))
        run = tmp_path / "run"
        res = subprocess.run([sys.executable, "-m", "autocompress.cli", "search", str(cfg),
                              "--run-dir", str(run), "--backend", "ray", "--workers", "2",
                              "--address", f"127.0.0.1:{port}", "--no-baselines"],
                             cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "starting a local Ray" not in res.stdout          # it joined the cluster
        lines = _check_run(run, 4)
        assert {r["state"] for r in lines} <= {"complete", "infeasible"}
        assert not (run / "ray_tmp").exists()                      # the cluster's temp is used
        assert processes_using(temp), "the cluster should still be running after the search"
    finally:                          # stop exactly this cluster (`ray stop` would stop all)
        from autocompress.search.ray_reap import kill_processes_using

        kill_processes_using(temp, rounds=20)
        shutil.rmtree(temp, ignore_errors=True)
    assert processes_using(temp) == []


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(c) for c in text.split()]
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_process_dies_with_the_killed_search(tmp_path):
    """kill -9 of the search left its spawned worker running trials on its own."""
    import signal
    import time

    cfg = write_config(tmp_path, FAST.replace("trials: 3", "trials: 500"))   # minutes
    proc = subprocess.Popen([sys.executable, "-m", "autocompress.cli", "search", str(cfg),
                             "--run-dir", str(tmp_path / "run"), "--workers", "2",
                             "--no-baselines", "--quiet"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not workers:
        workers = [c for c in _children(proc.pid) if "spawn_main" in
                   Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
        time.sleep(0.1)
    assert workers and proc.poll() is None, "no worker seen before the search ended"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() and "Z" not in
                                         Path(f"/proc/{w}/stat").read_text().split()[2]
                                         for w in workers):
        time.sleep(0.1)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]]
    assert alive == []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_killed_mid_trial_is_seen_at_once_and_started_again(tmp_path):
    """Its trial stayed 'running' until the main process had run the rest alone; then it was
    recorded 'interrupted (the run was killed)', though the run was not."""
    import signal
    import time

    cfg = write_config(tmp_path, FAST.replace("trials: 3", "trials: 6"))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "autocompress.cli", "search", str(cfg),
                             "--run-dir", str(run), "--workers", "2", "--no-baselines"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed, deadline = None, time.time() + 240
    while killed is None and time.time() < deadline and proc.poll() is None:
        journal = run / "study.journal"
        text = journal.read_text() if journal.exists() else ""
        for child in _children(proc.pid):      # the worker, once a trial of its own runs
            if f'"pid":{child}}}' in text and "spawn_main" in \
                    Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                os.kill(child, signal.SIGKILL)
                killed = child
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=600)
    assert killed and proc.returncode == 0, out[-3000:]
    assert "warning: worker 1 died (exit code -9); 1 interrupted trial(s) replaced; worker " \
           "started again" in out
    lines = _check_run(run, 7)                          # 6 + the one it replaced
    lost = [r for r in lines if str(r["error"]).startswith("interrupted")]
    assert [r["error"] for r in lost] == ["interrupted (its worker process died, exit code -9: "
                                          "out of memory?); a new trial replaces it"]


@pytest.mark.parametrize("prctl", [True, False], ids=["pdeathsig", "watch-thread"])
def test_die_with_ends_the_process_when_its_parent_is_killed(tmp_path, prctl):
    """Both ways a worker follows the search: Linux's PR_SET_PDEATHSIG and the thread that
    watches for re-parenting (macOS, or where prctl fails), which had none before."""
    import signal
    import time

    if prctl and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    child = (f"import sys, time; from autocompress.search.loop import _die_with; "
             f"_die_with(int(sys.argv[1]), prctl={prctl}); time.sleep(60)")
    parent = ("import os, subprocess, sys, time; "
              f"c = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())]); "
              "print(c.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=ROOT, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
    pid = int(proc.stdout.readline())
    time.sleep(3)                            # the child imports and calls _die_with
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def running() -> bool:                   # a zombie waiting for init to reap it is dead
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        stat = Path(f"/proc/{pid}/stat")
        return not (stat.exists() and stat.read_text().split()[2] == "Z")

    deadline = time.time() + 10
    while time.time() < deadline:
        if not running():
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the child outlived its killed parent by 10 s")


def _sigint_disposition(queue) -> None:
    import signal

    queue.put(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


def test_a_worker_starts_with_ctrl_c_ignored_until_its_code_runs():
    """A Ctrl-C while a spawned worker imported (before _worker_main could catch it)
    printed a traceback from it; the parent's own Ctrl-C handling is left as it was."""
    import multiprocessing as mp
    import signal

    from autocompress.search.loop import start_quiet

    spawn = mp.get_context("spawn")
    queue = spawn.Queue()
    before = signal.getsignal(signal.SIGINT)
    proc = start_quiet(spawn.Process(target=_sigint_disposition, args=(queue,)))
    assert signal.getsignal(signal.SIGINT) is before
    assert queue.get(timeout=60) is True             # inherited: ignored through the imports
    proc.join(timeout=60)
