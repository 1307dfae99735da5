"""Cost-spread initial design (autocompress/search/initial.py)."""
from __future__ import annotations

import statistics

import pytest

from autocompress.config import load_config
from autocompress.search.initial import _closest_to_targets, spread_design
from autocompress.search.objective import cost_plan
from autocompress.search.setup import build_context

from ..conftest import TINY, write_config


def test_picks_are_closest_to_log_spaced_targets():
    pool = [(v, {"i": v}) for v in (1.0, 1.5, 2.0, 4.0, 8.0, 9.0, 16.0, 64.0)]
    assert [v for v, _ in _closest_to_targets(pool, 3)] == [1.0, 8.0, 64.0]
    assert [v for v, _ in _closest_to_targets(pool, 4)] == [1.0, 4.0, 16.0, 64.0]
    assert _closest_to_targets(pool[:2], 3) == pool[:2]          # a short pool: all of it


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    body = TINY.replace("max_latency_ms: 50", "max_latency_ms: 6")   # some candidates over
    return build_context(load_config(write_config(tmp_path_factory.mktemp("i"), body)))


def latency(ctx, params):
    _, costs, constraints = cost_plan(ctx, ctx.rspace.to_plan(params), 0)
    return costs["stm32f746"].latency_ms, constraints


def test_design_is_feasible_spread_and_seeded(ctx):
    design = spread_design(ctx, 5, seed=1)
    assert design.axis == "stm32f746.latency_ms" and len(design.picks) == 5
    assert 0 < design.feasible < design.pool == 80       # the 6 ms budget drops some
    measured = [latency(ctx, p) for p in design.picks]
    assert [round(m, 6) for m, _ in measured] == [round(c, 6) for c in design.costs]
    assert all(v <= 0 for _, cons in measured for v in cons.values())
    assert list(design.costs) == sorted(design.costs)
    # the dearest pick is near the top of the feasible range, which 5 random draws rarely reach
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    drawn = [latency(ctx, study.ask(ctx.rspace.distributions()).params)[0] for _ in range(20)]
    feasible = [d for d in drawn if d <= 6]
    assert design.costs[-1] >= statistics.quantiles(feasible, n=10)[-1]
    assert design.costs[0] <= min(feasible)
    assert spread_design(ctx, 5, seed=1).picks == design.picks
    assert "5 trials spread over stm32f746.latency_ms" in design.summary()
    assert spread_design(ctx, 0, seed=1).picks == ()


def test_a_design_whose_candidates_all_fail_to_cost_says_why(ctx, monkeypatch):
    """Every costing error was swallowed: the summary blamed the budget."""
    from autocompress.search import initial

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported op: aten::foo")

    monkeypatch.setattr(initial, "cost_plan", broken)
    design = spread_design(ctx, 3, seed=1)
    assert design.picks == () and design.errors == design.pool == 48
    assert "48 could not be built or costed, the first: RuntimeError: unsupported op" \
        in design.summary()


@pytest.mark.parametrize("sampler,design,expected", [
    ("tpe", "spread", 3), ("tpe", "random", 0), ("random", "spread", 0)])
def test_search_enqueues_the_design_after_the_baselines(tmp_path, sampler, design, expected):
    from autocompress.search.runner_optuna import run_search

    body = TINY.replace("sampler: random}", f"sampler: {sampler}, initial_design: {design}}}")
    result = run_search(load_config(write_config(tmp_path, body)), tmp_path / "run", quiet=True, report=False)
    notes = [r.get("note") or "" for r in result.records]
    spread = [i for i, n in enumerate(notes) if n.startswith("initial design")]
    assert len(spread) == expected                   # min(3 trials, 10 - 3 in-space baselines)
    assert all(result.records[i]["baseline"] is None for i in spread)
    assert spread == list(range(5, 5 + expected))    # right after the 5 baselines


def test_an_interrupted_design_trial_is_enqueued_again(tmp_path):
    import optuna

    from autocompress.search.initial import NOTE
    from autocompress.search.records import read_records
    from autocompress.search.recovery import recover

    study = optuna.create_study(directions=["maximize", "minimize"])
    note = NOTE.format(axis="stm32f746.latency_ms")
    study.enqueue_trial({"x": 1.0}, user_attrs={"note": note, "design": "spread"})
    study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})   # running when killed
    assert recover(study, {}, ("accuracy", "stm32f746.latency_ms"),
                   tmp_path / "records.jsonl", base_seed=7) == 1
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [(t.system_attrs["fixed_params"], t.user_attrs["note"]) for t in waiting] == \
        [({"x": 1.0}, note)]
    (rec,) = read_records(tmp_path / "records.jsonl")
    assert "interrupted" in rec["error"] and rec["seed"] == 7 + 0     # the seed it ran with
