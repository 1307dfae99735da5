from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autocompress.pareto import Objective
from autocompress.report.info import (
    PlotPoint,
    TrialsTable,
    axis_label,
    flatten_record,
    pareto_plot_infos,
)
from tests.report.sample import BUDGET, PNG_MAGIC, rec


def test_over_budget_baseline_is_still_plotted() -> None:
    recs = [rec(0, "complete", 0.90, {"mcu": 5.0}),
            rec(1, "complete", 0.99, {"mcu": 12.0}, baseline="uniform-int8")]  # trained, over
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()], [BUDGET])
    assert [p.number for p in info.front] == [0] and info.infeasible == ()
    assert [(b.name, b.x, b.y, b.on_front) for b in info.baselines] == [
        ("uniform-int8", 12.0, 0.99, False)]


def by_profile(infos: list[Any]) -> dict[str, Any]:
    return {i.profile: i for i in infos}


# ------------------------------------------------------------------ plot info


def test_one_info_per_profile_and_where_trials_land(records: list[dict[str, Any]]) -> None:
    infos = by_profile(pareto_plot_infos(records, [Objective.accuracy()], [BUDGET]))
    assert list(infos) == ["mcu", "phone"]
    mcu = infos["mcu"]
    assert [p.number for p in mcu.front] == [0, 5, 2]  # sorted by latency
    assert mcu.front[0] == PlotPoint(x=5.0, y=0.90, number=0, xerr=0.1)  # latency std
    assert [p.number for p in mcu.dominated] == [1]  # baseline 6 is dominated but listed below
    assert mcu.infeasible == (PlotPoint(x=14.0, y=None, number=3, xerr=0.1),)
    assert [(b.name, b.number, b.on_front, b.xerr) for b in mcu.baselines] == [
        ("uniform-int8", 5, True, 0.1), ("prune-50", 6, False, 0.1)]
    assert [(b.x, b.label) for b in mcu.budget_lines] == [(10.0, "budget 10 ms")]
    assert (mcu.n_total, mcu.n_failed, mcu.n_pruned) == (8, 1, 1)
    assert mcu.x_label == "latency (ms)" and mcu.y_label == "accuracy"
    # every trial counted once: 3 + 1 + 1 + 1 baseline off the front + 1 pruned + 1 failed
    assert ("3 on front, 1 dominated, 1 infeasible, 1 baselines off the front, 1 stopped "
            "early, 1 failed (8 trials)") in mcu.title

    phone = infos["phone"]
    assert [p.number for p in phone.front] == [1, 0, 5, 2]
    assert phone.budget_lines == ()  # the budget is for the mcu only


def test_flash_axis(records: list[dict[str, Any]]) -> None:
    (mcu, _) = pareto_plot_infos(records, (), [BUDGET], x_metric="flash_kb")
    assert mcu.x_label == "flash (KB)" and mcu.budget_lines == ()
    assert {p.xerr for p in mcu.front} == {None}  # the std is a latency std
    assert [p.x for p in mcu.front] == [10.0, 14.0, 18.0]


def test_zero_complete_trials_and_no_records() -> None:
    only_bad = [rec(0, "infeasible", None, {"mcu": 12.0}), rec(1, "failed", error="x")]
    (info,) = pareto_plot_infos(only_bad, (), [BUDGET])
    assert info.is_empty and info.profile == "mcu"
    assert [p.number for p in info.infeasible] == [0]
    (none,) = pareto_plot_infos([], (), ())
    assert none.profile == "" and none.is_empty and none.n_total == 0
    (from_budget,) = pareto_plot_infos([], (), [BUDGET])
    assert from_budget.profile == "mcu"


def test_axis_labels() -> None:
    assert axis_label("latency_ms") == "latency (ms)"
    assert axis_label("peak_sram_kb") == "peak SRAM (KB)"
    assert axis_label("accuracy") == "accuracy"


# ------------------------------------------------------------------ table


def test_layer_columns_go_by_number_not_by_letter() -> None:
    rec = {"number": 0, "state": "complete",
           "params": {f"quant.bits/blocks.{i}.conv1": 8 for i in (10, 2, 1)}}
    cols = [c for c in TrialsTable.from_records([rec]).columns if c.startswith("params/")]
    assert cols == ["params/quant.bits/blocks.1.conv1", "params/quant.bits/blocks.2.conv1",
                    "params/quant.bits/blocks.10.conv1"]


