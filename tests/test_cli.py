"""CLI: user errors exit 2 with one line and no traceback; a tiny end-to-end run
(search -> report -> export) whose ONNX matches torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, TINY, wait_for_first_record, write_config


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "autocompress.cli", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def assert_user_error(res: subprocess.CompletedProcess, *fragments: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", ["search", "report", "export", "profiles", "calibrate"])
def test_help_has_an_example(command):
    res = cli(command, "--help")
    assert res.returncode == 0 and "example:" in res.stdout and "autocompress" in res.stdout


def test_unknown_key_exits_2(tmp_path):
    cfg = write_config(tmp_path, TINY.replace("seed: 0", "sed: 0"))
    assert_user_error(cli("search", str(cfg)), "config.yaml:2", "did you mean 'seed'")


def test_missing_config_exits_2(tmp_path):
    assert_user_error(cli("search", str(tmp_path / "none.yaml")), "config not found")


def test_unknown_profile_exits_2(tmp_path):
    cfg = write_config(tmp_path, TINY.replace("profiles: [stm32f746]", "profiles: [stm32f999]"))
    (tmp_path / "other.yaml").write_text("name: not a profile\n")
    res = cli("search", str(cfg))
    assert_user_error(res, "config.yaml:", "hardware.profiles[0]", "stm32f999",
                      "did you mean 'stm32f746'")
    assert "other" not in res.stderr and "config," not in res.stderr   # YAML that isn't one


def test_a_profile_path_in_the_config_exits_2(tmp_path):
    cfg = write_config(tmp_path, TINY.replace("profiles: [stm32f746]",
                                              "profiles: [hw/stm32f746.yaml]"))
    assert_user_error(cli("search", str(cfg)), "hardware.profiles[0]", "expected a profile "
                      "name, got the path 'hw/stm32f746.yaml'", "profiles: [stm32f746]")


def test_a_file_as_run_dir_exits_2(tmp_path):
    cfg = write_config(tmp_path, TINY)
    (tmp_path / "afile").write_text("x")
    assert_user_error(cli("search", str(cfg), "--run-dir", str(tmp_path / "afile")),
                      "run directory path is a file")


def test_data_callable_that_raises_exits_2(tmp_path):
    (tmp_path / "downdata.py").write_text(
        "def make_data(seed):\n    raise RuntimeError('dataset server down')\n")
    cfg = write_config(tmp_path, TINY.replace("data: digits", "data: downdata:make_data"))
    assert_user_error(cli("search", str(cfg), "--run-dir", str(tmp_path / "run")),
                      "downdata:make_data(0) raised RuntimeError: dataset server down "
                      f"({tmp_path / 'downdata.py'}:2 in make_data)")   # where, in your code


def test_impossible_budget_exits_2_before_training(tmp_path):
    cfg = write_config(tmp_path, TINY.replace("max_latency_ms: 50", "max_latency_ms: 0.001"))
    res = cli("search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert_user_error(res, "no candidate in the space can meet the budget", "max_latency_ms")
    assert not (tmp_path / "run").exists()                     # nothing trained or written


@pytest.mark.slow
def test_search_report_export_end_to_end(tmp_path):
    cfg = write_config(tmp_path, TINY)
    run = tmp_path / "run"
    res = cli("search", str(cfg), "--run-dir", str(run))
    assert res.returncode == 0, res.stderr
    assert "[8/8]" in res.stdout                                # 3 trials + 5 baselines
    assert "A new study created" not in res.stdout + res.stderr  # optuna's INFO lines quiet
    for name in ("config.resolved.yaml", "env.json", "study.journal", "records.jsonl",
                 "space.yaml", "report/trials.csv"):
        assert (run / name).is_file(), name
    env = json.loads((run / "env.json").read_text())
    assert env["seed"] == 0 and len(env["profiles_sha256"]["stm32f746"]) == 64
    assert json.loads((run / "device_limits.json").read_text()) == {
        "stm32f746": {"max_peak_sram_kb": 320.0, "max_flash_kb": 1024.0}}
    assert env["packages"]["torch"].startswith("2.13")
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert [r["number"] for r in records] == list(range(8))
    assert records[0]["baseline"] == "uniform-int8"
    for rec in records:
        assert rec["state"] in ("complete", "infeasible", "failed", "pruned")
        assert {"latency_ms", "flash_kb", "peak_sram_kb"} <= set(rec["cost"]["stm32f746"])
        assert rec["duration_s"] >= 0 and "seed" in rec and "params" in rec
    assert list((run / "report").glob("pareto_*.png"))

    # the report can be rebuilt from the records alone
    for png in (run / "report").glob("*.png"):
        png.unlink()
    res = cli("report", str(run))
    assert res.returncode == 0, res.stderr
    assert list((run / "report").glob("pareto_*.png"))

    # export the baseline trial: ONNX must match torch
    out = tmp_path / "export"
    res = cli("export", str(run), "--trial", "0", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "parity" in res.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trial"] == 0 and manifest["parity_max_abs_diff"] < 1e-3
    assert manifest["accuracy"]["test_onnx_fp32"] == pytest.approx(
        manifest["accuracy"]["test_torch"], abs=0.01)
    assert set(manifest["predicted"]["stm32f746"]) >= {"latency_ms", "flash_kb", "peak_sram_kb"}
    assert len(manifest["profiles_sha256"]["stm32f746"]) == 64
    assert manifest["run_seed"] == 0 and manifest["seed"] == manifest["trial"]   # 0 + number
    for name in ("plan.json", "model.pt", "model.onnx", "model.int8.onnx"):
        assert (out / name).is_file(), name
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size

    # export errors: unknown trial, existing output folder, flags that do not fit
    assert_user_error(cli("export", str(run), "--trial", "99"), "trial 99 has no record")
    assert_user_error(cli("export", str(run), "--trial", "0", "--out", str(out)), "exists")
    assert_user_error(cli("export", str(run), "--trial", "0", "--out", str(out / "plan.json")),
                      "output path is a file")
    assert_user_error(cli("export", str(run), "--trial", "0", "--min-accuracy", "0.5"),
                      "--min-accuracy", "does not apply to --trial")
    assert_user_error(cli("export", str(run), "--max-latency-ms", "50", "--min-accuracy", "50"),
                      "between 0 and 1, got 50", "0.5 means 50%")
    assert_user_error(cli("export", str(run), "--max-latency-ms", "50", "--min-accuracy",
                          "1.0"), "the most accurate front point within it, trial")
    # a run dir that exists is not overwritten without --resume
    assert_user_error(cli("search", str(cfg), "--run-dir", str(run)), "already exists",
                      "--resume")


@pytest.mark.slow
def test_kill_9_then_resume_loses_nothing(tmp_path):
    import signal
    import time

    cfg = write_config(tmp_path, TINY.replace("trials: 3", "trials: 5"))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "autocompress.cli", "search", str(cfg),
                             "--run-dir", str(run), "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = run / "records.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and len(records.read_text().splitlines()) >= 2:
            time.sleep(0.3)                                      # kill mid-trial, usually
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {json.loads(line)["number"]: json.loads(line)
              for line in records.read_text().splitlines()}
    completed_before = {n for n, r in before.items() if r["state"] == "complete"}
    assert completed_before

    assert_user_error(cli("search", "--resume", str(run), "--set", "seed=3"), "--set")
    res = cli("search", "--resume", str(run))
    assert res.returncode == 0, res.stderr
    after = [json.loads(line) for line in records.read_text().splitlines()]
    latest = {r["number"]: r for r in after}
    assert completed_before <= {n for n, r in latest.items() if r["state"] == "complete"}
    for n in completed_before:                                   # completed trials untouched
        assert latest[n] == before[n]
    counted = [r for r in latest.values() if not str(r["error"] or "").startswith("interrupted")]
    assert len(counted) == 10                                    # 5 trials + 5 baselines
    assert sorted(latest) == list(range(len(latest)))            # unique, gap-free numbers


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_says_how_to_resume(tmp_path):
    """A scheduler's or a preempted machine's SIGTERM: exit 143 with the --resume command;
    the completed trials are in records.jsonl and the spawned worker stops too."""
    import signal

    cfg = write_config(tmp_path, TINY.replace("trials: 3", "trials: 6"))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "autocompress.cli", "search", str(cfg),
                             "--run-dir", str(run), "--quiet", "--workers", "2"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    records = run / "records.jsonl"
    wait_for_first_record(proc, records)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"continue with: autocompress search --resume {run}" in err
    assert "Traceback" not in err
    # the stopped worker's multiprocessing lock (tqdm's, made through torch.fx) was left to
    # the resource tracker, which warned of a "leaked semaphore" after the --resume line
    assert err.strip().splitlines()[-1].startswith("interrupted:"), err
    lines = [json.loads(x) for x in records.read_text().splitlines()]
    assert any(r["state"] == "complete" for r in lines)
    assert len(lines) < 11                                       # it did stop early


@pytest.mark.slow
def test_own_model_and_data_example_end_to_end(tmp_path):
    cfg = ROOT / "experiments" / "own_model" / "config.yaml"
    run = tmp_path / "own"
    res = cli("search", str(cfg), "--run-dir", str(run), "--trials", "2", "--set",
              "teacher.epochs=3", "--set", "train.epochs=1", "--set", "train.finetune_epochs=1",
              "--set", "hardware.budgets.stm32f746.max_latency_ms=50", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (run / "profiles" / "stm32f746.yaml").is_file()
    res = cli("export", str(run), "--max-latency-ms", "50", "--out", str(tmp_path / "x"),
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert manifest["parity_max_abs_diff"] < 1e-3
    assert manifest["accuracy"]["test_torch"] > 0.2                 # it learned something
    # resumed from another folder, with a spawned worker: the modules beside the original
    # config are still found (the run dir's config names them; env.json says where they live)
    res = cli("search", "--resume", str(run), "--trials", "4", "--workers", "2",
              cwd=ROOT / "benchmarks")
    assert res.returncode == 0, res.stderr
    records = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    assert len(records) == 4 + 5 and {r["state"] for r in records} <= {"complete", "infeasible"}


def test_search_flag_errors_exit_2(tmp_path):
    cfg = write_config(tmp_path, TINY)
    assert_user_error(cli("search", str(cfg), "--workers", "0"), "--workers: expected a "
                      "whole number >= 1, got 0")
    assert_user_error(cli("search", str(cfg), "--trials", "0"), "--trials")
    assert_user_error(cli("search", str(cfg), "--trials", "-3"), "--trials")
    assert_user_error(cli("search", str(cfg), "--address", "auto"), "--backend ray")
    assert_user_error(cli("search", "--resume", str(tmp_path), "--sampler", "tpe"),
                      "not a run directory")
    for flag in (["--run-dir", str(tmp_path / "elsewhere")], ["--no-baselines"]):
        assert_user_error(cli("search", "--resume", str(tmp_path), *flag),
                          f"{flag[0]}: a resumed run keeps its run dir and baselines")


def test_sampler_flag_overrides_the_config(tmp_path):
    cfg = write_config(tmp_path, TINY.replace("trials: 3", "trials: 1"))
    run = tmp_path / "run"
    res = cli("search", str(cfg), "--run-dir", str(run), "--sampler", "nsga2",
              "--no-baselines", "--quiet")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("front: ") and str(run) in res.stdout   # --quiet: one line
    assert "sampler: nsga2" in (run / "config.resolved.yaml").read_text()
    records = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["baseline"] is None


def test_resume_may_change_only_the_threads(tmp_path, monkeypatch):
    """``--set search.threads=N`` on a resume (a node with other cores) runs the new trials
    with N threads; the run's stored config is unchanged."""
    import torch

    from autocompress.cli import main

    cfg = write_config(tmp_path, TINY.replace("trials: 3", "trials: 1"))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run), "--quiet", "--no-baselines"]) == 0
    stored = (run / "config.resolved.yaml").read_text()
    left = tmp_path / "ac-ray-left"           # a killed local-Ray run's folder, as it marks it
    left.mkdir()
    (run / ".ray_temp").write_text(f"{left}\n{run.resolve()}\n")
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    assert main(["search", "--resume", str(run), "--trials", "2", "--quiet",
                 "--set", "search.threads=2"]) == 0
    assert calls and set(calls) == {2}
    assert not left.exists() and not (run / ".ray_temp").exists()   # reaped on Optuna too
    assert (run / "config.resolved.yaml").read_text() == stored
    assert len((run / "records.jsonl").read_text().splitlines()) == 2


