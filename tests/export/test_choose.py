"""Which trial `export --max-latency-ms` picks, and what it says about the ones it skips."""
from __future__ import annotations

import pytest

from autocompress.errors import ExportError
from autocompress.export.choose import better_over_budget, choice_notes, choose_record
from autocompress.pareto import Budget


def rec(number: int, acc: float, ms: float, baseline: str | None = None,
        state: str = "complete") -> dict:
    return {"number": number, "state": state, "baseline": baseline,
            "metrics": {"accuracy": acc},
            "cost": {"stm32f746": {"latency_ms": ms, "flash_kb": 1.0, "peak_sram_kb": 1.0}}}


RECORDS = [rec(0, 0.91, 10.3, baseline="uniform-int4"), rec(1, 0.61, 4.0), rec(2, 0.80, 4.8),
           rec(3, 0.95, 20.0, baseline="fp32"), rec(4, 0.99, 9.0, state="failed")]
BUDGET = [Budget(profile="stm32f746", metric="latency_ms", limit=5.0)]


def test_no_limit_exports_the_most_accurate_and_an_accuracy_floor_alone_the_fastest():
    """The CLI refused both (exit 2), though its usage line and the Python API allow them;
    `--min-accuracy` alone picked the most accurate point, not the fastest that meets it."""
    front = [rec(0, 0.90, 9.0), rec(1, 0.85, 4.0), rec(2, 0.80, 3.0), rec(3, 0.60, 1.0)]
    kw = {"trial": None, "max_latency_ms": None, "device": "stm32f746", "budgets": []}
    assert choose_record(front, min_accuracy=None, **kw)["number"] == 0
    assert choose_record(front, min_accuracy=0.82, **kw)["number"] == 1
    with pytest.raises(ExportError, match=r"no front point meets accuracy >= 0.95") as exc:
        choose_record(front, min_accuracy=0.95, **kw)
    assert exc.value.loc == "--min-accuracy"
    failed = [rec(0, 0.9, 1.0, state="failed")]
    with pytest.raises(ExportError, match=r"no front point meets the budgets") as exc:
        choose_record(failed, min_accuracy=None, **kw)
    assert exc.value.loc == "export"                   # not a flag that was never given
    assert "--resume RUN_DIR --trials N" in exc.value.hint and "--trial N" in exc.value.hint


def test_the_front_within_the_run_budget_is_chosen_and_the_skipped_are_named():
    chosen = choose_record(RECORDS, trial=None, max_latency_ms=11.0, device="stm32f746",
                           budgets=BUDGET, min_accuracy=None)
    assert chosen["number"] == 2                       # 0 breaks the run's 5 ms budget
    skipped = better_over_budget(RECORDS, chosen, "stm32f746", 11.0)
    assert [r["number"] for r in skipped] == [0]       # not 3 (over 11 ms), not 4 (failed)


def test_an_unmet_accuracy_says_what_is_reachable():
    with pytest.raises(ExportError, match=r"accuracy >= 0\.9") as exc:
        choose_record(RECORDS, trial=None, max_latency_ms=5.0, device="stm32f746",
                      budgets=BUDGET, min_accuracy=0.9)
    assert "within it, trial 2, reaches 0.8000 (export it with --trial 2)" in exc.value.hint
    with pytest.raises(ExportError) as exc:
        choose_record(RECORDS, trial=None, max_latency_ms=1.0, device="stm32f746",
                      budgets=BUDGET, min_accuracy=None)
    assert "the fastest front point, trial 1, needs 4 ms (export it with --trial 1)" \
        in exc.value.hint


def test_a_zero_latency_limit_is_a_limit_not_no_limit():
    with pytest.raises(ExportError, match=r"latency <= 0"):
        choose_record(RECORDS, trial=None, max_latency_ms=0, device="stm32f746",
                      budgets=BUDGET, min_accuracy=None)
    chosen = choose_record(RECORDS, trial=None, max_latency_ms=None, device="stm32f746",
                           budgets=BUDGET, min_accuracy=None)
    assert chosen["number"] == 2                       # None: no limit, the most accurate


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_latency_limit_not_above_zero_exits_2(value, tmp_path, capsys):
    from autocompress.cli import main

    code = main(["export", str(tmp_path / "no-such-run"), "--max-latency-ms", value])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "--max-latency-ms" in err and f"above 0 ms, got {value}" in err
    assert "e.g. --max-latency-ms 5" in err


