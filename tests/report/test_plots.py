"""Pareto plot styling and label placement: the style mapping and placement functions, and the
artists of a built figure (never pixels)."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from autocompress.pareto import Budget, Objective
from autocompress.report.info import pareto_plot_infos
from autocompress.report.labels import place_labels
from autocompress.report.plots import budget_label_side, pareto_figure
from autocompress.report.styles import BASELINE_STYLES, baseline_order, baseline_style
from tests.report.sample import BUDGET, rec

BUILT_IN = ["uniform-int8", "fp32", "uniform-int4", "sparse-25", "sparse-50"]


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def box(bb: Any) -> tuple[float, float, float, float]:
    return (bb.x0, bb.y0, bb.x1, bb.y1)


def legend_styles(fig: Any) -> dict[str, tuple[str, tuple[float, ...]]]:
    """legend label -> (marker path vertices as a key, face colour) of each baseline."""
    ax = fig.axes[0]
    out = {}
    for coll in ax.collections:
        label = coll.get_label()
        if label.startswith("baseline: "):
            verts = tuple(round(v, 3) for v in coll.get_paths()[0].vertices.ravel())
            out[label.removeprefix("baseline: ")] = (str(hash(verts)),
                                                     tuple(coll.get_facecolor()[0]))
    return out


# --------------------------------------------------------------- baseline styles


def test_each_built_in_baseline_has_its_own_fixed_style() -> None:
    styles = [baseline_style(n) for n in BUILT_IN]
    assert len(set(styles)) == len(BUILT_IN)
    assert {m for m, _ in styles}.isdisjoint({"o", "x"})   # front/dominated and infeasible
    assert set(BASELINE_STYLES) == set(BUILT_IN)


def test_unknown_baseline_style_is_stable_across_processes() -> None:
    code = ("from autocompress.report.styles import baseline_style; "
            "print(baseline_style('my-int6'))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert outs == {f"{baseline_style('my-int6')}\n"}


def test_baseline_order_is_by_name_not_by_x() -> None:
    assert baseline_order(["sparse-50", "zeta", "fp32", "alpha", "uniform-int8"]) == [
        "fp32", "uniform-int8", "sparse-50", "alpha", "zeta"]


def test_a_baseline_looks_the_same_in_every_plot_of_a_run() -> None:
    """The walkthrough: uniform-int4 was a pink triangle on latency and a green square on
    flash, because the style followed the baseline's rank along x."""
    recs = [rec(0, "complete", 0.90, {"mcu": 5.0}),
            rec(1, "complete", 0.95, {"mcu": 7.0}, baseline="uniform-int4"),
            rec(2, "complete", 0.96, {"mcu": 3.0}, baseline="fp32"),
            rec(3, "complete", 0.93, {"mcu": 4.0}, baseline="uniform-int8")]
    recs[2]["cost"]["mcu"]["flash_kb"] = 90.0          # fp32: fast here, but the biggest
    (lat,) = pareto_plot_infos(recs, [Objective.accuracy()])
    (flash,) = pareto_plot_infos(recs, [Objective.accuracy()], x_metric="flash_kb")
    assert [b.name for b in lat.baselines] != [b.name for b in flash.baselines]  # x order differs
    a, b = legend_styles(pareto_figure(lat)), legend_styles(pareto_figure(flash))
    assert a == b and len(set(a.values())) == 3
    assert list(a) == ["fp32", "uniform-int8", "uniform-int4"]   # legend order by name


def test_baseline_names_go_to_the_legend_not_beside_the_markers() -> None:
    """fp32 and uniform-int8 at about the same latency printed as "fpu32iform-int8"."""
    recs = [rec(0, "complete", 0.90, {"mcu": 5.0}),
            rec(1, "complete", 0.978, {"mcu": 10.2}, baseline="fp32"),
            rec(2, "complete", 0.978, {"mcu": 10.3}, baseline="uniform-int8")]
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()])
    ax = pareto_figure(info).axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert not any("fp32" in t or "uniform-int8" in t for t in texts)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "baseline: fp32 (over budget)" in legend                   # its 10.2 ms > 10
    assert "baseline: uniform-int8 (over budget)" in legend
    (fits,) = pareto_plot_infos([rec(1, "complete", 0.9, {"mcu": 9.0}, baseline="fp32")], [])
    assert "baseline: fp32" in [t.get_text() for t in
                                pareto_figure(fits).axes[0].get_legend().get_texts()]


