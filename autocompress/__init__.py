"""autocompress: hardware-aware compression search for PyTorch.

Lean import: ray, onnx, onnxruntime, matplotlib and torch_pruning load on first use.

>>> from autocompress import load_config, run_search        # doctest: +SKIP
>>> cfg = load_config("experiments/digits_mcu/config.yaml")  # doctest: +SKIP
>>> result = run_search(cfg, Path("runs/demo"))              # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_config": "autocompress.config",
    "SearchConfig": "autocompress.config",
    "CompressionPlan": "autocompress.compress",
    "apply_plan": "autocompress.compress",
    "inspect_model": "autocompress.graph",
    "load_profile": "autocompress.hardware",
    "CostModel": "autocompress.hardware",
    "ParetoFront": "autocompress.pareto",
    "run_search": "autocompress.search.runner_optuna",
    "export_run": "autocompress.export.run",
    "records_to_dataframe": "autocompress.report",
}
__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocompress' has no attribute {name!r}")
