"""autocompress: hardware-aware compression search for PyTorch.

Lean import: torch, ray, onnx, onnxruntime, matplotlib and torch_pruning load on first use.
Every user mistake raises an ``AutocompressError`` (``.loc``: file:line or field, ``.hint``).

>>> import autocompress as ac                                              # doctest: +SKIP
>>> cfg = ac.load_config("experiments/digits_mcu/config.yaml", ["search.trials=5"])  # +SKIP
>>> res = ac.run_search(cfg, "runs/demo")          # also writes runs/demo/report/ +SKIP
>>> best = res.front.select(max_values={"stm32f746.latency_ms": 2.0})      # doctest: +SKIP
>>> ac.export_run("runs/demo", trial=best["number"])                       # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_config": "autocompress.config",
    "SearchConfig": "autocompress.config",
    "AutocompressError": "autocompress.errors",
    "CompressionPlan": "autocompress.compress",
    "QuantConfig": "autocompress.compress",
    "PruneConfig": "autocompress.compress",
    "SparsityConfig": "autocompress.compress",
    "ClusterConfig": "autocompress.compress",
    "LowRankConfig": "autocompress.compress",
    "DistillConfig": "autocompress.compress",
    "apply_plan": "autocompress.compress",
    "plan_formats": "autocompress.compress.formats",
    "plan_cost": "autocompress.compress.formats",
    "inspect_model": "autocompress.graph",
    "load_profile": "autocompress.hardware",
    "CostModel": "autocompress.hardware",
    "LayerFormat": "autocompress.hardware",
    "ParetoFront": "autocompress.pareto",
    "run_search": "autocompress.search.runner_optuna",
    "run_search_ray": "autocompress.search.runner_ray",
    "SearchResult": "autocompress.search.session",
    "report_run": "autocompress.search.entry",
    "export_run": "autocompress.export.run",
    "load_export": "autocompress.export.load",
    "records_to_dataframe": "autocompress.report",
}
__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocompress' has no attribute {name!r}")


def __dir__() -> list[str]:       # tab completion: the public names, the lazy ones too
    return list(__all__)
