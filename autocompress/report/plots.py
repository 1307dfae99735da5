"""matplotlib renderers for the report's info objects (matplotlib is imported on first use).

Example:
    >>> from autocompress.report.info import pareto_plot_infos
    >>> recs = [{"number": 0, "state": "complete", "metrics": {"accuracy": 0.9},
    ...          "cost": {"mcu": {"latency_ms": 5.0}}}]
    >>> import tempfile, pathlib
    >>> out = render_pareto(pareto_plot_infos(recs)[0], pathlib.Path(tempfile.mkdtemp()) / "p.png")
    >>> out.suffix
    '.png'
"""
from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.report.canvas import new_figure, save_figure
from autocompress.report.info import ParetoPlotInfo, PlotPoint
from autocompress.report.labels import Box, place_labels
from autocompress.report.styles import baseline_order, baseline_style

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FRONT_COLOR = "#1f5fbf"
DOMINATED_COLOR = "#9a9a9a"
STOPPED_COLOR = "#c77c02"       # early-stopped trials (hollow)
INFEASIBLE_COLOR = "#d62728"
BUDGET_COLOR = "#8b0000"


LEGEND_INSIDE = 5     # legend entries a Pareto plot keeps inside its axes; more go beside it


def render_pareto(info: ParetoPlotInfo, path: Path | str, *, dpi: int = 150,
                  size: tuple[float, float] = (8.0, 5.5)) -> Path:
    """Draw one device's trade-off to ``path`` (PNG, or any format matplotlib knows by suffix):
    dominated trials grey, infeasible red x (untrained ones along the bottom edge), the front
    as a step line with trial numbers, baselines as markers named in the legend, budgets
    dashed."""
    return save_figure(pareto_figure(info, size=size), path, dpi)


def pareto_figure(info: ParetoPlotInfo, *, size: tuple[float, float] = (8.0, 5.5)) -> Any:
    """The matplotlib Figure :func:`render_pareto` saves (one Axes)."""
    from matplotlib.ticker import PercentFormatter

    fig = new_figure(*size)
    ax = fig.add_subplot()
    ys = [p.y for p in (*info.front, *info.dominated, *info.infeasible, *info.stopped)
          if p.y is not None]
    _set_xlim(ax, info)
    budget_texts = _draw_budgets(ax, info)
    labels = _draw_front(ax, info)  # legend follows drawing order: front first
    _draw_baselines(ax, info)
    _draw_scatter(ax, info)
    _draw_errorbars(ax, info)
    _note_off_plot(ax, info)
    ax.margins(y=0.12)  # headroom for the budget label above the front
    if info.is_empty:
        ax.text(0.5, 0.5, "no feasible trials", transform=ax.transAxes, ha="center",
                va="center", fontsize=16, color="#555555",
                bbox={"facecolor": "white", "edgecolor": "#cccccc", "pad": 6.0})
    if not ys and info.y_label == "accuracy":
        ax.set_ylim(0.0, 1.0)  # nothing trained: show the full range rather than ±0.06
    if info.y_label == "accuracy" and all(0.0 <= y <= 1.0 for y in ys):
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
    ax.set_xlabel(info.x_label)
    ax.set_ylabel(info.y_label)
    head, _, counts = info.title.partition(" — ")
    ax.set_title("\n".join([head, *textwrap.wrap(counts, int(9.5 * size[0]))]),
                 fontsize=11)                                # ~9.5 characters per inch at 11 pt
    ax.grid(True, alpha=0.3)
    entries = len(ax.get_legend_handles_labels()[0])
    if entries > LEGEND_INSIDE:   # wherever it went inside, it covered a front (a tester's
        fig.set_figwidth(size[0] + 3.2)   # 9 entries over a front's vertical step)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  fontsize=9, frameon=False)
    elif entries:
        # Above-left of a (max y, min x) front is empty by definition: room for the legend.
        ax.legend(loc="best" if ys else "upper right", fontsize=9, framealpha=0.9)
    _place_front_labels(fig, ax, info, labels, budget_texts)
    return fig


