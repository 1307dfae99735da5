from __future__ import annotations

import random
from typing import Any

import pytest

from autocompress.errors import AutocompressError, ConfigError
from autocompress.pareto import (
    Budget,
    Objective,
    ParetoFront,
    dominates,
    get_path,
    pareto_indices,
)

MAX_MIN = ["max", "min"]
ACC = Objective.accuracy()
LAT = Objective.latency("mcu")


def rec(number: int, acc: float | None, lat: float | None, state: str = "complete",
        **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"number": number, "state": state, "metrics": {}, "cost": {},
                         "constraints": {}, "baseline": None}
    if acc is not None:
        r["metrics"]["accuracy"] = acc
    if lat is not None:
        r["cost"]["mcu"] = {"latency_ms": lat, "flash_kb": 10.0 * lat}
    r.update(extra)
    return r


def numbers(recs: Any) -> list[int]:
    return [r["number"] for r in recs]


# ------------------------------------------------------------------ dominates / indices


def test_dominates_needs_strictly_better_somewhere() -> None:
    assert dominates([0.9, 3.0], [0.9, 4.0], MAX_MIN)
    assert dominates([0.95, 3.0], [0.9, 4.0], MAX_MIN)
    assert not dominates([0.9, 3.0], [0.9, 3.0], MAX_MIN)  # equal: no dominance
    assert not dominates([0.95, 5.0], [0.9, 4.0], MAX_MIN)  # trade-off
    assert not dominates([0.9, 4.0], [0.9, 3.0], MAX_MIN)


def test_pareto_indices_ties_duplicates_and_one_objective_domination() -> None:
    pts = [
        [0.90, 5.0],  # 0 front
        [0.90, 5.0],  # 1 duplicate of 0: kept
        [0.90, 6.0],  # 2 tie in accuracy, worse latency: dominated in one objective only
        [0.95, 9.0],  # 3 front (trade-off)
        [0.80, 5.0],  # 4 tie in latency, worse accuracy: dominated
        [0.70, 1.0],  # 5 front (fastest)
        [0.95, 9.0 + 1e-9],  # 6 dominated by 3 by a hair
    ]
    assert pareto_indices(pts, MAX_MIN) == [0, 1, 3, 5]


def test_pareto_indices_empty_and_single() -> None:
    assert pareto_indices([], MAX_MIN) == []
    assert pareto_indices([[1.0, 1.0]], MAX_MIN) == [0]


def test_pareto_indices_matches_brute_force() -> None:
    rng = random.Random(0)
    for dims in (2, 3):
        senses = ["max", "min", "min"][:dims]
        pts = [[rng.choice([0.1, 0.2, 0.3, rng.random()]) for _ in range(dims)]
               for _ in range(80)]
        brute = [i for i, p in enumerate(pts)
                 if not any(dominates(q, p, senses) for q in pts)]
        assert pareto_indices(pts, senses) == brute


# ------------------------------------------------------------------ objectives / budgets


def test_objective_paths_and_validation() -> None:
    r = {"metrics": {"accuracy": 0.9, "nan": float("nan"), "flag": True},
         "cost": {"rpi4.ort": {"latency_ms": 3}}}
    assert ACC.get(r) == 0.9
    assert get_path(r, "cost.rpi4.ort.latency_ms") == 3.0  # dotted device names
    assert get_path(r, "metrics.nan") is None
    assert get_path(r, "metrics.flag") is None
    assert get_path(r, "metrics.missing") is None
    assert Objective(name="metrics.accuracy", sense="max").path == "metrics.accuracy"
    with pytest.raises(ConfigError, match="sense"):
        Objective(name="x", sense="up")  # type: ignore[arg-type]


def test_budget_key_and_violation() -> None:
    b = Budget(profile="mcu", metric="latency_ms", limit=10.0)
    assert b.key == "mcu.max_latency_ms"
    assert b.violation(rec(0, 0.9, 12.0)) == pytest.approx(2.0)
    assert b.violation(rec(0, 0.9, None)) is None


# ------------------------------------------------------------------ ParetoFront


def test_front_splits_records() -> None:
    recs = [
        rec(0, 0.90, 5.0),
        rec(1, 0.85, 6.0),  # dominated by 0
        rec(2, 0.97, 9.0),
        rec(3, 0.99, 4.0, state="complete", constraints={"mcu.max_latency_ms": 0.5}),
        rec(4, None, 30.0, state="infeasible"),
        rec(5, None, None, state="failed", error="boom"),
        rec(6, None, None, state="pruned"),
        rec(7, 0.80, 2.0),
        rec(8, None, 3.0),  # complete but no accuracy: cannot be ranked
        rec(9, 0.98, 11.0),  # over the post-hoc budget below
    ]
    f = ParetoFront.from_records(recs, [ACC, LAT],
                                 [Budget(profile="mcu", metric="latency_ms", limit=10.0)])
    assert numbers(f.points) == [7, 0, 2]  # sorted by latency (first min objective)
    assert f.values == ((0.80, 2.0), (0.90, 5.0), (0.97, 9.0))
    assert numbers(f.dominated) == [1]
    assert numbers(f.infeasible) == [3, 4, 9]
    assert numbers(f.failed) == [5, 8]
    assert numbers(f.pruned) == [6]


