from __future__ import annotations

from autocompress.search.sampling import infeasible_trend


def test_infeasible_fraction_over_time_ignores_baselines_and_interrupted():
    states = ["infeasible", "infeasible", "complete", "infeasible", "complete", "complete"]
    records = [{"number": i + 2, "state": s} for i, s in enumerate(states)]
    records += [{"number": 0, "state": "complete", "baseline": "uniform-int8"},
                {"number": 1, "state": "failed", "error": "interrupted (killed)"}]
    trend = infeasible_trend(records, window=2)
    assert trend.cumulative == (1.0, 1.0, 2 / 3, 0.75, 0.6, 0.5)
    assert trend.windowed == (1.0, 1.0, 0.5, 0.5, 0.5, 0.0)
    assert trend.first_half == 2 / 3 and trend.second_half == 1 / 3
    assert trend.summary() == ("infeasible proposals: 50% of 6 (first half 67%, "
                               "second half 33%)")
    assert infeasible_trend([]).summary() == "infeasible proposals: none sampled"
