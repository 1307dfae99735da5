"""Resolve ``module:callable`` import paths given by users in configs."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autocompress.errors import ConfigError


def load_callable(spec: str, *, loc: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """Import ``pkg.mod:func``. ``base_dir`` (the config's folder) is put on sys.path first,
    so an experiment can ship its own module beside its config."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ConfigError(f"expected 'module:callable', got {spec!r}", loc=loc,
                          hint="e.g. mypkg.nets:build_model")
    module_name, attr = spec.split(":")
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{module_name}': {exc}", loc=loc,
                          hint="check the module path and that it is importable "
                               "(installed, or beside the config)") from None
    obj = getattr(module, attr, None)
    if obj is None or not callable(obj):
        raise ConfigError(f"'{module_name}' has no callable '{attr}'", loc=loc,
                          hint="check the name after the colon")
    return obj
