"""benchmarks/confirm_gain.py retrains in the run's own setting: the uniform-int8 baseline
retrained under the run's own trial seed scores exactly what the run recorded, and the
candidate it picks is the best searched one at or below the baseline's latency."""
from __future__ import annotations

import sys

from autocompress.config import load_config
from autocompress.search.records import read_records
from autocompress.search.runner_optuna import run_search

from ..conftest import ROOT, TINY, write_config

sys.path.insert(0, str(ROOT / "benchmarks"))

import confirm_gain as bench


def test_retraining_reproduces_the_run_and_picks_the_best_within_int8(tmp_path):
    cfg = write_config(tmp_path, TINY)
    run_dir = tmp_path / "tpe-s0"
    run_search(load_config(cfg), run_dir, quiet=True, report=False)
    records = read_records(run_dir / "records.jsonl")
    int8 = next(r for r in records if r.get("baseline") == "uniform-int8")
    again = bench.retrain(run_dir, [int8["params"]], [int8["seed"]])
    assert again == [[int8["metrics"]["accuracy"]]]

    row = bench.confirm(tmp_path, 0, k=1)
    searched = [r for r in records if not r.get("baseline") and r["state"] == "complete"
                and bench.latency(r) <= bench.latency(int8)]
    assert row["int8_once"] == int8["metrics"]["accuracy"]
    assert row["tpe"]["once"] == max(r["metrics"]["accuracy"] for r in searched)
    assert row["tpe"]["ms"] <= bench.latency(int8)
    assert "random" not in row                     # no random-s0 run in the folder


def test_retraining_trains_once_per_seed_when_the_run_repeated_trainings(tmp_path):
    body = TINY.replace("finetune_epochs: 1}", "finetune_epochs: 1, repeats: 2}")
    body = body.replace("trials: 3", "trials: 1")
    run_dir = tmp_path / "tpe-s0"
    run_search(load_config(write_config(tmp_path, body)), run_dir, quiet=True,
               baselines=False, report=False)
    [trial] = read_records(run_dir / "records.jsonl")
    assert trial["state"] == "complete", trial
    again = bench.retrain(run_dir, [trial["params"]], [trial["seed"]])
    assert again == [[trial["metrics"]["repeat_accuracy/0"]]]
