"""Search report: pure info objects (imported eagerly, cheap: Pareto plots, per-layer
heatmap, hypervolume trace, provenance, trials table) and renderers/writers (``write_report``
-> ``report/index.html`` and PNGs, ``render_*``, ``records_to_dataframe``) loaded on first
use, so ``import autocompress.report`` pulls in neither matplotlib nor pandas.

Example:
    >>> from autocompress.report import pareto_plot_infos, write_report  # doctest: +SKIP
    >>> write_report(Path("runs/demo"), records, objectives, budgets)     # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import Any

from autocompress.report.info import (
    BaselinePoint,
    BudgetLine,
    ParetoPlotInfo,
    PlotPoint,
    TrialsTable,
    flatten_record,
    pareto_plot_infos,
    profiles_in,
)
from autocompress.report.layers import LayerHeatmapInfo, layer_heatmap_info
from autocompress.report.panel import HeatmapPanel
from autocompress.report.provenance import Provenance, read_provenance
from autocompress.report.trace import HypervolumeInfo, hypervolume_infos

_LAZY = {
    "write_report": "autocompress.report.build",
    "summary_markdown": "autocompress.report.build",
    "render_pareto": "autocompress.report.plots",
    "render_heatmap": "autocompress.report.figures",
    "render_hypervolume": "autocompress.report.figures",
    "build_page": "autocompress.report.page",
    "records_to_dataframe": "autocompress.report.table",
}

__all__ = [
    "BaselinePoint", "BudgetLine", "HeatmapPanel", "HypervolumeInfo", "LayerHeatmapInfo",
    "ParetoPlotInfo", "PlotPoint", "Provenance", "TrialsTable", "flatten_record",
    "hypervolume_infos", "layer_heatmap_info", "pareto_plot_infos", "profiles_in",
    "read_provenance", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocompress.report' has no attribute {name!r}")
