"""matplotlib renderers for the per-layer heatmap and the hypervolume trace.

Example:
    >>> import tempfile, pathlib
    >>> from autocompress.report.trace import hypervolume_infos
    >>> recs = [{"number": 0, "state": "complete", "metrics": {"accuracy": 0.9},
    ...          "cost": {"mcu": {"latency_ms": 5.0}}}]
    >>> render_hypervolume(hypervolume_infos(recs), pathlib.Path(tempfile.mkdtemp()) / "h.png").suffix
    '.png'
"""
from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autocompress.report.canvas import new_figure, save_figure
from autocompress.report.layers import LayerHeatmapInfo
from autocompress.report.panel import BLANK_MEANS, HeatmapPanel
from autocompress.report.plots import FRONT_COLOR
from autocompress.report.trace import HypervolumeInfo
from autocompress.search.sampling import InfeasibleTrend

InfeasibleTrace = tuple[Sequence[int], InfeasibleTrend]   # proposal trial numbers, trend

_CMAPS = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys")
_LINE_COLORS = (FRONT_COLOR, "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
ABSENT_COLOR = "#d4d4d4"


MAX_CELL_TEXTS = 600   # cells per panel past which values are read from the colour bar


def render_heatmap(info: LayerHeatmapInfo, path: Path | str, *, dpi: int = 130) -> Path:
    """One panel per technique; rows = front trials, columns = layers in execution order.
    Darker = compressed more; blank = not searched for that layer; grey = the layer does not
    exist in that trial's model (see ``HeatmapPanel.shown``)."""
    import numpy as np

    n_rows, n_cols = max(len(info.rows), 1), max(len(info.layers), 1)
    panels = info.panels or ()
    cell_h = 0.32
    width = min(max(8.0, 0.42 * n_cols + 4.0), 22.0)
    height = sum(cell_h * n_rows + 0.7 for _ in panels) + 1.9 if panels else 3.0
    fig = new_figure(width, height)
    if info.is_empty:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no front point with a compression plan", ha="center", va="center",
                fontsize=14, color="#555555")
        return save_figure(fig, path, dpi)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"hspace": 0.08})[:, 0]
    from matplotlib.colors import ListedColormap

    absent = np.array([[not p for p in row] for row in info.present], dtype=bool)
    grey = ListedColormap([ABSENT_COLOR])
    for k, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        # not applied where searched: the technique's neutral value (fp32, ratio 0, ...);
        # not searched, or no neutral value: white; absent layers: a grey overlay
        shown = [[panel.shown(i, j) for j in range(len(row))]
                 for i, row in enumerate(panel.cells)]
        data = np.array([[np.nan if v is None else v for v, _ in row] for row in shown],
                        dtype=float)
        data[absent] = np.nan
        vmin, vmax = _limits(panel, data[np.isfinite(data)])
        cmap = _cmap(k, panel.higher_compresses_more).with_extremes(bad="white")
        image = ax.imshow(np.ma.masked_invalid(np.clip(data, vmin, vmax)), cmap=cmap,
                          vmin=vmin, vmax=vmax, aspect="auto")
        ax.imshow(np.where(absent, 1.0, np.nan), cmap=grey, aspect="auto")
        for i, row in enumerate(shown if n_rows * n_cols <= MAX_CELL_TEXTS else ()):
            for j, (_, text) in enumerate(row):
                if absent[i, j] or not text:
                    continue
                shade = (min(max(data[i, j], vmin), vmax) - vmin) / (vmax - vmin)
                dark = shade > 0.55 if panel.higher_compresses_more else shade < 0.45
                ax.text(j, i, text, ha="center", va="center", fontsize=7.5,
                        color="white" if dark and np.isfinite(data[i, j]) else "#222222")
        ax.set_yticks(range(len(info.rows)), info.rows, fontsize=8, family="monospace")
        ax.set_title(panel.label, loc="left", fontsize=9.5, fontweight="bold")   # a ylabel
        # ran into the next panel's on short panels (one or two front points)
        ax.set_xticks(np.arange(-0.5, n_cols, 1.0), minor=True)
        ax.set_yticks(np.arange(-0.5, n_rows, 1.0), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.2)
        ax.tick_params(which="minor", length=0)
        bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
        if panel.kind == "quant":  # bit-widths are few and whole: tick exactly those shown
            shown = np.unique(np.clip(data[np.isfinite(data)], vmin, vmax))
            bar.set_ticks(shown, labels=[f"{v:g}" for v in shown])
        bar.ax.tick_params(labelsize=7)
    axes[-1].set_xticks(range(len(info.layers)), info.layers, rotation=55, ha="right",
                        fontsize=8)
    if len(panels) > 1:      # the layer names above the first panel too
        top = axes[0].secondary_xaxis("top")
        top.set_xticks(range(len(info.layers)), info.layers, rotation=55, ha="left",
                       fontsize=8)
    rows = f"{info.sampled}; " if info.sampled else "Front points, "
    title = (f"{rows}layer by layer: darker = compressed more (0, fp: searched, left "
             f"uncompressed), {BLANK_MEANS}, grey = layer not in that model")
    # wrapped to the figure's width (about 0.55 em a character): one line was cut at both ends
    fig.suptitle(textwrap.fill(title, int(fig.get_figwidth() * 72 / (9.5 * 0.55))),
                 fontsize=9.5)   # axes[0]'s title sat on its panel's name
    return save_figure(fig, path, dpi)


