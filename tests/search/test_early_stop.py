from __future__ import annotations

import pytest

from autocompress.config import load_config
from autocompress.errors import ConfigError
from autocompress.search import objective
from autocompress.search.early_stop import (
    EarlyStopping,
    FileBoard,
    chance_level,
    dominated_by,
    point_of,
    rung_report,
)
from autocompress.search.setup import build_context
from autocompress.search.study import cheapest_params

from ..conftest import TINY, write_config

STOP = TINY.replace("epochs: 1, finetune_epochs: 1", "epochs: 3, finetune_epochs: 1").replace(
    "sampler: random}",
    "sampler: random, early_stopping: {rungs: [1, 2], min_dominating: 2, margin_se: 1, "
    "chance_se: 3}}")


def test_dominance_counts_only_strictly_better_points():
    assert dominated_by([0.5, -1.0], [[0.6, -0.8], [0.5, -1.0], [0.7, -2.0]]) == 1
    assert dominated_by(point_of(0.5, [1.0]), [point_of(0.6, [0.9]), point_of(0.5, [0.5])]) == 2


def test_a_dominating_accuracy_must_lead_by_the_margin(tmp_path):
    others = [point_of(0.104, [1.0]), point_of(0.30, [1.0])]
    assert dominated_by(point_of(0.100, [2.0]), others) == 2              # plain dominance
    assert dominated_by(point_of(0.100, [2.0]), others, margin=0.026) == 1   # noise is not
    assert EarlyStopping(rungs=(1,)).margin_se == 1                          # on by default
    policy = EarlyStopping(rungs=(1,), margin_se=1, min_dominating=2)
    assert policy.margin(0.5, 200) == pytest.approx(0.05)     # sqrt(2 * 0.25 / 200)
    assert policy.margin(0.1, 270) == pytest.approx(0.0258, abs=1e-4)
    assert EarlyStopping(rungs=(1,), margin_se=0).margin(0.5, 200) == 0
    assert policy.margin(1.0, 270) == policy.margin(269 / 270, 270) > 0   # never zero
    board = FileBoard(tmp_path / "rungs.jsonl", policy)
    assert board.decide(1, 0, 0.104, [1.0], False) and board.decide(1, 1, 0.103, [1.0], False)
    assert board.decide(1, 2, 0.100, [2.0], False, policy.margin(0.1, 270))   # within noise
    assert not board.decide(1, 3, 0.100, [2.0], False)                       # plain: stopped
    assert board.entries()[2]["margin"] == pytest.approx(0.0258, abs=1e-4)


def test_candidates_at_chance_stop_nobody(tmp_path):
    policy = EarlyStopping(rungs=(1,), chance_se=3)
    floor = policy.floor(0.1, 270)           # 10 balanced classes, 270 validation images
    assert floor == pytest.approx(0.1 + 3 * (0.09 / 270) ** 0.5)             # ~0.155
    assert EarlyStopping(rungs=(1,)).floor(0.1, 270) == floor                # on by default
    assert EarlyStopping(rungs=(1,), chance_se=0).floor(0.1, 270) < 0        # off
    at_chance = [point_of(0.15, [1.0]), point_of(0.12, [1.0])]
    assert dominated_by(point_of(0.09, [2.0]), at_chance) == 2
    assert dominated_by(point_of(0.09, [2.0]), at_chance, floor=floor) == 0
    assert dominated_by(point_of(0.09, [2.0]), [*at_chance, point_of(0.6, [1.0])],
                        floor=floor) == 1                                    # one has learned
    board = FileBoard(tmp_path / "rungs.jsonl", policy)
    assert board.decide(1, 0, 0.15, [1.0], False, 0.0, floor)
    assert board.decide(1, 1, 0.12, [1.0], False, 0.0, floor)
    assert board.decide(1, 2, 0.09, [2.0], False, 0.0, floor)    # without the floor: stopped
    assert not board.decide(1, 3, 0.09, [2.0], False)
    assert board.entries()[2]["floor"] == pytest.approx(floor, abs=1e-6)
    board.decide(1, 4, 0.7, [1.0], False, 0.0, floor)
    board.decide(1, 5, 0.6, [1.0], False, 0.0, floor)
    assert not board.decide(1, 6, 0.5, [2.0], False, 0.0, floor)  # learned ones still stop


