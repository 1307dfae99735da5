from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from autocompress.config import load_config
from autocompress.search import objective
from autocompress.search.baselines import baselines
from autocompress.search.records import TrialRecord, append_record, read_records
from autocompress.search.setup import build_context
from autocompress.search.study import cheapest_params, storage_for
from autocompress.train import accuracy

from ..conftest import TINY, write_config


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("cfg"),
                        TINY.replace("max_latency_ms: 50", "max_latency_ms: 2.0"))
    return build_context(load_config(path))


def test_infeasible_candidate_trains_nothing(ctx, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("an over-budget candidate must not be trained")

    monkeypatch.setattr(objective, "fit", no_training)
    big = {b.name: dict(b.params) for b in baselines(ctx.rspace)}["uniform-int8"]
    rec = objective.run_trial(ctx, None, big, number=5, seed=5)
    assert rec.state == "infeasible"
    assert rec.constraints["stm32f746.max_latency_ms"] > 0
    assert rec.cost["stm32f746"]["latency_ms"] > 2.0 and rec.metrics == {}


def test_failing_candidate_is_recorded_failed(ctx, monkeypatch):
    def boom(*args, **kwargs):
        def deep_in_training(depth: int) -> None:
            if depth:
                deep_in_training(depth - 1)
            raise FloatingPointError("non-finite training loss nan")
        deep_in_training(3)

    monkeypatch.setattr(objective, "fit", boom)
    rec = objective.run_trial(ctx, None, cheapest_params(ctx.rspace), number=1, seed=1)
    assert rec.state == "failed" and "non-finite" in rec.error
    assert "raise FloatingPointError" in rec.error   # the traceback ends where it raised
    assert rec.plan_id and rec.cost                                  # costed before failing


def test_complete_trial_saves_weights(ctx, tmp_path):
    rec = objective.run_trial(ctx, None, cheapest_params(ctx.rspace), number=2, seed=2,
                              trial_dir=tmp_path / "2")
    assert rec.state == "complete", rec.error
    assert 0.0 <= rec.metrics["accuracy"] <= 1.0
    assert (tmp_path / "2" / "model.pt").is_file()
    assert rec.channels["stem.conv"] == [4, 8] and rec.channels["head.conv"] == [16, 32]


def test_the_record_keeps_the_channels_pruning_kept_not_only_the_ratio_asked(ctx):
    """A ratio of .25 on the 8 channels of stem.conv (rounded to 4) keeps all 8: the heatmap
    showed ".25" for it."""
    params = {**cheapest_params(ctx.rspace), "prune/stem.conv": 0.25}
    plan = ctx.rspace.to_plan(params)
    graph, _, _ = objective.cost_plan(ctx, plan, 0)
    kept = objective.pruned_channels(ctx, plan, graph, 0)
    assert kept["stem.conv"] == [8, 8] and kept["stages.2.0.expand.conv"] == [12, 24]
    assert kept["stages.2.0.dw.conv"] == [12, 24]        # pruned with its expand conv
    assert "stages.2.0.project.conv" not in kept          # its inputs only
    plain = {**params, **{k: 0.0 for k in params if k.startswith("prune/")}}
    plan = ctx.rspace.to_plan(plain)
    assert objective.pruned_channels(ctx, plan, objective.cost_plan(ctx, plan, 0)[0], 0) == {}


def test_repeats_score_the_mean_of_several_trainings(ctx, tmp_path, monkeypatch):
    """train.repeats: k trainings under different seeds, the first under the trial's own
    seed (so repeats: 1 is the plain trial); accuracy is their mean, the best one is saved."""
    params, seed = cheapest_params(ctx.rspace), 6
    once = objective.run_trial(ctx, None, params, number=6, seed=seed)
    cfg = dataclasses.replace(ctx.cfg, train=dataclasses.replace(ctx.cfg.train, repeats=3))
    saved, bake = [], objective.bake
    monkeypatch.setattr(objective, "bake", lambda m: saved.append(m) or bake(m))
    rec = objective.run_trial(dataclasses.replace(ctx, cfg=cfg), None, params, number=6,
                              seed=seed, trial_dir=tmp_path / "3")
    assert rec.state == "complete", rec.error
    runs = [rec.metrics[f"repeat_accuracy/{j}"] for j in range(3)]
    assert runs[0] == once.metrics["accuracy"]
    assert rec.metrics["accuracy"] == pytest.approx(sum(runs) / 3)
    assert len(set(runs)) > 1                       # other seeds, other trainings
    assert max(runs) > runs[0]                      # (seed 6: the second is the best)
    assert accuracy(saved[0], ctx.data.val) == max(runs)
    assert (tmp_path / "3" / "model.pt").is_file()


def test_records_survive_a_corrupted_line(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    append_record(path, TrialRecord(number=0, state="complete", params={}))
    with open(path, "a") as fh:
        fh.write('{"number": 1, "state": "compl')                   # a kill mid-write
    append_record(path, TrialRecord(number=2, state="failed", params={}, error="x"))
    records = read_records(path)
    assert [r["number"] for r in records] == [0, 2]
    assert "records.jsonl:2: skipping corrupted record" in capsys.readouterr().err


def test_a_hand_edited_record_of_the_wrong_types_is_skipped_with_its_field(tmp_path, capsys):
    """A string accuracy crashed `report` (pandas) and a string latency `export`, far from
    the line that caused it."""
    path = tmp_path / "records.jsonl"
    good = TrialRecord(number=0, state="complete", params={}, metrics={"accuracy": 0.9},
                       cost={"p": {"latency_ms": 1.0, "layers": []}}).to_dict()
    append_record(path, good)
    for n, edit in enumerate(({"metrics": {"accuracy": "0.9"}},
                              {"cost": {"p": {"latency_ms": "1.0"}}},
                              {"constraints": {"p.max_latency_ms": True}},
                              {"seed": None}, {"number": "4"}, {"params": []}), start=1):
        append_record(path, {**good, "number": n, **edit})
    records = read_records(path)
    err = capsys.readouterr().err
    assert [r["number"] for r in records] == [0]
    for lineno, field in enumerate(("metrics.accuracy is '0.9'", "cost.p.latency_ms is '1.0'",
                                    "constraints.p.max_latency_ms is True", "seed is None",
                                    "number is '4'", "params is []"), start=2):
        assert f"records.jsonl:{lineno}: skipping corrupted record ({field}, not" in err


def test_resume_replaces_an_interrupted_trial(tmp_path):
    import optuna

    from autocompress.search.runner_optuna import run_search

    cfg = load_config(write_config(tmp_path, TINY.replace("trials: 3", "trials: 2")))
    run = tmp_path / "run"
    first = run_search(cfg, run, quiet=True, report=False)
    n = len(first.records)
    assert n == 2 + 5                                               # 2 + 5 baselines
    study = optuna.load_study(study_name="tiny", storage=storage_for(run))
    study.set_user_attr("target_trials", n + 1)                     # as if one was still due
    stuck = study.ask()                                             # ... and running at the kill
    result = run_search(cfg, run, quiet=True, resume=True, report=False)
    latest = {r["number"]: r for r in result.records}
    assert latest[stuck.number]["state"] == "failed"
    assert latest[stuck.number]["error"].startswith("interrupted")
    assert [r["number"] for r in first.records] == list(range(n))
    assert sorted(latest) == list(range(n + 2))                     # the replacement is n + 1
    assert latest[n + 1]["state"] in ("complete", "infeasible")
    states = {t.number: t.state.name for t in optuna.load_study(
        study_name="tiny", storage=storage_for(run)).trials}
    assert states[n] == "FAIL" and "RUNNING" not in states.values()


def test_resume_replaces_a_trial_whose_record_was_cut_off(tmp_path, capsys):
    """A torn last line (the study has the trial finished, records.jsonl lost it): the
    trial is recorded as interrupted and a new trial replaces it, so the count stays."""
    from autocompress.search.runner_optuna import run_search

    cfg = load_config(write_config(tmp_path, TINY.replace("trials: 3", "trials: 2")))
    run = tmp_path / "run"
    first = run_search(cfg, run, quiet=True, baselines=False, report=False)
    path = run / "records.jsonl"
    text = path.read_text()
    path.write_text(text[:len(text) - 40])                          # cut the last record
    result = run_search(cfg, run, quiet=True, resume=True, report=False)
    assert "skipping corrupted record" in capsys.readouterr().err
    latest = {r["number"]: r for r in result.records}
    assert latest[1]["state"] == "failed" and "record was cut off" in latest[1]["error"]
    assert latest[0] == first.records[0]                            # untouched
    assert sorted(latest) == [0, 1, 2]                              # 2 replaces 1
    assert latest[2]["state"] in ("complete", "infeasible")


def test_resume_refuses_a_run_whose_space_or_config_was_edited(tmp_path, capsys):
    from autocompress.errors import RunDirError
    from autocompress.export.run import export_run
    from autocompress.search.rundir import load_run_config
    from autocompress.search.runner_optuna import run_search

    cfg = load_config(write_config(tmp_path, TINY.replace("trials: 3", "trials: 1")))
    run = tmp_path / "run"
    run_search(cfg, run, quiet=True, baselines=False, report=False)
    for name in ("space.yaml", "config.resolved.yaml", "profiles/stm32f746.yaml",
                 "device_limits.json"):
        original = (run / name).read_text()
        (run / name).write_text(original + "\n# edited\n")
        with pytest.raises(RunDirError, match=f"{name} changed since the run started"):
            run_search(cfg, run, quiet=True, resume=True, report=False)
        with pytest.raises(RunDirError, match=f"{name} changed since the run started"):
            export_run(run, trial=0)          # it predicted with the edited profile
        (run / name).write_text(original)
    # a profile of the same name beside the run's files shadowed the run's copy on a resume
    (run / "stm32f746.yaml").write_text("not: a profile\n")
    assert load_run_config(run).profile_dirs()[0] == run / "profiles"
    env = (run / "env.json").read_text()          # written last: killed before it, no trial
    (run / "env.json").unlink()                   # ran (resumed, it lost the device limits)
    with pytest.raises(RunDirError, match=r"env\.json is missing or unreadable"):
        run_search(cfg, run, quiet=True, resume=True, report=False)   # but trials did run
    (run / "records.jsonl").rename(tmp_path / "records.jsonl")
    with pytest.raises(RunDirError, match="stopped while its files were written"):
        run_search(cfg, run, quiet=True, resume=True, report=False)
    (tmp_path / "records.jsonl").rename(run / "records.jsonl")
    old = json.loads(env)                         # a resume under other versions said nothing
    old["packages"]["torch"], old["git_rev"] = "1.0", "deadbeef"
    (run / "env.json").write_text(json.dumps(old))
    run_search(cfg, run, resume=True, report=False)                                # restored: resumes
    out = capsys.readouterr().out
    assert "so none is left to run (raise --trials" in out
    assert "baselines included" not in out                  # the run has none (--no-baselines)
    assert f"note: this resume runs torch {torch.__version__} (the run started with 1.0)" in out
    assert "(the run started at deadbeef)" in out
    resumes = json.loads((run / "env.json").read_text())["resumes"]
    assert len(resumes) == 1 and resumes[0]["packages"]["torch"] == torch.__version__


def test_a_teacher_at_chance_is_flagged(tmp_path, capsys):
    from autocompress.search.runner_optuna import run_search

    body = TINY.replace("trials: 3", "trials: 1").replace("epochs: 3}", "epochs: 0}")
    run_search(load_config(write_config(tmp_path, body)), tmp_path / "run", baselines=False, report=False)
    out = capsys.readouterr().out
    assert "warning: the teacher is not measurably above chance" in out
    assert "lower distill alpha" in out and "scale them" not in out   # digits: 0..1
    from ..conftest import SPACE

    text = SPACE.read_text()
    assert "alpha: {low: 0.1, high: 0.9}" in text           # KD off: no alpha to lower
    (tmp_path / "nokd.yaml").write_text(text.replace("alpha: {low: 0.1, high: 0.9}", "alpha: 0"))
    (tmp_path / "b").mkdir()
    cfg = write_config(tmp_path / "b", body.replace("space: SPACE",
                                                    f"space: {tmp_path / 'nokd.yaml'}"))
    run_search(load_config(cfg), tmp_path / "run2", baselines=False, report=False)
    out = capsys.readouterr().out
    assert "not measurably above chance" in out and "lower distill alpha" not in out


def test_a_teacher_at_chance_on_unscaled_images_says_to_scale_them(tmp_path, capsys):
    """8-bit images given as 0..255 left the teacher at chance; the warning only said to
    raise teacher.epochs."""
    from autocompress.search.runner_optuna import run_search

    (tmp_path / "raw255.py").write_text(
        "from autocompress.data import load_digits_bundle\n"
        "def make(seed):\n    b = load_digits_bundle(seed)\n"
        "    return {s: (getattr(b, s).x * 255, getattr(b, s).y) for s in ('train', 'val', 'test')}\n")
    body = TINY.replace("trials: 3", "trials: 1").replace("epochs: 3}", "epochs: 0}")
    run_search(load_config(write_config(tmp_path, body.replace("data: digits", "data: raw255:make"))),
               tmp_path / "run", baselines=False, report=False)
    out = capsys.readouterr().out
    assert "not measurably above chance" in out and "the inputs range 0..255: scale them" in out


def test_a_teacher_below_its_students_is_flagged_at_the_end(tmp_path, capsys):
    from autocompress.search.runner_optuna import run_search

    body = TINY.replace("epochs: 3}", "epochs: 0}")              # an untrained teacher
    res = run_search(load_config(write_config(tmp_path, body)), tmp_path / "run",
                     baselines=False, report=False)
    out = capsys.readouterr().out
    assert sum(r["state"] == "complete" for r in res.records) >= 3
    assert "warning: the teacher (val accuracy" in out and "below most students" in out


def test_more_threads_than_cpus_is_flagged(monkeypatch):
    from types import SimpleNamespace

    from autocompress.search import session as runner_session

    said: list[str] = []
    session = SimpleNamespace(cfg=SimpleNamespace(search=SimpleNamespace(threads=2)),
                              progress=SimpleNamespace(warn=said.append))
    monkeypatch.setattr(runner_session.os, "cpu_count", lambda: 2)
    runner_session.check_cpus(session, 1)                    # 2 threads on 2 CPUs: fine
    assert said == []
    runner_session.check_cpus(session, 2)
    assert said == ["warning: 2 workers x 2 threads = 4 > 2 CPUs here, so trials will slow "
                    "each other down (use --set search.threads=1)"]
    said.clear()
    session.cfg.search.threads = 1                   # nothing left to lower: fewer workers
    runner_session.check_cpus(session, 3)
    assert said == ["warning: 3 workers x 1 threads = 3 > 2 CPUs here, so trials will slow "
                    "each other down (use --workers 2)"]


def test_calibration_samples_come_from_across_a_class_sorted_train_split():
    from types import SimpleNamespace

    import torch

    from autocompress.data import Split
    from autocompress.search.setup import SearchContext

    y = torch.arange(10).repeat_interleave(100)                # sorted by class
    data = SimpleNamespace(train=Split(y[:, None].float(), y))
    calib = SearchContext.calibration(SimpleNamespace(data=data, cfg=SimpleNamespace(seed=0)))
    assert len(calib) == 256 and len(calib[:, 0].unique()) == 10
    again = SearchContext.calibration(SimpleNamespace(data=data, cfg=SimpleNamespace(seed=0)))
    assert torch.equal(calib, again)                            # seeded


def test_resume_refuses_a_run_missing_its_study_or_records_or_with_a_garbled_journal(tmp_path):
    """Without study.journal a resume re-ran every recorded trial as a new study (records
    doubled, model.pt overwritten); without records.jsonl it recorded every finished trial
    interrupted and trained it again; a garbled journal line gave a JSONDecodeError
    traceback."""
    from autocompress.errors import RunDirError
    from autocompress.search.runner_optuna import run_search

    cfg = load_config(write_config(tmp_path, TINY.replace("trials: 3", "trials: 1")))
    run = tmp_path / "run"
    run_search(cfg, run, quiet=True, baselines=True, report=False)
    for name, what in (("study.journal", "study.journal is missing though records.jsonl"),
                       ("records.jsonl", "records.jsonl holds no record though the study has")):
        kept = (run / name).read_bytes()
        (run / name).unlink()
        with pytest.raises(RunDirError, match=what):
            run_search(None, run, quiet=True, resume=True, trials=2, report=False)
        (run / name).write_bytes(kept)
    journal = run / "study.journal"
    kept = journal.read_bytes()
    journal.write_bytes(kept + b"garbage garbage\n")
    with pytest.raises(RunDirError, match=r"study.journal.*not a journal line"):
        run_search(None, run, quiet=True, resume=True, trials=2, report=False)
    journal.write_bytes(kept)
    outside = tmp_path / "outside.jsonl"           # a resume appended through the link
    (run / "records.jsonl").rename(outside)
    (run / "records.jsonl").symlink_to(outside)
    with pytest.raises(RunDirError, match=r"records\.jsonl is a symbolic link"):
        run_search(None, run, quiet=True, resume=True, trials=2, report=False)
    (run / "records.jsonl").unlink()
    outside.rename(run / "records.jsonl")
    (teacher,) = run.glob("teacher-*.pt")       # a truncated cache gave torch's traceback
    teacher.write_bytes(teacher.read_bytes()[:100])
    with pytest.raises(RunDirError, match=r"the cached teacher cannot be read") as exc:
        run_search(None, run, quiet=True, resume=True, trials=2, report=False)
    assert "weights_only=False" not in str(exc.value) and "delete it" in exc.value.hint
    # a resume that failed is not listed among env.json's resumes (it was, before the study)
    assert "resumes" not in json.loads((run / "env.json").read_text())
    teacher.unlink()                                   # trained again: the resume goes on
    run_search(None, run, quiet=True, resume=True, trials=2, report=False)
    assert len(json.loads((run / "env.json").read_text())["resumes"]) == 1