def test_a_run_stopped_during_set_up_resumes_with_its_trials_and_baselines(
        tmp_path, monkeypatch, capsys):
    """Ctrl-C before the study held the run's target (here: training the teacher): the resume
    runs the trial count and baselines the run was started with, as its resolved config
    says, and the interrupt says how to resume."""
    from autocompress.cli import main
    from autocompress.search import session

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    cfg = write_config(tmp_path, TINY)
    run = tmp_path / "run"
    monkeypatch.setattr(session, "load_teacher", interrupted)
    assert main(["search", str(cfg), "--run-dir", str(run), "--trials", "1",
                 "--no-baselines"]) == 130
    assert f"no trial had finished; continue with: autocompress search --resume {run}" in \
        capsys.readouterr().err
    monkeypatch.undo()
    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    records = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["baseline"] is None
    resolved = (run / "config.resolved.yaml").read_text()
    assert "trials: 1" in resolved and "baselines: false" in resolved


def test_timeout_stops_starting_trials_and_resume_runs_the_rest(tmp_path, monkeypatch, capsys):
    """search.timeout_s: once it has passed no trial starts (the run ends short of its target,
    says so and how to resume); a resume with the limit lifted runs the rest."""
    from autocompress.cli import main
    from autocompress.search import session

    class Clock:          # the deadline's reading, then two trials' checks in time, then late
        calls = 0

        @classmethod
        def time(cls) -> float:
            cls.calls += 1
            return 0.0 if cls.calls <= 3 else 1e9

    cfg = write_config(tmp_path, TINY.replace("trials: 3", "trials: 4, timeout_s: 100"))
    run = tmp_path / "run"
    monkeypatch.setattr(session, "time", Clock)
    assert main(["search", str(cfg), "--run-dir", str(run), "--no-baselines"]) == 0
    assert len((run / "records.jsonl").read_text().splitlines()) == 2
    out = capsys.readouterr().out
    assert "search.timeout_s (100 s) reached: 2 of 4 trials done" in out
    assert f"--resume {run}" in out
    monkeypatch.undo()
    assert main(["search", "--resume", str(run), "--quiet",
                 "--set", "search.timeout_s=null"]) == 0
    assert len((run / "records.jsonl").read_text().splitlines()) == 4