def test_rung_report_flags_stops_made_at_chance(tmp_path):
    import torch

    assert chance_level(torch.tensor([0, 1, 1, 2])) == 0.5
    policy = EarlyStopping(rungs=(1, 3), min_dominating=2, margin_se=0, chance_se=0)  # plain
    board = FileBoard(tmp_path / "rungs.jsonl", policy)
    for n, (acc, cost) in enumerate([(0.12, 1.0), (0.11, 1.0), (0.09, 2.0), (0.10, 3.0)]):
        board.decide(1, n, acc, [cost], False)
    for n, (acc, cost) in enumerate([(0.8, 1.0), (0.7, 1.0)]):
        board.decide(3, n, acc, [cost], False)
    board.decide(1, 9, 0.9, [9.0], True)                   # a baseline: never stopped
    line = rung_report(board.entries(), policy, 0.1, 270)
    assert line.startswith("early stopping: 2 of 4 searched candidates stopped (rung 1: 2, "
                           "rung 3: 0)")
    assert "at rung 1 the median candidate scored 11.0% against 10.0% for chance" in line
    assert "rung 3 the" not in line
    # a trial interrupted after its rung (killed, its worker lost) is not a candidate
    assert rung_report(board.entries(), policy, 0.1, 270, ended={0, 2, 3, 9}).startswith(
        "early stopping: 2 of 3 searched candidates stopped")
    floor = EarlyStopping(rungs=(1, 3))                                    # the default floor
    assert "chance" not in rung_report(board.entries(), floor, 0.1, 270)   # already on
    assert "chance" not in rung_report(board.entries(), policy, 0.01, 270)  # 100 classes


def test_board_stops_a_candidate_dominated_by_k_that_passed(tmp_path):
    board = FileBoard(tmp_path / "rungs.jsonl", EarlyStopping(rungs=(1,), min_dominating=2))
    assert board.decide(1, 0, 0.9, [1.0], False)
    assert board.decide(1, 1, 0.8, [1.0], False)          # dominated by 1 < 2: goes on
    assert not board.decide(1, 2, 0.7, [2.0], False)      # dominated by 2: stopped
    assert not board.decide(1, 3, 0.6, [3.0], False)      # the stopped one does not count...
    assert board.decide(1, 4, 0.1, [9.0], True)           # ... and baselines always go on
    entries = board.entries()
    assert [e["passed"] for e in entries] == [True, True, False, False, True]
    assert entries[3]["dominated_by"] == 2
    assert board.decide(2, 2, 0.1, [9.0], False)          # rungs are separate tables


def test_config_validates_early_stopping(tmp_path):
    cfg = load_config(write_config(tmp_path, STOP))
    assert EarlyStopping.from_config(cfg.search.early_stopping) == EarlyStopping(
        rungs=(1, 2), min_dominating=2, margin_se=1, chance_se=3)
    assert EarlyStopping.from_config(load_config(write_config(tmp_path, TINY))
                                     .search.early_stopping) is None      # off by default
    with pytest.raises(ConfigError, match=r"below train\.epochs"):
        load_config(write_config(tmp_path, STOP.replace("rungs: [1, 2]", "rungs: [1, 3]")))
    with pytest.raises(ConfigError, match="increasing"):
        load_config(write_config(tmp_path, STOP.replace("rungs: [1, 2]", "rungs: [2, 1]")))
    with pytest.raises(ConfigError, match="min_dominating"):
        load_config(write_config(tmp_path, STOP.replace("min_dominating: 2", "min_dominating: 0")))
    with pytest.raises(ConfigError, match="margin_se"):
        load_config(write_config(tmp_path, STOP.replace("margin_se: 1", "margin_se: -1")))
    with pytest.raises(ConfigError, match="chance_se"):
        load_config(write_config(tmp_path, STOP.replace("chance_se: 3", "chance_se: true")))
    off = load_config(write_config(tmp_path, STOP.replace("chance_se: 3", "chance_se: 0")))
    assert EarlyStopping.from_config(off.search.early_stopping).chance_se == 0
    short = load_config(write_config(tmp_path, STOP.replace(
        "min_dominating: 2, margin_se: 1, chance_se: 3", "chance_se: 2")))
    assert EarlyStopping.from_config(short.search.early_stopping) == EarlyStopping(
        rungs=(1, 2), min_dominating=1, margin_se=1, chance_se=2)          # others: defaults
    plain = {"rungs": [1], "min_dominating": 2, "margin_se": 0, "chance_se": 0}
    assert EarlyStopping.from_config(plain) == EarlyStopping(
        rungs=(1,), min_dominating=2, margin_se=0, chance_se=0)            # 0 is kept


