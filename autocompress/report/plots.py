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

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.report.info import ParetoPlotInfo, PlotPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FRONT_COLOR = "#1f5fbf"
DOMINATED_COLOR = "#9a9a9a"
INFEASIBLE_COLOR = "#d62728"
BUDGET_COLOR = "#8b0000"
BASELINE_STYLES = (("D", "#ff7f0e"), ("s", "#2ca02c"), ("^", "#9467bd"), ("P", "#8c564b"),
                   ("v", "#e377c2"), ("*", "#17becf"))


def _figure(width: float = 8.0, height: float = 5.5) -> Any:
    """A pyplot-free Agg figure (no global state, safe in threads and notebooks)."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("the report needs matplotlib: pip install matplotlib") from exc
    if "matplotlib.pyplot" not in sys.modules:  # never switch a live notebook's backend
        matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def render_pareto(info: ParetoPlotInfo, path: Path | str, *, dpi: int = 150,
                  size: tuple[float, float] = (8.0, 5.5)) -> Path:
    """Draw one device's trade-off to ``path`` (PNG, or any format matplotlib knows by suffix):
    dominated trials grey, infeasible red x (untrained ones along the bottom edge), the front
    as a step line with trial numbers, baselines as labelled markers, budgets dashed."""
    from matplotlib.ticker import PercentFormatter

    fig = _figure(*size)
    ax = fig.add_subplot()
    ys = [p.y for p in (*info.front, *info.dominated, *info.infeasible) if p.y is not None]
    _draw_budgets(ax, info)
    _draw_front(ax, info.front)  # legend follows drawing order: front first
    _draw_baselines(ax, info)
    _draw_scatter(ax, info)
    _draw_errorbars(ax, info)
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
    ax.set_title(f"{head}\n{counts}", fontsize=11)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        # Above-left of a (max y, min x) front is empty by definition: room for the legend.
        ax.legend(loc="best" if ys else "upper right", fontsize=9, framealpha=0.9)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


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
    trained = [p for p in info.infeasible if p.y is not None]
    untrained = [p for p in info.infeasible if p.y is None]
    if trained:
        ax.scatter([p.x for p in trained], [float(p.y or 0.0) for p in trained], marker="x", s=36,
                   color=INFEASIBLE_COLOR, label=f"over budget ({len(trained)})", zorder=2)
    if untrained:
        # Untrained trials have no accuracy: a rug along the bottom edge, x in data units.
        ax.scatter([p.x for p in untrained], [0.03] * len(untrained), marker="x", s=36,
                   color=INFEASIBLE_COLOR, alpha=0.8, transform=ax.get_xaxis_transform(),
                   label=f"infeasible, not trained ({len(untrained)})", zorder=2, clip_on=False)


def _draw_front(ax: Axes, front: tuple[PlotPoint, ...]) -> None:
    pts = [p for p in front if p.y is not None]
    if not pts:
        return
    xs, ys = [p.x for p in pts], [float(p.y) for p in pts if p.y is not None]
    right = max(ax.get_xlim()[1], xs[-1])  # best accuracy holds for any larger budget
    ax.step([*xs, right], [*ys, ys[-1]], where="post", color=FRONT_COLOR, linewidth=1.6,
            alpha=0.85, zorder=3)
    ax.scatter(xs, ys, s=55, color=FRONT_COLOR, edgecolors="white", linewidths=0.8,
               label=f"Pareto front ({len(pts)})", zorder=4)
    for p in pts:
        if p.number is not None:
            ax.annotate(f"#{p.number}", (p.x, float(p.y or 0.0)), xytext=(5, -11),
                        textcoords="offset points", fontsize=8, color=FRONT_COLOR, zorder=5)


def _draw_baselines(ax: Axes, info: ParetoPlotInfo) -> None:
    for i, b in enumerate(info.baselines):
        marker, color = BASELINE_STYLES[i % len(BASELINE_STYLES)]
        ax.scatter([b.x], [b.y], marker=marker, s=90, color=color, edgecolors="black",
                   linewidths=0.7, label=f"baseline: {b.name}", zorder=6)
        ax.annotate(b.name, (b.x, b.y), xytext=(6, 6), textcoords="offset points", fontsize=8,
                    color=color, fontweight="bold", zorder=6)


def _draw_budgets(ax: Axes, info: ParetoPlotInfo) -> None:
    for line in info.budget_lines:
        ax.axvline(line.x, color=BUDGET_COLOR, linestyle="--", linewidth=1.3, zorder=1)
        ax.axvspan(line.x, max(line.x * 10.0, line.x + 1.0), color=INFEASIBLE_COLOR,
                   alpha=0.05, zorder=0)
        ax.text(line.x, 0.985, f" {line.label}", transform=ax.get_xaxis_transform(),
                color=BUDGET_COLOR, fontsize=9, ha="left", va="top", zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})
    pts = (*info.front, *info.dominated, *info.infeasible, *info.baselines)
    xs = [p.x + s * (p.xerr or 0.0) for p in pts for s in (-1.0, 1.0)]
    xs += [line.x for line in info.budget_lines]
    if xs:
        lo, hi = min(xs), max(xs)
        pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1.0)
        ax.set_xlim(lo - pad, hi + pad)
