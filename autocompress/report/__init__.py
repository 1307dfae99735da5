"""Search report: pure info objects (imported eagerly, cheap) and renderers/writers
(``write_report``, ``render_pareto``, ``records_to_dataframe``) loaded on first use, so
``import autocompress.report`` pulls in neither matplotlib nor pandas.

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

_LAZY = {
    "write_report": "autocompress.report.build",
    "summary_markdown": "autocompress.report.build",
    "render_pareto": "autocompress.report.plots",
    "records_to_dataframe": "autocompress.report.table",
}

__all__ = [
    "BaselinePoint", "BudgetLine", "ParetoPlotInfo", "PlotPoint", "TrialsTable",
    "flatten_record", "pareto_plot_infos", "profiles_in", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocompress.report' has no attribute {name!r}")