def test_a_front_point_that_shows_within_the_limit_is_named():
    """The report shows 1.99038 ms as 1.99; `--max-latency-ms 1.99` then passed it over for a
    less accurate point without a word (cross-check of the report and the export)."""
    records = [rec(0, 0.96, 1.729), rec(1, 0.985, 1.99038), rec(2, 0.99, 1.996)]
    chosen = choose_record(records, trial=None, max_latency_ms=1.99, device="stm32f746",
                           budgets=[], min_accuracy=None)
    assert chosen["number"] == 0
    notes = choice_notes(records, chosen, "stm32f746", 1.99, [])
    assert notes == ["note: just over the limit, though shown within it when rounded: trial 1 "
                     "0.9850 at 1.99038 ms; export one with --trial N"]     # not 2: 2.00
    assert choice_notes(records, records[1], "stm32f746", 1.9904, []) == []


def test_flash_and_sram_limits_choose_too(tmp_path, capsys):
    """An MCU user with a Flash budget had to read trials.csv and pass --trial."""
    records = [rec(0, 0.99, 9.0), rec(1, 0.95, 3.0), rec(2, 0.90, 1.0)]
    for r, kb in zip(records, (90.0, 40.0, 60.0), strict=True):
        r["cost"]["stm32f746"]["flash_kb"] = kb
    pick = choose_record(records, trial=None, max_latency_ms=None, device="stm32f746",
                         budgets=[], min_accuracy=None, memory={"flash_kb": 64.0})
    assert pick["number"] == 1          # 0 is more accurate but 90 KB; 2 fits, less accurate
    with pytest.raises(ExportError, match=r"no complete trial within the run's budgets meets "
                                          r"flash <= 30 KB on stm32f746") as exc:
        choose_record(records, trial=None, max_latency_ms=None, device="stm32f746",
                      budgets=[], min_accuracy=None, memory={"flash_kb": 30.0})
    assert exc.value.hint == "the smallest in flash, trial 1, needs 40 KB"
    budget = [Budget(profile="stm32f746", metric="latency_ms", limit=5.0)]   # 0: over it
    pick = choose_record(records, trial=None, max_latency_ms=10.0, device="stm32f746",
                         budgets=budget, min_accuracy=None, memory={"flash_kb": 64.0})
    assert pick["number"] == 1                  # trial 0 (90 KB) breaks the user's 64 KB too,
    assert choice_notes(records, pick, "stm32f746", 10.0, budget, {"flash_kb": 64.0}) == []
    assert choice_notes(records, pick, "stm32f746", 10.0, budget)     # so it is not named
    from autocompress.cli import main

    assert main(["export", str(tmp_path / "run"), "--trial", "1", "--max-flash-kb", "5"]) == 2
    assert "--max-flash-kb chooses among front points" in capsys.readouterr().err


def test_an_int8_file_over_the_limits_names_a_trial_whose_file_fits():
    """`--max-flash-kb 11` picked a trial whose 4-bit layers fit only packed; its int8 file
    needed 11.9 KB, and the all-int8 front point that truly fits (9.1 KB) went unnamed."""
    from autocompress.export.choose import int8_file_alternative

    def planned(number, acc, flash, layers, state="complete"):
        r = rec(number, acc, 2.0, state=state)
        r["cost"]["stm32f746"]["flash_kb"] = flash
        r["plan"] = {"layers": {"conv": layers}}
        return r

    int4 = [{"kind": "quant", "bits": 4}]
    chosen = planned(9, 0.93, 10.8, int4)
    records = [chosen, planned(4, 0.90, 9.1, [{"kind": "quant", "bits": 8}]),
               planned(5, 0.92, 9.5, [{"kind": "sparsity", "ratio": 0.5}]),     # dense in int8
               planned(6, 0.95, 12.0, [{"kind": "prune", "ratio": 0.5}]),       # over the limit
               planned(7, 0.99, 8.0, [], state="failed"),
               planned(8, 0.85, 7.0, [{"kind": "quant", "bits": 32}])]
    limits = [Budget(profile="stm32f746", metric="flash_kb", limit=11.0)]
    alt = int8_file_alternative(records, chosen, "stm32f746", limits)
    assert alt == {"trial": 4, "accuracy": 0.90, "latency_ms": 2.0, "flash_kb": 9.1,
                   "peak_sram_kb": 1.0}
    assert int8_file_alternative(records, records[1], "stm32f746", limits) is None  # fits


def test_an_accuracy_floor_met_exactly_is_met_despite_float32_records():
    """Accuracies are recorded as float32 means: 189/270 = 0.7 is 0.699999988079071 in
    records.jsonl, shown 70.00 % by the report; `--min-accuracy 0.7` skipped that trial and
    exported a slower one."""
    import numpy as np

    seventy = float(np.float32(189 / 270))
    assert seventy < 0.7
    front = [rec(0, 0.7074, 1.35), rec(1, seventy, 1.28), rec(2, 0.56, 1.04)]
    kw = {"trial": None, "device": "stm32f746", "budgets": []}
    assert choose_record(front, max_latency_ms=None, min_accuracy=0.7, **kw)["number"] == 1
    assert choose_record(front, max_latency_ms=1.3, min_accuracy=0.7, **kw)["number"] == 1
