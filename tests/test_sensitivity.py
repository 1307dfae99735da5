"""`autocompress sensitivity`: per-layer accuracy change of a trained trial."""
from __future__ import annotations

import json

import pytest

from autocompress.cli import main
from autocompress.config import load_config
from autocompress.errors import AutocompressError
from autocompress.search.runner_optuna import run_search
from autocompress.sensitivity import default_record, table_lines
from tests.conftest import SPACE, TINY, write_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sens")
    cfg = load_config(write_config(folder, TINY), ["search.trials=2"])
    result = run_search(cfg, folder / "run", baselines=False, quiet=True, report=False)
    return folder / "run", result.records


def test_the_fp32_baseline_is_the_default_else_the_most_accurate_trial():
    recs = [{"number": 0, "state": "complete", "metrics": {"accuracy": 0.9}},
            {"number": 1, "state": "complete", "metrics": {"accuracy": 0.8}, "baseline": "fp32"},
            {"number": 3, "state": "complete", "metrics": {"accuracy": 0.7}},
            {"number": 2, "state": "failed"}]
    assert default_record(recs)["number"] == 1
    assert default_record([recs[0], recs[2]])["number"] == 0
    with pytest.raises(AutocompressError, match="no complete trial"):
        default_record([recs[3]])


def test_each_layer_is_probed_alone_from_the_trials_own_weights(run, capsys):
    run_dir, records = run
    best = max((r for r in records if r["state"] == "complete"),
               key=lambda r: r["metrics"]["accuracy"])
    assert main(["sensitivity", str(run_dir), "--bits", "8,2", "--prune", "0.5",
                 "--sparsity", "0.99", "--sort"]) == 0
    out = capsys.readouterr().out
    result = json.loads((run_dir / "sensitivity" / f"{best['number']}.json").read_text())
    assert (run_dir / "sensitivity" / f"{best['number']}.png").stat().st_size > 10_000
    assert result["val_accuracy"] == pytest.approx(best["metrics"]["accuracy"], abs=1e-6)
    assert result["probes"] == ["int8", "int2", "prune 50%", "sparse 99%"]
    assert result["layers"][0] == "stem.conv" and result["layers"][-1] == "classifier"
    assert result["drop"]["classifier"]["prune 50%"] is None               # the output layer
    assert "writes the model's output" in result["not_applied"]["classifier"]["prune 50%"]
    sparse = [result["drop"][f]["sparse 99%"] for f in result["layers"]]
    assert min(sparse) < -0.2                 # 99% of a layer's weights gone hurts somewhere
    assert all(-1 <= v <= 1 for row in result["drop"].values() for v in row.values()
               if v is not None)
    assert table_lines(result, sort=True)[1] in out


@pytest.mark.parametrize(("args", "loc"), [(["--bits", "9"], "--bits"),
                                           (["--prune", "half"], "--prune"),
                                           (["--trial", "99"], "--trial"),
                                           (["--bits", "", "--prune", "", "--sparsity", ""],
                                            "--bits"),
                                           # ignored without --narrow: nothing was narrowed
                                           (["--max-drop", "2"], "--max-drop")])
def test_mistakes_exit_2_naming_the_flag(run, capsys, args, loc):
    assert main(["sensitivity", str(run[0]), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {loc}")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_run_trained_on_a_gpu_is_read_on_the_cpu(tmp_path):
    """A run whose config says train.device: cuda crashed sensitivity on a machine without a
    GPU (a resume may move it there; the run keeps its config)."""
    from dataclasses import replace

    from autocompress.compress import CompressionPlan
    from autocompress.search.setup import build_context
    from autocompress.sensitivity import analyse, probes

    cfg = load_config(write_config(tmp_path, TINY))
    ctx = build_context(cfg)
    ctx = replace(ctx, cfg=replace(cfg, train=replace(cfg.train, device="cuda")))
    plan = CompressionPlan()
    result = analyse(ctx, plan, ctx.source.build(plan.arch, 0), probes([8], [], []))
    assert result["probes"] == ["int8"] and len(result["layers"]) > 5


def test_narrow_writes_a_space_the_search_reads(run, tmp_path, capsys):
    """``--narrow`` removes what lost more than ``--max-drop`` points, as a space that a
    search of the same config resolves."""
    from autocompress.search.setup import build_context
    from autocompress.yamlio import load_yaml

    run_dir, _ = run
    out = tmp_path / "narrow.yaml"
    assert main(["sensitivity", str(run_dir), "--bits", "8,2", "--prune", "0.5", "--sparsity",
                 "", "--narrow", str(out), "--max-drop", "0"]) == 0
    printed = capsys.readouterr().out
    assert f"search it with --set model.space={out}" in printed
    trial = json.loads(next((run_dir / "sensitivity").glob("*.json")).read_text())
    lost = {f: {p: -100 * v for p, v in row.items() if v is not None}
            for f, row in trial["drop"].items()}
    rules = load_yaml(out).data["rules"]
    exact = [r for r in rules if not str(r["match"]).startswith("re:")]
    assert exact, "with --max-drop 0, some layer lost something at int2 or 50% pruning"
    for rule in exact:
        fqn = rule["match"]
        if "quant.bits" in rule and isinstance(rule["quant.bits"], list):
            assert 2 not in rule["quant.bits"] or lost[fqn]["int2"] <= 0
        if "prune.ratio" in rule:
            assert 0.5 not in rule["prune.ratio"] and lost[fqn]["prune 50%"] > 0
    cfg = load_config(run_dir.parent / "config.yaml", [f"model.space={out}"])
    narrowed = build_context(cfg).rspace
    assert len(narrowed.dists) == len(build_context(load_config(
        run_dir.parent / "config.yaml")).rspace.dists)          # the same parameters


@pytest.mark.parametrize(("args", "loc"), [(["--narrow", "RUN/space.yaml"], "--narrow"),
                                           (["--narrow", "x.yaml", "--max-drop", "-1"],
                                            "--max-drop"),
                                           (["--narrow", "no/such/dir/x.yaml"], "--narrow"),
                                           (["--narrow", "RUN"], "--narrow"),
                                           (["--narrow", "SPACE"], "--narrow")])
def test_narrow_refuses_the_runs_own_files_and_bad_drops(run, capsys, args, loc):
    run_dir = run[0]
    args = [a.replace("RUN", str(run_dir)).replace("SPACE", str(SPACE)) for a in args]
    assert main(["sensitivity", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {loc}")
