"""The scaling benchmark's overhead split (benchmarks/scaling.py) adds up and names its causes."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from scaling import breakdown, main, parts_gaps


def rec(worker: str, start: float, duration: float) -> dict:
    return {"worker": worker, "started_at": start, "duration_s": duration}


def test_breakdown_splits_worker_time_outside_trials():
    # phase 0..20 s; worker a: trials 3-8 and 8.5-18; worker b: trials 4-10 and 10.2-15
    records = [rec("a", 8.5, 9.5), rec("b", 4.0, 6.0), rec("a", 3.0, 5.0), rec("b", 10.2, 4.8)]
    parts = breakdown(records, 0.0, 20.0, workers=2)
    assert parts["startup"] == pytest.approx(3.0 + 4.0)
    assert parts["gaps"] == pytest.approx(0.5 + 0.2)
    assert parts["tail"] == pytest.approx(2.0 + 5.0)
    busy = sum(r["duration_s"] for r in records)
    assert busy + sum(parts.values()) == pytest.approx(2 * 20.0)   # every worker-second
    assert sorted(parts_gaps(records)) == pytest.approx([0.2, 0.5])


def test_a_worker_that_never_ran_counts_as_startup_for_the_whole_phase():
    parts = breakdown([rec("a", 1.0, 8.0)], 0.0, 10.0, workers=2)
    assert parts == pytest.approx({"startup": 1.0 + 10.0, "gaps": 0.0, "tail": 1.0})


def test_unknown_ray_mode_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--ray", "local,cluster"])
    assert exc.value.code == 2
    assert "unknown cluster" in capsys.readouterr().err