def test_a_full_disk_is_one_line_with_the_resume_command_not_a_traceback(tmp_path, monkeypatch,
                                                                         capsys):
    """ENOSPC while writing a trial's weights (Ray) or the report (Optuna) ended in a
    traceback and exit 1, the code for a bug, with no word on the saved trials; a broken
    pipe (an OSError too) stays a quiet exit 0."""
    import errno

    from autocompress import cli
    from autocompress.search import runner_optuna

    cfg = write_config(tmp_path, TINY)
    stage: list[str] = []

    def full(cfg, run_dir, **kwargs):
        run_dir.mkdir()
        for name in stage:
            (run_dir / name).write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "report" / "a.png"))

    monkeypatch.setattr(runner_optuna, "run_search", full)
    lines = {}
    for stage[:] in ([], ["env.json"], ["env.json", "records.jsonl"]):
        run = tmp_path / f"run{len(stage)}"
        assert cli.main(["search", str(cfg), "--run-dir", str(run)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "No space left on device writing" in err[0]
        lines[len(stage)] = err[0]
    assert f"remove {tmp_path / 'run0'} and run the command again" in lines[0]
    assert "no trial had finished" in lines[1] and "--resume" in lines[1]
    assert "completed trials are saved in" in lines[2]
    assert f"autocompress search --resume {tmp_path / 'run2'}" in lines[2]

    def piped(args):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "report", piped)
    assert cli.main(["report", str(tmp_path)]) == 0


def test_a_full_disk_stops_the_search_instead_of_failing_every_candidate(tmp_path, monkeypatch):
    """A trial whose weights cannot be written was recorded 'failed' (and counted), and the
    search went on failing every later one: exit 0, 'front: 0 points'."""
    import errno

    from autocompress.cli import main
    from autocompress.search import objective

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "model.pt")

    monkeypatch.setattr(objective, "save_packed", full)
    cfg = write_config(tmp_path, TINY)
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run), "--quiet", "--no-baselines"]) == 2
    assert not (run / "records.jsonl").exists()       # no trial recorded failed


