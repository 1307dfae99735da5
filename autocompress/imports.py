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
    if "/" in module_name or "\\" in module_name or module_name.endswith(".py"):
        file = Path(module_name.removesuffix(".py").replace("\\", "/"))
        if file.is_absolute():      # '/home/me/nets.py' read 'home.me.nets': never importable
            root = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
            file = file.relative_to(root) if file.is_relative_to(root) else Path(file.name)
        dotted = file.as_posix().strip("./").replace("/", ".")
        raise ConfigError(f"expected a module name before the colon, got the file path "
                          f"'{module_name}'", loc=loc, hint=f"write it as a dotted module "
                          f"name importable from the config's (or the working) folder, e.g. "
                          f"{dotted or 'mynets'}:{attr}")
    if base_dir is not None:
        base = Path(base_dir).resolve()
        if str(base) in sys.path:
            sys.path.remove(str(base))
        sys.path.insert(0, str(base))                  # the config's folder wins
        _forget_if_elsewhere(module_name, base)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{module_name}': {exc}", loc=loc,
                          hint="check the module path and that it is importable "
                               "(installed, or beside the config that names it)") from None
    except SyntaxError as exc:
        raise ConfigError(f"module '{module_name}' has a syntax error: {exc.msg}",
                          loc=f"{exc.filename}:{exc.lineno}", hint="fix that line") from None
    except Exception as exc:      # the module's own code failed while it was imported
        raise ConfigError(f"importing module '{module_name}' raised {type(exc).__name__}: "
                          f"{exc}", loc=loc, hint="run `python -c 'import "
                          f"{module_name}'` beside it to see the traceback") from None
    obj = getattr(module, attr, None)
    if obj is None or not callable(obj):
        raise ConfigError(f"'{module_name}' has no callable '{attr}'", loc=loc,
                          hint="check the name after the colon")
    return obj


def _forget_if_elsewhere(module_name: str, base: Path) -> None:
    """Two experiments may each ship a ``mynets.py``: if the cached module came from another
    folder than this config's, drop it so the one beside this config is imported."""
    top = module_name.split(".")[0]
    local = base / f"{top}.py"
    if not (local.is_file() or (base / top / "__init__.py").is_file()):
        return
    cached = sys.modules.get(top)
    origin = getattr(cached, "__file__", None)
    if cached is not None and (origin is None or Path(origin).resolve().parent
                               != (base if local.is_file() else base / top)):
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