def test_front_empty_input_and_needs_objectives() -> None:
    f = ParetoFront.from_records([], [ACC, LAT])
    assert f.points == () and f.dominated == () and f.hypervolume([0.0, 10.0]) == 0.0
    assert f.select() is None and f.knee() is None
    with pytest.raises(ConfigError):
        ParetoFront.from_records([], [])


def test_front_accepts_objects_with_to_dict() -> None:
    class Rec:
        def to_dict(self) -> dict[str, Any]:
            return rec(0, 0.9, 1.0)

    assert numbers(ParetoFront.from_records([Rec()], [ACC, LAT]).points) == [0]


def test_hypervolume_2d_by_hand() -> None:
    f = ParetoFront.from_records([rec(0, 0.5, 2.0), rec(1, 0.8, 6.0), rec(2, 0.4, 7.0)],
                                 [ACC, LAT])
    # staircase vs ref (acc 0, lat 10): 0.5*(10-2) + (0.8-0.5)*(10-6) = 4 + 1.2
    assert f.hypervolume({"accuracy": 0.0, "mcu.latency_ms": 10.0}) == pytest.approx(5.2)
    assert f.hypervolume([0.0, 10.0]) == pytest.approx(5.2)
    # a point worse than the reference contributes nothing
    assert f.hypervolume([0.6, 10.0]) == pytest.approx(0.2 * 4.0)
    with pytest.raises(AutocompressError, match="did you mean"):
        f.hypervolume({"acuracy": 0.0, "mcu.latency_ms": 10.0})
    with pytest.raises(AutocompressError, match="expected 2"):
        f.hypervolume([0.0])


def test_hypervolume_3d_matches_optuna() -> None:
    np = pytest.importorskip("numpy")
    hv_mod = pytest.importorskip("optuna._hypervolume")  # private: cross-check only
    rng = random.Random(1)
    flash = Objective(name="flash", sense="min", path="cost.mcu.flash_kb")
    recs = [rec(i, rng.random(), rng.uniform(0, 9)) for i in range(40)]
    for r in recs:
        r["cost"]["mcu"]["flash_kb"] = rng.uniform(0, 90)
    f = ParetoFront.from_records(recs, [ACC, LAT, flash])
    ref = [0.0, 10.0, 100.0]
    loss = np.array([[-v[0], v[1], v[2]] for v in f.values])
    expected = hv_mod.compute_hypervolume(loss, np.array([-0.0, 10.0, 100.0]))
    assert f.hypervolume(ref) == pytest.approx(expected)


def test_hypervolume_4d_and_with_ties_matches_optuna() -> None:
    np = pytest.importorskip("numpy")
    hv_mod = pytest.importorskip("optuna._hypervolume")  # private: cross-check only
    from autocompress.hypervolume import hv_min

    rng = random.Random(2)
    for d in (2, 3, 4):
        pts = [tuple(round(rng.random(), 1) for _ in range(d)) for _ in range(30)]
        pts = [p for p in pts if all(x < 1.0 for x in p)]
        expected = hv_mod.compute_hypervolume(np.array(pts), np.ones(d))
        assert hv_min(pts, [1.0] * d) == pytest.approx(expected), d


def test_a_slice_s_volume_is_recomputed_only_when_a_point_adds_to_it(monkeypatch) -> None:
    """The report's hypervolume trace over the run's own 4 objectives took 266 s on 300
    trials: each slice recomputed the volume of every point below it, dominated or not."""
    import autocompress.hypervolume as hv

    calls = []
    inner = hv.hv_min
    monkeypatch.setattr(hv, "hv_min", lambda p, r: calls.append(len(r)) or inner(p, r))
    # ten points stacked along the last axis: the first covers the others in every slice
    assert hv.hv_min([(0.0, 0.0, float(k)) for k in range(10)], [1.0, 1.0, 10.0]) == 10.0
    assert calls == [3, 2]


def test_select_respects_limits_and_prefers_accuracy() -> None:
    f = ParetoFront.from_records([rec(0, 0.80, 2.0), rec(1, 0.90, 5.0), rec(2, 0.97, 9.0)],
                                 [ACC, LAT])
    assert f.select()["number"] == 2
    assert f.select(max_values={"mcu.latency_ms": 6.0})["number"] == 1
    assert f.select(max_values={"mcu.latency_ms": 5.0})["number"] == 1  # inclusive
    assert f.select(max_values={"mcu.latency_ms": 1.0}) is None
    assert f.select(min_values={"accuracy": 0.85}, max_values={"mcu.latency_ms": 8})[
        "number"] == 1
    with pytest.raises(AutocompressError, match="unknown objective"):
        f.select(max_values={"latency_ms": 5.0})


def test_select_tie_prefers_faster_duplicate_order() -> None:
    f = ParetoFront.from_records([rec(0, 0.9, 5.0), rec(1, 0.9, 5.0)], [ACC, LAT])
    assert numbers(f.points) == [0, 1]
    assert f.select()["number"] == 0


def test_knee_picks_balanced_point() -> None:
    f = ParetoFront.from_records(
        [rec(0, 0.50, 1.0), rec(1, 0.95, 2.0), rec(2, 0.96, 10.0)], [ACC, LAT])
    assert f.knee()["number"] == 1


def test_to_dataframe_has_front_rows() -> None:
    pytest.importorskip("pandas")
    f = ParetoFront.from_records([rec(0, 0.9, 5.0), rec(1, 0.8, 6.0)], [ACC, LAT])
    df = f.to_dataframe()
    assert list(df["number"]) == [0]
    assert "cost/mcu/latency_ms" in df.columns