def test_trials_table_columns(records: list[dict[str, Any]]) -> None:
    table = TrialsTable.from_records(records)
    assert table.columns[:9] == ("number", "state", "baseline", "duration_s", "seed",
                                 "plan_id", "rung", "note", "error")
    assert table.columns[9:] == (
        "params/arch/width_mult", "params/quant/stem",
        "metrics/accuracy", "metrics/params",
        "cost/mcu/latency_ms", "cost/mcu/std_ms", "cost/mcu/flash_kb", "cost/mcu/peak_sram_kb",
        "cost/mcu/provenance",
        "cost/phone/latency_ms", "cost/phone/std_ms", "cost/phone/flash_kb",
        "cost/phone/peak_sram_kb", "cost/phone/provenance",
        "constraint/mcu.max_latency_ms")
    rows = table.as_dicts()
    assert rows[0]["cost/mcu/provenance"] == "analytic:12;lut:3"
    assert rows[4]["error"] == "RuntimeError: boom" and rows[4]["metrics/accuracy"] is None
    assert "plan" not in table.columns


def test_per_layer_cost_stays_out_of_the_table() -> None:
    r = rec(0, "complete", 0.9, {"mcu": 2.0})
    r["cost"]["mcu"]["layers"] = [{"fqn": "stem.conv", "latency_ms": 0.1}]
    r["cost"]["mcu"]["peak_at"] = "stem.conv"
    flat = flatten_record(r)
    assert "cost/mcu/layers" not in flat and flat["cost/mcu/peak_at"] == "stem.conv"


def test_flatten_nested_and_lists() -> None:
    flat = flatten_record({"number": 1, "metrics": {"per_class": {"a": 1.0}, "hist": [1, 2]}})
    assert flat["metrics/per_class/a"] == 1.0 and flat["metrics/hist"] == "[1, 2]"


def test_records_to_dataframe(records: list[dict[str, Any]]) -> None:
    pytest.importorskip("pandas")
    from autocompress.report.table import records_to_dataframe

    df = records_to_dataframe(records)
    assert tuple(df.columns) == TrialsTable.from_records(records).columns
    assert len(df) == len(records)
    assert df.loc[0, "metrics/accuracy"] == pytest.approx(0.90)


# ------------------------------------------------------------------ rendering / writing


def assert_png(path: Path) -> None:
    assert path.exists() and path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 10_000


