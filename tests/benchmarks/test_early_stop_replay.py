"""The early-stopping replay (benchmarks/early_stop_replay.py) decides as a search would."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from autocompress.hardware import CostEstimate
from autocompress.search.early_stop import EarlyStopping

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from early_stop_replay import replay


def record(number: int, rungs: dict[int, float], ms: float, baseline: str | None = None
           ) -> dict:
    cost = CostEstimate(profile="stm32f746", latency_ms=ms, std_ms=0.0, flash_kb=1.0,
                        peak_sram_kb=1.0, peak_at="")
    return {"number": number, "state": "complete", "baseline": baseline,
            "cost": {"stm32f746": cost.to_dict()},
            "metrics": {"accuracy": 0.9, **{f"rung_accuracy/{g}": a for g, a in rungs.items()}}}


RECORDS = [
    record(0, {1: 0.10, 2: 0.60}, 40.0, baseline="uniform-int8"),   # slow: dominates nobody
    record(1, {1: 0.11, 2: 0.50}, 3.0),
    record(2, {1: 0.12, 2: 0.55}, 2.0),
    record(3, {1: 0.09, 2: 0.30}, 4.0),        # dominated by 1 and 2 at rung 2, at chance at 1
    {"number": 4, "state": "infeasible", "baseline": None},
]


@pytest.mark.parametrize(("k", "chance_se", "stopped"), [
    (1, 0.0, {3: 1}),     # rung 1: trial 3 (0.09) is dominated by 1 and 2 (at chance)
    (1, 3.0, {3: 2}),     # the floor (0.155 on 270 images) passes rung 1; rung 2 stops it
    (3, 3.0, {}),         # two dominators are not enough
])
def test_replay_stops_what_the_board_would(tmp_path: Path, k: int, chance_se: float,
                                           stopped: dict[int, int]) -> None:
    policy = EarlyStopping(rungs=(1, 2), min_dominating=k, margin_se=0, chance_se=chance_se)
    after = replay(RECORDS, policy, chance=0.1, n_val=270, board_dir=tmp_path)
    assert {r["number"]: r["rung"] for r in after if r["state"] == "pruned"} == stopped
    assert [r["number"] for r in after] == [0, 1, 2, 3, 4]
    assert after[0]["state"] == "complete" and after[4]["state"] == "infeasible"