def _draw_errorbars(ax: Axes, info: ParetoPlotInfo) -> None:
    """Latency ±1 std as horizontal bars behind the markers (one legend entry)."""
    groups = ((info.front, FRONT_COLOR), (info.dominated, DOMINATED_COLOR),
              (info.infeasible, INFEASIBLE_COLOR), (info.baselines, "#444444"))
    labelled = False
    for pts, color in groups:
        bars = [p for p in pts if p.xerr and p.y is not None]
        if not bars:
            continue
        ax.errorbar([p.x for p in bars], [float(p.y or 0.0) for p in bars],
                    xerr=[float(p.xerr or 0.0) for p in bars], fmt="none", ecolor=color,
                    elinewidth=1.0, capsize=2.5, alpha=0.45, zorder=1.5,
                    label=None if labelled else "latency ±1 std")
        labelled = True


def _draw_scatter(ax: Axes, info: ParetoPlotInfo) -> None:
    if info.dominated:
        ax.scatter([p.x for p in info.dominated], [float(p.y or 0.0) for p in info.dominated], s=22,
                   color=DOMINATED_COLOR, alpha=0.7, label=f"dominated ({len(info.dominated)})",
                   zorder=2)
    if info.stopped:      # their accuracy after fewer epochs: hollow, below the others
        ax.scatter([p.x for p in info.stopped], [float(p.y or 0.0) for p in info.stopped], s=26,
                   facecolors="none", edgecolors=STOPPED_COLOR, linewidths=1.2, zorder=2,
                   label=f"stopped early ({len(info.stopped)}; accuracy at its rung)")
    trained = [p for p in info.infeasible if p.y is not None]
    untrained = [p for p in info.infeasible if p.y is None]
    if trained:
        ax.scatter([p.x for p in trained], [float(p.y or 0.0) for p in trained], marker="x", s=36,
                   color=INFEASIBLE_COLOR, label=f"over budget ({len(trained)})", zorder=2)
    if untrained:
        # Untrained trials have no accuracy: a rug along the bottom edge, x in data units
        # (those past the x range are named at the edge, not drawn in the margin)
        lo, hi = ax.get_xlim()
        shown = [p for p in untrained if lo <= p.x <= hi]
        ax.scatter([p.x for p in shown], [0.03] * len(shown), marker="x", s=36,
                   color=INFEASIBLE_COLOR, alpha=0.8, transform=ax.get_xaxis_transform(),
                   label=f"infeasible, not trained ({len(untrained)})", zorder=2, clip_on=False)


def _draw_front(ax: Axes, info: ParetoPlotInfo) -> list[tuple[Any, PlotPoint]]:
    """The step line and markers; returns the ``#number`` annotations (placed later by
    :func:`_place_front_labels`, once the layout is known)."""
    pts = [p for p in info.front if p.y is not None]
    if not pts:
        return []
    xs, ys = [p.x for p in pts], [float(p.y) for p in pts if p.y is not None]
    right = _step_end(info, max(ax.get_xlim()[1], xs[-1]))
    ax.step([*xs, right], [*ys, ys[-1]], where="post", color=FRONT_COLOR, linewidth=1.6,
            alpha=0.85, zorder=3)
    ax.scatter(xs, ys, s=55, color=FRONT_COLOR, edgecolors="white", linewidths=0.8,
               label=f"front of {info.y_label} vs {info.x_name} ({len(pts)})", zorder=4)
    spots: dict[tuple[float, float], list[PlotPoint]] = {}   # points at one spot: one label
    for p in pts:
        if p.number is not None:
            spots.setdefault((p.x, float(p.y or 0.0)), []).append(p)
    return [(ax.annotate(f"#{same[0].number}" + (f" +{len(same) - 1}" if len(same) > 1 else ""),
                         xy, xytext=(5, -11), textcoords="offset points", fontsize=8,
                         color=FRONT_COLOR, zorder=5, annotation_clip=True), same[0])
            for xy, same in spots.items()]