# --------------------------------------------------------------------- budget label


def test_budget_label_stays_inside_the_axes() -> None:
    """The SRAM plot's "budget 64 KB" ran past the right edge (line near the x limit)."""
    assert budget_label_side(0.1) == "left" and budget_label_side(0.97) == "right"
    recs = [rec(0, "complete", 0.90, {"mcu": 1.0}), rec(1, "complete", 0.95, {"mcu": 2.0})]
    budget = Budget(profile="mcu", metric="latency_ms", limit=2.9)   # right of the data
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()], [budget])
    fig = pareto_figure(info)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    (label,) = [t for t in ax.texts if "budget" in t.get_text()]
    inner, outer = box(label.get_window_extent(renderer)), box(ax.get_window_extent(renderer))
    assert outer[0] <= inner[0] and inner[2] <= outer[2] + 0.5


def test_the_front_step_line_stops_at_the_budget_line() -> None:
    """Past the budget is the shaded over-budget area: the front's 'best so far' line ended
    at the axes edge, through it."""
    recs = [rec(0, "complete", 0.90, {"mcu": 1.0}), rec(1, "complete", 0.95, {"mcu": 2.0}),
            rec(2, "complete", 0.97, {"mcu": 30.0})]                 # over the 10 ms budget
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()], [BUDGET])
    ax = pareto_figure(info).axes[0]
    (step,) = [line for line in ax.lines if line.get_drawstyle() == "steps-post"]
    assert max(step.get_xdata()) == BUDGET.limit < ax.get_xlim()[1]


def test_far_proposals_and_limits_are_named_at_the_edge_not_stretching_the_axis() -> None:
    """One untrained 6.4 ms proposal put 400 trained points (0.4-0.85 ms) into the left
    tenth of the axis; a 320 KB SRAM limit did the same to points at 3 KB."""
    recs = [rec(0, "complete", 0.90, {"mcu": 0.4}), rec(1, "complete", 0.95, {"mcu": 0.85}),
            rec(2, "infeasible", None, {"mcu": 6.4}), rec(3, "infeasible", None, {"mcu": 0.9})]
    far = Budget(profile="mcu", metric="latency_ms", limit=320.0)
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()], [far])
    ax = pareto_figure(info).axes[0]
    lo, hi = ax.get_xlim()
    assert 0.85 < hi < 1.5 and lo < 0.4
    (note,) = [t.get_text() for t in ax.texts if t.get_text().startswith("off the plot")]
    assert "1 infeasible proposal at 6.4-6.4" in note and "320" in note
    rug = [c for c in ax.collections if c.get_label().startswith("infeasible, not trained")]
    assert rug[0].get_label() == "infeasible, not trained (2)"
    assert [x for x, _ in rug[0].get_offsets()] == [0.9]           # only the one in range
    assert not [t for t in ax.texts if t.get_text().strip().startswith("budget")]


def test_a_budget_far_off_a_narrow_axis_renders(tmp_path) -> None:
    """An 8 MB Flash limit and points at 11.3-11.6 KB: its label, drawn 23,000 axis widths
    away, crashed the whole report (FreeType 'raster overflow'; here from about 1e5)."""
    recs = [rec(0, "complete", 0.90, {"mcu": 11.28}), rec(1, "complete", 0.95, {"mcu": 11.63})]
    far = Budget(profile="mcu", metric="latency_ms", limit=1e5)
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()], [far])
    fig = pareto_figure(info)
    fig.savefig(tmp_path / "far.png")


def test_front_points_at_one_spot_share_one_label() -> None:
    """25 front points at 3 KB and the same accuracy stacked 25 labels into a clump."""
    recs = [rec(n, "complete", 0.95, {"mcu": 2.0}) for n in range(4)]
    recs.append(rec(4, "complete", 0.90, {"mcu": 1.0}))
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()], [BUDGET])
    ax = pareto_figure(info).axes[0]
    assert sorted(t.get_text() for t in ax.texts if t.get_text().startswith("#")) == \
        ["#0 +3", "#4"]


# ------------------------------------------------------------------- front labels