def _limits(panel: HeatmapPanel, values: Any) -> tuple[float, float]:
    """Colour range; fp32 stays the lightest bit-width, and a single value still shows."""
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if panel.kind == "quant" and lo < 8.0:
        hi = min(hi, 8.0)
    if hi > lo:
        return lo, hi
    span = abs(lo) or 1.0
    return (lo - span, hi) if panel.higher_compresses_more else (lo, hi + span)


def _cmap(index: int, higher_compresses_more: bool):  # type: ignore[no-untyped-def]
    """The panel's colours, without the near-white end of the colormap: the least
    compressed value stays visibly tinted, apart from the blank (white) cells."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    ramp = np.linspace(0.12, 1.0, 256)
    base = colormaps[_CMAPS[index % len(_CMAPS)]]
    return ListedColormap(base(ramp if higher_compresses_more else ramp[::-1]))


def render_hypervolume(infos: Sequence[HypervolumeInfo], path: Path | str, *,
                       infeasible: InfeasibleTrace | None = None, dpi: int = 130) -> Path:
    """Front hypervolume (as a share of the reference box) after each trial, one line per
    device; markers where the front improved. With ``infeasible``, a second panel below: the
    share of the sampler's proposals that were over budget, over the last 10 and overall."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig = new_figure(8.0, 5.6 if infeasible else 3.8)
    if infeasible:
        ax, low = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        _infeasible_panel(low, infeasible)
    else:
        ax = fig.add_subplot()
    for k, info in enumerate(infos):
        color = _LINE_COLORS[k % len(_LINE_COLORS)]
        fr = info.fractions
        ax.step(info.numbers, fr, where="post", color=color, linewidth=1.8, label=info.label)
        gains = [i for i in range(len(fr)) if fr[i] > (fr[i - 1] if i else 0.0)]
        ax.scatter([info.numbers[i] for i in gains], [fr[i] for i in gains], s=22, color=color,
                   zorder=3)
        if fr:
            ax.annotate(f"{100 * fr[-1]:.1f}%  (front {info.front_sizes[-1]})",
                        (info.numbers[-1], fr[-1]), xytext=(-4, 6), textcoords="offset points",
                        ha="right", fontsize=8, color=color)
    if not any(info.values for info in infos):
        ax.text(0.5, 0.5, "no feasible trial yet", transform=ax.transAxes, ha="center",
                va="center", fontsize=13, color="#555555")
    ax.set_ylim(0.0, max([1e-9, *(max(i.fractions, default=0.0) for i in infos)]) * 1.15)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    (low if infeasible else ax).set_xlabel("trial")
    ax.set_ylabel("hypervolume\n(share of reference box)")
    costs = "latency" if all(info.profile for info in infos) else "costs"   # run's objectives
    ax.set_title(f"Front hypervolume after each trial (reference: accuracy 0, {costs} in "
                 "legend)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if infos:
        ax.legend(loc="best", fontsize=8)     # lower right hid a low line's end label
    return save_figure(fig, path, dpi)


def _infeasible_panel(ax: Any, trace: InfeasibleTrace) -> None:
    from matplotlib.ticker import PercentFormatter

    numbers, trend = trace
    ax.step(numbers, trend.windowed, where="post", color="#d62728", linewidth=2.2, alpha=0.55,
            label="last 10 proposals")
    # on top and darker: where the two agree (often both 0) the dashes still show
    ax.plot(numbers, trend.cumulative, color="#5a0000", linewidth=1.3, linestyle="--",
            zorder=3, label="all so far")
    ax.set_ylim(-0.03, 1.03)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_ylabel("proposals\nover budget")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)     # upper right hid the last trials