def test_python_dash_m_runs_the_cli():
    """``python -m autocompress`` said "No module named autocompress.__main__"."""
    res = subprocess.run([sys.executable, "-m", "autocompress", "search", "missing.yaml"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2 and "missing.yaml: config not found" in res.stderr


def test_a_run_dir_given_as_the_config_points_to_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.resolved.yaml").write_text("name: x\n")
    assert_user_error(cli("search", str(run)), "the config is a folder, not a file",
                      f"to continue that run: autocompress search --resume {run}")
    assert_user_error(cli("search", str(tmp_path)), "give the YAML file's path")


def test_a_space_file_given_as_the_config_is_named_as_one():
    from tests.conftest import SPACE

    assert_user_error(cli("search", str(SPACE)), "unknown key 'version'",
                      "this is a search space file, not a config: name it in a config as "
                      "model.space")


def test_export_defaults_to_the_device_the_search_led_with(tmp_path):
    """Progress lines and the front led with the first objective's profile (pixel4), while
    `export --max-latency-ms` judged the first listed one (stm32f746)."""
    cfg = write_config(tmp_path, TINY.replace("profiles: [stm32f746]",
                                              "profiles: [stm32f746, pixel4]")
                       .replace("sampler: random}",
                                "sampler: random, objectives: [accuracy, pixel4.latency_ms]}"))
    run = tmp_path / "run"
    res = cli("search", str(cfg), "--run-dir", str(run), "--no-baselines", "--trials", "2",
              "--quiet")
    assert res.returncode == 0, res.stderr
    res = cli("export", str(run), "--max-latency-ms", "100")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    first = next(ln for ln in lines if "predicted" in ln and "as model.int8" not in ln)
    assert first.strip().startswith("pixel4 ")


def test_export_out_inside_the_runs_own_folders_exits_2(tmp_path):
    """`--out RUN/trials/8` was written: a resumed run's trial 8 then replaced the export's
    model.pt, leaving its ONNX files and manifest about another trial. Refused before the
    run is read."""
    run = tmp_path / "run"
    for inside in ("trials/8", "report/best", "export/../trials/9"):
        assert_user_error(cli("export", str(run), "--trial", "0", "--out", str(run / inside)),
                          "--out is inside the run dir's", "/ folder")
    assert_user_error(cli("export", str(run), "--trial", "0", "--out", str(run / "export" / "b")),
                      "run directory not found")               # export/ is where exports go


def test_profile_out_never_replaces_a_profile_it_did_not_write(tmp_path):
    """`profile --out hardware_profiles/stm32f746.yaml` replaced the shipped, calibrated MCU
    profile with this machine's LUT (calibrate refused the same --out)."""
    from autocompress.hardware.commands import _written_by_profile, profile_yaml

    shipped = (ROOT / "hardware_profiles" / "stm32f746.yaml").read_bytes()
    mine = tmp_path / "stm32f746.yaml"
    mine.write_bytes(shipped)
    assert_user_error(cli("profile", "--out", str(mine), "--quick"), "--out", "the file exists "
                      "and is not a profile `autocompress profile` wrote")
    assert mine.read_bytes() == shipped
    folder = tmp_path / "d.yaml"
    folder.mkdir()
    assert_user_error(cli("profile", "--out", str(folder), "--quick"), "--out", "a folder")
    own = tmp_path / "host.yaml"
    own.write_text(profile_yaml({"version": 1, "name": "host", "entries": {}}))
    assert _written_by_profile(own) and not _written_by_profile(mine)    # a rebuild may replace