def _step_end(info: ParetoPlotInfo, edge: float) -> float:
    """Where the front's step line ends: the best accuracy holds for any larger latency, up
    to the first budget line past the last front point (else ``edge``)."""
    last = max((p.x for p in info.front if p.y is not None), default=edge)
    return min((b.x for b in info.budget_lines if b.x >= last), default=edge)


def _draw_baselines(ax: Axes, info: ParetoPlotInfo) -> None:
    """Baselines as markers named in the legend only (text beside the markers collides when
    two baselines cost about the same, e.g. fp32 and uniform-int8 on latency)."""
    by_name: dict[str, list[Any]] = {}
    for b in info.baselines:
        by_name.setdefault(b.name, []).append(b)
    for name in baseline_order(list(by_name)):
        marker, color = baseline_style(name)
        pts = by_name[name]
        over = pts[0].over_text(info.profile) if all(b.over_budget for b in pts) else ""
        ax.scatter([b.x for b in pts], [b.y for b in pts], marker=marker, s=90, color=color,
                   edgecolors="black", linewidths=0.7, label=f"baseline: {name}{over}", zorder=6)


def budget_label_side(frac: float) -> str:
    """``ha`` of a budget line's label at axes fraction ``frac``: right of the line, or left
    of it when the line sits in the right part of the axes (so the text stays inside).

    >>> budget_label_side(0.3), budget_label_side(0.95)
    ('left', 'right')
    """
    return "left" if frac <= 0.6 else "right"


def _draw_budgets(ax: Axes, info: ParetoPlotInfo) -> list[Any]:
    (lo, hi), texts = ax.get_xlim(), []
    for line in info.budget_lines:
        ax.axvline(line.x, color=BUDGET_COLOR, linestyle="--", linewidth=1.3, zorder=1)
        ax.axvspan(line.x, max(line.x * 10.0, line.x + 1.0), color=INFEASIBLE_COLOR,
                   alpha=0.05, zorder=0)
        if not lo <= line.x <= hi:   # named off the plot; drawn far away it crashed FreeType
            continue
        side = budget_label_side((line.x - lo) / (hi - lo) if hi > lo else 0.0)
        texts.append(ax.text(line.x, 0.985, f" {line.label} ", transform=ax.get_xaxis_transform(),
                             color=BUDGET_COLOR, fontsize=9, ha=side, va="top", zorder=5,
                             clip_on=True, bbox={"facecolor": "white", "edgecolor": "none",
                                                 "alpha": 0.8, "pad": 1.0}))
    return texts


def _set_xlim(ax: Axes, info: ParetoPlotInfo) -> None:
    """x range: the trained points with their error bars, then the budget lines and the
    untrained proposals that lie within one more span of them (one 6.4 ms proposal squeezed
    400 trained points into 0.4-0.85 ms of an 8 ms axis; a 320 KB SRAM limit, points at
    3 KB), plus 6% each side. What lies beyond is named at the edge (:func:`_note_off_plot`)."""
    pts = (*info.front, *info.dominated, *info.infeasible, *info.baselines, *info.stopped)
    core = [p.x + s * (p.xerr or 0.0) for p in pts if p.y is not None for s in (-1.0, 1.0)]
    extra = [p.x for p in pts if p.y is None] + [line.x for line in info.budget_lines]
    xs = core or extra
    if core:
        lo, hi = min(core), max(core)
        reach = max(hi - lo, 0.25 * max(abs(lo), abs(hi)))
        xs += [x for x in extra if lo - reach <= x <= hi + reach]
    if xs:
        lo, hi = min(xs), max(xs)
        pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1.0)
        ax.set_xlim(lo - pad, hi + pad)