def test_place_labels_avoids_obstacles_bounds_and_each_other() -> None:
    anchors = [(50.0, 50.0), (52.0, 51.0), (54.0, 49.0)]       # three points nearly on top
    sizes = [(15.0, 8.0)] * 3
    obstacles = [(30.0, 55.0, 48.0, 70.0)]                       # blocks the first choice
    bounds = (0.0, 0.0, 200.0, 200.0)
    offsets = place_labels(anchors, sizes, obstacles, bounds)
    boxes = [(x + dx, y + dy, x + dx + w, y + dy + h)
             for (x, y), (dx, dy), (w, h) in zip(anchors, offsets, sizes, strict=True)]
    for i, bx in enumerate(boxes):
        assert not overlap(bx, obstacles[0])
        assert bounds[0] <= bx[0] and bx[2] <= bounds[2] and bounds[1] <= bx[1]
        assert all(not overlap(bx, other) for other in boxes[i + 1:])
    assert place_labels(anchors, sizes, obstacles, bounds) == offsets    # deterministic


def test_place_labels_keeps_a_label_inside_bounds_at_the_left_edge() -> None:
    (dx, _), = place_labels([(2.0, 50.0)], [(15.0, 8.0)], (), (0.0, 0.0, 100.0, 100.0))
    assert 2.0 + dx >= 0.0


# the walkthrough's flash plot: (number, flash_kb, accuracy); front 18, 5, 15, 19
WALK_FLASH = [(18, 4.0, 0.9556), (5, 9.0, 0.9741), (15, 9.5, 0.9778), (19, 10.4, 0.9852),
              (20, 4.4, 0.9222), (9, 5.2, 0.8889), (7, 5.2, 0.9444), (16, 5.5, 0.9556),
              (23, 6.1, 0.9259), (12, 7.9, 0.9519), (14, 8.9, 0.9519), (21, 9.5, 0.9593),
              (22, 9.7, 0.9704), (11, 9.8, 0.9333), (13, 9.8, 0.9481), (6, 10.7, 0.9667),
              (10, 10.9, 0.9815), (24, 11.5, 0.9556), (17, 18.0, 0.9852)]


def test_front_labels_do_not_overlap_each_other_or_markers() -> None:
    """The flash plot put "#15" below-right of its point, beside another dot."""
    recs = []
    for number, flash, acc in WALK_FLASH:
        r = rec(number, "complete", acc, {"mcu": 1.0})
        r["cost"]["mcu"]["flash_kb"] = flash
        recs.append(r)
    fp32 = rec(25, "complete", 0.978, {"mcu": 1.0}, baseline="fp32")
    fp32["cost"]["mcu"]["flash_kb"] = 163.0
    budget = Budget(profile="mcu", metric="flash_kb", limit=64.0)
    (info,) = pareto_plot_infos([*recs, fp32], [Objective.accuracy()], [budget],
                                x_metric="flash_kb")
    assert [p.number for p in info.front] == [18, 5, 15, 19]
    fig = pareto_figure(info)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text().startswith("#")]
    assert len(labels) == 4
    boxes = [box(t.get_window_extent(renderer)) for t in labels]
    for i, bx in enumerate(boxes):
        assert all(not overlap(bx, other) for other in boxes[i + 1:])
    r = 3.0 * fig.dpi / 72.0                                  # marker radius, px (at least)
    for p in (*info.front, *info.dominated):
        x, y = ax.transData.transform((p.x, p.y))
        hit = [t.get_text() for t, bx in zip(labels, boxes, strict=True)
               if overlap(bx, (x - r, y - r, x + r, y + r))]
        assert not hit, (p.number, hit)
    outer = box(ax.get_window_extent(renderer))
    assert all(outer[0] <= bx[0] and bx[2] <= outer[2] for bx in boxes)


def test_render_still_writes_the_png(tmp_path: Any) -> None:
    from autocompress.report.plots import render_pareto

    recs = [rec(0, "complete", 0.9, {"mcu": 5.0}),
            rec(1, "complete", 0.95, {"mcu": 7.0}, baseline="uniform-int8")]
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()], [BUDGET])
    assert render_pareto(info, tmp_path / "p.png").stat().st_size > 0