class _Board:
    def __init__(self, stop_at: int | None) -> None:
        self.stop_at, self.calls, self.margins, self.floors = stop_at, [], [], []

    def decide(self, rung, number, accuracy, costs, protected, margin=0.0, floor=-1.0):
        self.calls.append((rung, number, accuracy, tuple(costs), protected))
        self.margins.append(margin)
        self.floors.append(floor)
        return rung != self.stop_at


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return build_context(load_config(write_config(tmp_path_factory.mktemp("es"), STOP)))


def test_trial_stopped_at_a_rung_is_recorded_pruned(ctx):
    board = _Board(stop_at=2)
    rec = objective.run_trial(ctx, None, cheapest_params(ctx.rspace), number=3, seed=3,
                              board=board)
    assert rec.state == "pruned" and rec.rung == 2
    assert [c[0] for c in board.calls] == [1, 2]
    assert set(rec.metrics) == {"rung_accuracy/1", "rung_accuracy/2"}
    assert board.calls[0][3] == (rec.cost["stm32f746"]["latency_ms"],)   # the predicted cost
    policy = EarlyStopping(rungs=(1, 2), margin_se=1, chance_se=3)
    n_val = len(ctx.data.val)
    assert board.margins == [pytest.approx(policy.margin(rec.metrics[f"rung_accuracy/{r}"],
                                                         n_val)) for r in (1, 2)]
    assert 0 < board.margins[0] < 0.1
    chance = float(ctx.data.val.y.bincount().max()) / n_val     # the majority class's share
    assert board.floors == [pytest.approx(policy.floor(chance, n_val))] * 2
    assert chance < board.floors[0] < 1


def test_unstopped_trial_trains_exactly_as_without_rungs(ctx):
    params = cheapest_params(ctx.rspace)
    plain = objective.run_trial(ctx, None, params, number=1, seed=1)
    board = _Board(stop_at=None)
    staged = objective.run_trial(ctx, None, params, number=1, seed=1, board=board)
    assert staged.state == "complete" and len(board.calls) == 2
    assert staged.metrics["accuracy"] == plain.metrics["accuracy"]


def test_compressed_rung_score_probes_a_copy_and_leaves_training_alone(ctx, tmp_path):
    from dataclasses import replace

    cfg = load_config(write_config(tmp_path, STOP.replace("chance_se: 3", "rung_score: "
                                                          "compressed")))
    probed = replace(ctx, cfg=cfg)
    params = cheapest_params(ctx.rspace)                 # the most pruned candidate
    plain = objective.run_trial(ctx, None, params, number=1, seed=1)
    board = _Board(stop_at=None)
    staged = objective.run_trial(probed, None, params, number=1, seed=1, board=board)
    assert staged.state == "complete" and len(board.calls) == 2
    assert staged.metrics["accuracy"] == plain.metrics["accuracy"]   # training untouched
    dense = _Board(stop_at=None)
    objective.run_trial(ctx, None, params, number=1, seed=1, board=dense)
    assert [c[2] for c in board.calls] != [c[2] for c in dense.calls]  # another score
    with pytest.raises(ConfigError, match="rung_score"):
        load_config(write_config(tmp_path, STOP.replace("chance_se: 3", "rung_score: pruned")))


def test_compressed_rung_score_takes_iterative_sparsity_at_its_final_ratio(ctx, tmp_path,
                                                                          monkeypatch):
    """An iterative plan's probe is as sparse as the one-shot plan of the same ratio (and
    cost): apply_plan alone prunes it to its schedule's first step."""
    from dataclasses import replace

    from torch import nn

    from autocompress.compress import CompressionPlan, SparsityConfig
    from autocompress.hardware import CostEstimate

    cfg = load_config(write_config(tmp_path, STOP.replace("chance_se: 3", "rung_score: "
                                                          "compressed")))
    probed = replace(ctx, cfg=cfg)
    model = ctx.source.build({}, seed=0)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][:3]
    zeros = []

    def measure(probe, _val, **_kw):
        ws = [probe.get_submodule(n).weight for n in convs]
        zeros.append(sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws))
        return 0.5

    monkeypatch.setattr(objective, "accuracy", measure)
    for steps in (1, 3):
        plan = CompressionPlan(layers={n: (SparsityConfig(ratio=0.8, steps=steps),)
                                       for n in convs})
        cost = CostEstimate(profile="stm32f746", latency_ms=1.0, std_ms=0.0, flash_kb=1.0,
                            peak_sram_kb=1.0, peak_at="stem.conv")
        hook = objective._rung_check(probed, _Board(stop_at=None), plan, 1,
                                     {"stm32f746": cost}, {}, protected=False)
        hook(model, 1)
    assert zeros[0] == pytest.approx(0.8, abs=0.01) and zeros[1] == pytest.approx(zeros[0])