def _note_off_plot(ax: Axes, info: ParetoPlotInfo) -> None:
    """Name the untrained proposals and budget lines left outside the x range."""
    lo, hi = ax.get_xlim()
    rug = [p.x for p in info.infeasible if p.y is None and not lo <= p.x <= hi]
    lines = [b.label.strip() for b in info.budget_lines if not lo <= b.x <= hi]
    parts = ([f"{len(rug)} infeasible proposal{'s' * (len(rug) != 1)} at "
              f"{min(rug):.3g}-{max(rug):.3g}"] if rug else []) + lines
    if parts:
        ax.text(0.995, 0.085, "off the plot: " + "; ".join(parts), transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7.5, color=INFEASIBLE_COLOR, zorder=6,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})


def _place_front_labels(fig: Any, ax: Axes, info: ParetoPlotInfo,
                        labels: list[tuple[Any, PlotPoint]], texts: list[Any]) -> None:
    """Move each ``#number`` label off the markers, error bars, front line, legend, budget
    labels and each other (in points, so the offsets hold at any dpi)."""
    if not labels:
        return
    fig.draw_without_rendering()  # constrained layout and legend "best" are settled at draw
    renderer = fig.canvas.get_renderer()
    to_pt = 72.0 / fig.dpi
    trans = ax.transData

    def disp(x: float, y: float) -> tuple[float, float]:
        px, py = trans.transform((x, y))
        return float(px) * to_pt, float(py) * to_pt

    def extent(artist: Any) -> Box:
        bb = artist.get_window_extent(renderer)
        return (bb.x0 * to_pt, bb.y0 * to_pt, bb.x1 * to_pt, bb.y1 * to_pt)

    obstacles: list[Box] = []
    marker_r = 5.0   # half a marker (s=90 is about 9.5 pt across)
    trained = [p for p in (*info.front, *info.dominated, *info.infeasible, *info.baselines)
               if p.y is not None]
    for p in trained:
        x, y = disp(p.x, float(p.y or 0.0))
        obstacles.append((x - marker_r, y - marker_r, x + marker_r, y + marker_r))
        if p.xerr:
            (x0, _), (x1, _) = disp(p.x - p.xerr, 0.0), disp(p.x + p.xerr, 0.0)
            obstacles.append((x0, y - 1.5, x1, y + 1.5))
    front = [disp(p.x, float(p.y or 0.0)) for p in info.front if p.y is not None]
    for (x0, y0), (x1, y1) in itertools.pairwise(front):   # the step line
        obstacles.append((x0, y0 - 1.0, x1, y0 + 1.0))
        obstacles.append((x1 - 1.0, min(y0, y1), x1 + 1.0, max(y0, y1)))
    if front:
        right = disp(_step_end(info, ax.get_xlim()[1]), 0.0)[0]
        obstacles.append((front[-1][0], front[-1][1] - 1.0, right, front[-1][1] + 1.0))
    legend = ax.get_legend()
    obstacles += [extent(a) for a in (*texts, *([legend] if legend is not None else []))]
    if legend is not None and legend.get_bbox_to_anchor() is legend.axes.bbox:
        # pinned where it is: 'best' would move it again at savefig
        (lx, ly, _, _), (ax0, ay0, ax1, ay1) = extent(legend), extent(ax)
        legend.set_loc(((lx - ax0) / (ax1 - ax0), (ly - ay0) / (ay1 - ay0)))

    anchors = [disp(p.x, float(p.y or 0.0)) for _, p in labels]
    sizes = []
    for ann, _ in labels:
        x0, y0, x1, y1 = extent(ann)
        sizes.append((x1 - x0, y1 - y0))
    offsets = place_labels(anchors, sizes, obstacles, extent(ax))
    for (ann, _), (dx, dy) in zip(labels, offsets, strict=True):
        ann.set_horizontalalignment("left")
        ann.set_verticalalignment("bottom")
        ann.xyann = (dx, dy)