def test_a_long_title_wraps_inside_the_figure() -> None:
    """With baselines off the front and stopped trials the counts line ran past the edge."""
    recs = [rec(0, "complete", 0.90, {"mcu": 1.0}), rec(1, "complete", 0.95, {"mcu": 2.0}),
            *(rec(n, "complete", 0.80, {"mcu": 3.0}, baseline=f"b{n}") for n in range(2, 7)),
            *(rec(n, "pruned", None, {"mcu": 1.5}) for n in range(7, 10)),
            *(rec(n, "failed", None, {}) for n in range(10, 12))]
    (info,) = pareto_plot_infos(recs, [Objective.accuracy()], [BUDGET])
    fig = pareto_figure(info)
    fig.draw_without_rendering()
    title = fig.axes[0].title
    assert title.get_text().count("\n") >= 2 and "(12 trials)" in title.get_text()
    inner = box(title.get_window_extent(fig.canvas.get_renderer()))
    assert 0 <= inner[0] and inner[2] <= fig.bbox.width


def test_a_baseline_over_another_devices_budget_says_which() -> None:
    """On the Orin plot the fp32 baseline, at 0.372 ms inside Orin's 0.5 ms line, was
    labelled "(over budget)": it broke pixel4's budget."""
    recs = [rec(0, "complete", 0.90, {"orin": 0.2, "pixel4": 0.2}),
            rec(1, "complete", 0.95, {"orin": 0.372, "pixel4": 0.6}, baseline="fp32")]
    budgets = [Budget(profile="orin", metric="latency_ms", limit=0.5),
               Budget(profile="pixel4", metric="latency_ms", limit=0.35)]
    orin, pixel4 = pareto_plot_infos(recs, [Objective.accuracy()], budgets)
    legends = {info.profile: [t.get_text() for t in
                              pareto_figure(info).axes[0].get_legend().get_texts()]
               for info in (orin, pixel4)}
    assert "baseline: fp32 (over the pixel4 latency budget)" in legends["orin"]
    assert "baseline: fp32 (over the latency budget)" in legends["pixel4"]


def test_heatmap_panel_names_do_not_run_into_each_other(tmp_path, monkeypatch) -> None:
    """Each panel's name was its y label, longer than a one- or two-row panel is tall:
    "weight bits" and "channels pruned" overlapped."""
    import autocompress.report.figures as figures
    from autocompress.report.layers import layer_heatmap_info
    from tests.report.sample import planned

    prune = {"kind": "prune", "ratio": 0.5, "criterion": "l1"}
    quant = {"kind": "quant", "bits": 4}
    info = layer_heatmap_info([planned(0, "complete", 0.9, 2.0,
                                       {"a": [prune, quant], "b": [quant]})])
    kept = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, dpi: kept.setdefault("f", fig))
    figures.render_heatmap(info, tmp_path / "h.png")
    fig = kept["f"]
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    panels = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in panels] == [p.label for p in info.panels]
    boxes = [ax._left_title.get_window_extent(renderer) for ax in panels]
    for k, box in enumerate(boxes):
        for j, other in enumerate(panels):
            assert j == k or not box.overlaps(other.get_window_extent(renderer))
    # the figure's title sat on the first panel's name (both were axes[0]'s titles)
    assert fig._suptitle is not None and "layer by layer" in fig._suptitle.get_text()
    assert not fig._suptitle.get_window_extent(renderer).overlaps(boxes[0])


def test_a_long_legend_goes_beside_the_plot_not_over_the_front() -> None:
    """Nine entries in the middle of a phone plot covered the front's vertical step; a
    short legend stays inside, where 'best' puts it."""
    names = ["fp32", "uniform-int8", "uniform-int4", "sparse-25", "sparse-50"]
    recs = [rec(0, "complete", 0.90, {"mcu": 5.0}), rec(1, "complete", 0.50, {"mcu": 5.0}),
            rec(2, "complete", 0.40, {"mcu": 9.0}),
            *(rec(3 + i, "complete", 0.8 - 0.05 * i, {"mcu": 6.0 + i}, baseline=n)
              for i, n in enumerate(names))]
    for records, outside in ((recs, True), (recs[:3], False)):
        (info,) = pareto_plot_infos(records, [Objective.accuracy()])
        fig = pareto_figure(info)
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent(renderer)
        assert bool(legend.x0 >= ax.get_window_extent(renderer).x1) is outside, len(records)