def test_render_smoke(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    pytest.importorskip("matplotlib")
    from autocompress.report.plots import render_pareto

    for info in pareto_plot_infos(records, (), [BUDGET]):
        assert_png(render_pareto(info, tmp_path / "sub" / f"{info.profile}.png"))
    (empty,) = pareto_plot_infos([], (), ())
    assert_png(render_pareto(empty, tmp_path / "empty.png"))


def test_write_report(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    pytest.importorskip("matplotlib")
    from autocompress.report import write_report

    paths = write_report(tmp_path, records, [Objective.accuracy()], [BUDGET])
    names = sorted(p.relative_to(tmp_path).as_posix() for p in paths)
    assert names == ["report/hypervolume.png", "report/index.html",
                     "report/pareto_mcu.png", "report/pareto_mcu_flash.png",
                     "report/pareto_mcu_sram.png",
                     "report/pareto_phone.png", "report/pareto_phone_flash.png",
                     "report/pareto_phone_sram.png", "report/summary.md", "report/trials.csv"]
    for p in paths:
        if p.suffix == ".png":
            assert_png(p)
    with (tmp_path / "report" / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and rows[0]["params/quant/stem"] == "4"
    assert rows[1]["cost/mcu/latency_ms"] == "6.0" and rows[3]["metrics/accuracy"] == ""
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "8 trials: 5 complete, 1 infeasible, 1 failed, 1 pruned" in md
    # links planted in a run dir from someone else are replaced, not written through
    victims = {name: tmp_path / f"victim-{name}" for name in
               ("trials.csv", "summary.md", "pareto_mcu.png", "hypervolume.png")}
    for name, victim in victims.items():
        victim.write_text("mine")
        (tmp_path / "report" / name).unlink()
        (tmp_path / "report" / name).symlink_to(victim)
    write_report(tmp_path, records, [Objective.accuracy()], [BUDGET])
    assert all(v.read_text() == "mine" for v in victims.values())
    assert not any((tmp_path / "report" / name).is_symlink() for name in victims)
    assert "mcu: latency_ms ≤ 10 ms" in md
    assert "| 5 (uniform-int8) | 95.00 % | 7 | 14 | 18 | `plan5` |" in md
    assert "| 1 |" not in md.split("## phone")[0]  # dominated on the mcu
    assert "Infeasible proposals: 17% of 6 (first half 0%, second half 33%)" in md


def test_hypervolume_figure_has_the_infeasible_panel_with_budgets(tmp_path: Path,
                                                                  records: list[dict[str, Any]]
                                                                  ) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from autocompress.report.build import _infeasible_trace
    from autocompress.report.figures import render_hypervolume
    from autocompress.report.trace import hypervolume_infos

    hv = hypervolume_infos(records, (), [BUDGET])
    trace = _infeasible_trace(records, [BUDGET])
    assert trace is not None and trace[0] == [0, 1, 2, 3, 4, 7]   # baselines 5, 6 left out
    assert trace[1].cumulative[-1] == pytest.approx(1 / 6)
    assert _infeasible_trace(records, []) is None                     # no budget, no panel
    two = imread(render_hypervolume(hv, tmp_path / "two.png", infeasible=trace))
    one = imread(render_hypervolume(hv, tmp_path / "one.png"))
    assert two.shape[0] > 1.4 * one.shape[0] and two.shape[1] == one.shape[1]


def test_write_report_zero_trials(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from autocompress.report.build import write_report

    bad = [rec(0, "infeasible", None, {"mcu": 12.0}), rec(1, "failed", error="x")]
    paths = write_report(tmp_path / "a", bad, (), [BUDGET])
    assert sorted(p.name for p in paths) == [
        "hypervolume.png", "index.html", "pareto_mcu.png", "pareto_mcu_flash.png",
        "pareto_mcu_sram.png", "summary.md", "trials.csv"]  # no heatmap: no front
    assert "No feasible trials." in (tmp_path / "a" / "report" / "summary.md").read_text()
    paths = write_report(tmp_path / "b", [], (), ())
    assert sorted(p.name for p in paths) == ["index.html", "pareto.png", "summary.md",
                                             "trials.csv"]
    assert_png(tmp_path / "b" / "report" / "pareto.png")
    header = (tmp_path / "b" / "report" / "trials.csv").read_text().strip()
    assert header == "number,state,baseline,duration_s,seed,plan_id,rung,note,error"


def test_import_is_lean() -> None:
    code = ("import sys, autocompress.pareto, autocompress.report; "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'numpy') if m in sys.modules))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root)
    assert out.stdout.strip() == "[]"


def test_infos_accept_objects_with_to_dict(records: list[dict[str, Any]]) -> None:
    class TrialRecordLike:
        def __init__(self, d: dict[str, Any]) -> None:
            self.d = d

        def to_dict(self) -> dict[str, Any]:
            return self.d

    objs = [TrialRecordLike(r) for r in records]
    mcu = pareto_plot_infos(objs, (), [BUDGET])[0]
    assert [p.number for p in mcu.front] == [0, 5, 2]
    assert [b.on_front for b in mcu.baselines] == [True, False]
    assert not any(b.over_budget for b in mcu.baselines)
    assert len(TrialsTable.from_records(objs).rows) == len(records)


def test_summary_compares_each_baseline_with_the_best_front_point_not_slower() -> None:
    from autocompress.report.build import summary_markdown

    recs = [rec(0, "complete", 0.93, {"mcu": 2.0}), rec(1, "complete", 0.96, {"mcu": 4.0}),
            rec(2, "complete", 0.97, {"mcu": 12.0}, baseline="uniform-int8"),
            rec(3, "complete", 0.95, {"mcu": 3.0}, baseline="sparse-25")]
    md = summary_markdown(recs, [Objective.accuracy()], [BUDGET])
    # over the 10 ms budget: said, not quoted as a speed-up over a point the user could ship
    assert ("| uniform-int8 (over the latency budget) | 2 | 97.00 % | 12 ms | 1 (4 ms) | 96.00 % | -1.00 "
            "points | 3.00x |") in md
    # on the front: nothing as fast is more accurate (trial 0 is faster, but less accurate)
    assert "| sparse-25 | 3 | 95.00 % | 3 ms | itself (on the front) | 95.00 % | +0.00 points | 1.00x |" in md


def test_summary_says_the_runs_front_is_over_more_objectives_than_its_table() -> None:
    from autocompress.report.build import summary_markdown

    recs = [rec(0, "complete", 0.93, {"mcu": 2.0}), rec(1, "complete", 0.92, {"mcu": 3.0})]
    recs[1]["cost"]["mcu"]["flash_kb"] = 1.0            # slower, less accurate, but smaller
    flash = Objective(name="mcu.flash_kb", sense="min", path="cost.mcu.flash_kb")
    md = summary_markdown(recs, [Objective.accuracy(), Objective.latency("mcu"), flash], [])
    assert ("accuracy vs mcu latency alone (1 point); the run's front over accuracy, "
            "mcu.latency_ms, mcu.flash_kb has 2") in md
    assert "the run's front over" not in summary_markdown(recs, [Objective.accuracy()], [])


def test_the_page_says_what_accuracy_is_how_to_ship_and_what_stopped(tmp_path: Path) -> None:
    """A reader could not get from the report to a shipped model (no export command), the
    card left stopped trials out of its sum, and stop rungs and baseline notes were only in
    records.jsonl (walkthrough of the report)."""
    from autocompress.report.page import build_page
    from autocompress.report.provenance import Provenance

    records = [rec(0, "complete", 0.9, {"mcu": 4.0}, baseline="fp32", note="outside the space"),
               rec(1, "complete", 0.8, {"mcu": 2.0}), rec(2, "pruned", None, {"mcu": 3.0}, rung=1),
               rec(3, "infeasible", None, {"mcu": 12.0})]
    objectives = [Objective.accuracy(), Objective.latency("mcu")]
    page = build_page("demo", records, objectives, [BUDGET], {}, Provenance(run_name="demo"),
                      run_dir="runs/demo")
    assert "2 complete, 1 infeasible, 0 failed, 1 stopped early" in page
    assert "<code>autocompress export runs/demo --trial 0 --device mcu</code>" in page
    assert "accuracy = validation accuracy" in page and "kept off every front" in page
    assert "stopped at rung" in page and "outside the space" in page
    three = build_page("demo", records, [*objectives, Objective.latency("phone")], [BUDGET], {},
                       Provenance(run_name="demo"))
    assert "The run's front is over accuracy, mcu.latency_ms, phone.latency_ms" in three


def test_the_pages_export_commands_get_past_the_export_flags(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    """The page's "To ship a point" command (``--trial N --device P``) was refused by the
    export itself (exit 2: --device does not apply to --trial). Every command the page shows
    must get past the flag checks to the run dir (missing here)."""
    import html
    import re
    import shlex

    from autocompress.cli import main
    from autocompress.report.page import build_page
    from autocompress.report.provenance import Provenance

    records = [rec(0, "complete", 0.9, {"mcu": 4.0, "phone": 1.0}),
               rec(1, "complete", 0.8, {"mcu": 2.0, "phone": 0.5})]
    objectives = [Objective.accuracy(), Objective.latency("mcu"), Objective.latency("phone")]
    page = build_page("demo", records, objectives, [], {}, Provenance(run_name="demo"),
                      run_dir="runs/demo")
    commands = re.findall(r"<code>(autocompress export [^<]*)</code>", page)
    assert len(commands) == 4                    # two per device
    missing = str(tmp_path / "missing")
    for command in commands:
        argv = [missing if a == "runs/demo" else "5" if a == "X" else a
                for a in shlex.split(html.unescape(command))[1:]]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "missing" in err and "--device" not in err and "--trial" not in err, err


def test_early_stopped_trials_are_drawn_at_their_rung_accuracy(tmp_path: Path) -> None:
    """Stopped trials were only counted in the title: no marker, no legend entry."""
    from autocompress.report.info import pareto_plot_infos
    from autocompress.report.plots import render_pareto

    records = [rec(0, "complete", 0.9, {"mcu": 4.0}), rec(1, "complete", 0.8, {"mcu": 2.0}),
               rec(2, "pruned", None, {"mcu": 3.0}, rung=1),
               rec(3, "pruned", None, {"mcu": 5.0}, rung=2)]
    records[2]["metrics"] = {"rung_accuracy/1": 0.4}
    records[3]["metrics"] = {"rung_accuracy/1": 0.3, "rung_accuracy/2": 0.5}
    (info,) = pareto_plot_infos(records, [], [BUDGET])
    assert [(p.number, p.x, p.y) for p in info.stopped] == [(2, 3.0, 0.4), (3, 5.0, 0.5)]
    assert info.n_pruned == 2 and "2 stopped early" in info.title
    fig_path = render_pareto(info, tmp_path / "p.png")
    assert fig_path.read_bytes().startswith(PNG_MAGIC)
    from autocompress.report.plots import pareto_figure

    labels = pareto_figure(info).axes[0].get_legend_handles_labels()[1]
    assert "stopped early (2; accuracy at its rung)" in labels


def test_devices_follow_the_runs_order_not_the_records_sorted_keys() -> None:
    """Records store cost with sorted keys, so pixel4 came before the first profile."""
    from autocompress.report.info import profiles_in

    records = [rec(0, "complete", 0.9, {"aphone": 1.0, "mcu": 4.0})]     # sorted, as stored
    assert profiles_in(records) == ["aphone", "mcu"]
    assert profiles_in(records, [BUDGET]) == ["mcu", "aphone"]
    objectives = [Objective.accuracy(), Objective(name="zz.latency_ms", sense="min",
                                                  path="cost.zz.latency_ms")]
    assert profiles_in(records, [BUDGET], objectives) == ["zz", "mcu", "aphone"]


def test_heatmap_rows_name_the_device_of_each_latency_in_a_two_device_run() -> None:
    from autocompress.report.layers import _row_label

    r = rec(4, "complete", 0.95, {"mcu": 1.47, "phone": 0.183})
    two = [Objective.accuracy(), Objective.latency("mcu"), Objective.latency("phone")]
    assert _row_label(r, two) == "#4  95.0%  mcu 1.47 ms  phone 0.183 ms"   # "1.47 ms 0.183 ms"
    assert _row_label(r, two[:2]) == "#4  95.0%  1.47 ms"


def test_a_report_file_or_a_records_folder_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    from autocompress.errors import RunDirError
    from autocompress.report import write_report
    from autocompress.search.records import read_records

    (tmp_path / "report").write_text("")
    with pytest.raises(RunDirError, match="report is a file, not a folder"):
        write_report(tmp_path, [], [Objective.accuracy()], [])
    (tmp_path / "records.jsonl").mkdir()
    with pytest.raises(RunDirError, match=r"records\.jsonl is a folder"):
        read_records(tmp_path / "records.jsonl")


def test_summary_says_the_runs_front_is_another_when_its_cost_objective_is_flash() -> None:
    """objectives [accuracy, <device>.flash_kb]: the summary's and page's front table showed
    the accuracy-vs-latency front as the run's, without a word (a run front point missing,
    a point dominated on the run's objectives listed)."""
    from autocompress.report.build import summary_markdown
    from autocompress.report.page import _lead

    recs = [rec(0, "complete", 0.93, {"mcu": 2.0}), rec(1, "complete", 0.92, {"mcu": 3.0})]
    recs[1]["cost"]["mcu"]["flash_kb"] = 1.0            # slower, less accurate, but smaller
    flash = Objective(name="mcu.flash_kb", sense="min", path="cost.mcu.flash_kb")
    md = summary_markdown(recs, [Objective.accuracy(), flash], [])
    assert ("accuracy vs mcu latency alone (1 point); the run's front over accuracy, "
            "mcu.flash_kb has 2") in md
    assert "The run's front is over accuracy, mcu.flash_kb" in _lead(
        [Objective.accuracy(), flash], [], Objective.accuracy())
    assert "the run's front over" not in summary_markdown(
        recs, [Objective.accuracy(), Objective.latency("mcu")], [])


def test_the_hypervolume_figure_and_caption_follow_a_flash_objective(tmp_path: Path) -> None:
    """The hypervolume plot stayed accuracy vs latency on a run searched for Flash."""
    pytest.importorskip("matplotlib")
    from autocompress.report.figures import render_hypervolume
    from autocompress.report.page import _hv_caption
    from autocompress.report.trace import hypervolume_infos

    recs = [rec(0, "complete", 0.93, {"mcu": 2.0}), rec(1, "complete", 0.92, {"mcu": 3.0})]
    recs[1]["cost"]["mcu"]["flash_kb"] = 1.0            # slower, less accurate, but smaller
    flash = Objective(name="mcu.flash_kb", sense="min", path="cost.mcu.flash_kb")
    (info,) = hypervolume_infos(recs, [Objective.accuracy(), flash], [])
    assert info.front_sizes[-1] == 2 and info.name == "accuracy vs mcu.flash_kb"
    assert render_hypervolume([info], tmp_path / "hv.png").stat().st_size > 0
    assert "dominated by the run's front over its objectives" in _hv_caption(
        [Objective.accuracy(), flash])
    assert "each device's front of accuracy vs latency" in _hv_caption(
        [Objective.accuracy(), Objective.latency("mcu")])

