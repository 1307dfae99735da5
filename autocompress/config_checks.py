"""The config's field checks: one function per field kind, each returning an error text or
None. :data:`SCHEMA` maps every section's keys to their check; ``config.parse_config`` walks it
and turns each text into a ``ConfigError`` naming file:line and field. ``check_new_run``: what
only a new search refuses.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from autocompress.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from autocompress.config import SearchConfig

SAMPLERS = ("tpe", "gp", "nsga2", "random")

Check = Callable[[Any], str | None]   # returns an error text, or None when fine


def _num(lo: float, hi: float, integer: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type:
            return f"expected {'an integer' if integer else 'a number'} in {lo}..{hi}, got {v!r}"
        return None if lo <= v <= hi else f"expected a value in {lo}..{hi}, got {v!r}"
    return check


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else f"expected a non-empty string, got {v!r}"


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _int_list(v: Any) -> str | None:
    if isinstance(v, list) and v and all(isinstance(i, int) and i > 0 for i in v):
        return None
    return f"expected a non-empty list of positive integers, got {v!r}"


def _str_list(v: Any) -> str | None:
    if isinstance(v, list) and all(isinstance(i, str) for i in v):
        return None
    return f"expected a list of strings, got {v!r}"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"expected true or false, got {v!r}"


def _one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        if v in choices:
            return None
        hint = did_you_mean(str(v), choices)
        return f"expected one of {', '.join(choices)}, got {v!r}" + (f"; {hint}" if hint else "")
    return check


def _early_stopping(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        return f"expected a mapping {{rungs: [1, 2, 3]}} or null, got {v!r}"
    from dataclasses import fields

    from autocompress.search.early_stop import EarlyStopping

    known = [f.name for f in fields(EarlyStopping)]      # the policy's own fields, in order
    if unknown := sorted(set(v) - set(known)):
        return f"unknown key '{unknown[0]}' (known: {', '.join(known)})"
    if "rung_score" in v and v["rung_score"] not in ("dense", "compressed"):
        return f"rung_score: expected dense or compressed, got {v.get('rung_score')!r}"
    rungs = v.get("rungs")
    if rungs is None:
        return "rungs is required: the epochs after which candidates are compared, e.g. [1, 3]"
    if _int_list(rungs) is not None or list(rungs) != sorted(set(rungs)):
        return f"rungs: expected increasing positive epoch counts, e.g. [1, 3], got {rungs!r}"
    k = v.get("min_dominating")     # keys left out take search/early_stop.EarlyStopping's
    if "min_dominating" in v and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        return f"min_dominating: expected an integer >= 1, got {k!r}"
    for key in ("margin_se", "chance_se"):
        x = v.get(key)
        if key in v and (isinstance(x, bool) or not isinstance(x, int | float) or
                         not 0 <= x <= 10):
            return f"{key}: expected a number of standard errors in 0..10, got {x!r}"
    return None


def _device(v: Any) -> str | None:
    """``train.device`` (whether this machine has that GPU is checked when a search starts).

    >>> _device("gpu")
    "expected auto, cpu, cuda or cuda:N (N a GPU index), got 'gpu'"
    """
    if isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
        return None
    return f"expected auto, cpu, cuda or cuda:N (N a GPU index), got {v!r}"


def _augment(v: Any) -> str | None:
    """``train.augment``: null (off) or ``{hflip: bool, crop: pixels}`` (``train/augment.py``).

    >>> _augment({"hflip": True, "crop": 4}) is None, _augment({"flip": True})[:28]
    (True, 'expected a mapping {hflip: t')
    """
    if v is None:
        return None
    if not isinstance(v, dict) or not v or set(v) - {"hflip", "crop"}:
        return f"expected a mapping {{hflip: true|false, crop: PIXELS}} or null, got {v!r}"
    flip, crop = v.get("hflip", False), v.get("crop", 0)
    if not isinstance(flip, bool):
        return f"hflip: expected true or false, got {flip!r}"
    if isinstance(crop, bool) or not isinstance(crop, int) or not 0 <= crop <= 64:
        return f"crop: expected a zero padding in pixels, 0..64, got {crop!r}"
    return None


def _opt_num(lo: float, hi: float, integer: bool = False) -> Check:
    inner = _num(lo, hi, integer)
    return lambda v: None if v is None else inner(v)


SCHEMA: dict[str, dict[str, Check]] = {
    "data": {"source": _str, "val_fraction": _num(0.01, 0.5), "test_fraction": _num(0.01, 0.5),
             "split_seed": _opt_num(0, 2**31 - 1, True)},
    "model": {"space": _str, "builder": _opt_str},
    "teacher": {"widths": _int_list, "epochs": _num(0, 1000, True), "lr": _num(1e-6, 10),
                "model": _opt_str},
    "train": {"epochs": _num(0, 1000, True), "finetune_epochs": _num(0, 1000, True),
              "lr": _num(1e-6, 10), "batch_size": _num(1, 65536, True),
              "repeats": _num(1, 100, True), "device": _device, "augment": _augment},
    "hardware": {"profiles": _str_list, "budgets": lambda v: None},
    "search": {"trials": _num(1, 100000, True), "sampler": _one_of(*SAMPLERS),
               "objectives": _str_list, "threads": _num(1, 256, True),
               "timeout_s": _opt_num(1, 1e7), "early_stopping": _early_stopping,
               "reduce_space": _bool, "initial_design": _one_of("spread", "random"),
               "baselines": _bool},
}
TOP: dict[str, Check] = {"name": _str, "seed": _num(0, 2**31 - 1, True)}


def check_new_run(cfg: SearchConfig) -> None:
    """What a new run refuses that an old run dir's config may hold (checked when a search
    starts, not on load, so that old runs still report, export and resume)."""
    from autocompress.budgets import check_within_device
    from autocompress.config import DataConfig

    check_within_device(cfg)
    name = cfg.name              # it becomes a folder name: runs/<name>-<time>
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("-"):
        raise ConfigError(f"expected a name without '/' or a leading '-' (it names the run's "
                          f"folder), got {name!r}", loc=field_loc(cfg, "name"),
                          hint="e.g. name: mcu-search")
    objectives = cfg.search.objectives
    for field, what, items in (("search.objectives", "objective", objectives),
                               ("hardware.profiles", "profile", cfg.hardware.profiles)):
        if len(set(items)) < len(items):  # a profile twice: twice its costs, prefixed lines
            twice = next(o for i, o in enumerate(items) if o in items[:i])
            raise ConfigError(f"{what} '{twice}' is listed twice", loc=field_loc(cfg, field),
                              hint=f"list each {what} once")
    if objectives and "accuracy" not in objectives:
        raise ConfigError(f"the objectives {list(objectives)} leave out accuracy, so the "
                          "search would pick the cheapest model whatever it scores",
                          loc=field_loc(cfg, "search.objectives"), hint="add accuracy, e.g. "
                          f"objectives: [accuracy, {cfg.hardware.profiles[0]}.latency_ms]")
    if cfg.data.source != "digits":
        for key in ("val_fraction", "test_fraction"):
            if getattr(cfg.data, key) != getattr(DataConfig, key):
                raise ConfigError(f"{key} splits the built-in digits only; "
                                  f"{cfg.data.source} returns its own train/val/test splits",
                                  loc=field_loc(cfg, f"data.{key}"),
                                  hint="remove it, or change the split in your data callable")


def field_loc(cfg: SearchConfig, field: str) -> str:
    """``file:line field`` of a config field the config file holds with the value ``cfg``
    has; ``field = value (overriding file:line, which has ...)`` where a ``--set`` changed
    it; else ``file field`` (a default, a ``--set`` of a key the file leaves out)."""
    from autocompress.yamlio import load_yaml

    path = tuple(field.split("."))
    try:
        doc = load_yaml(cfg.path, what="config")
        held: Any = doc.data
        ours: Any = cfg
        for key in path:
            held = held if isinstance(held, str) and key == "source" else held[key]
            ours = ours[key] if isinstance(ours, Mapping) else getattr(ours, key)
    except Exception:             # unreadable, or not in the file: the field alone
        return f"{cfg.path} {field}"
    line = next((doc.lines[path[:n]] for n in range(len(path), 0, -1)
                 if path[:n] in doc.lines), None)
    held, ours = (list(v) if isinstance(v, (list, tuple)) else v for v in (held, ours))
    same = held == ours
    if line is None:
        return f"{cfg.path} {field}"
    if not same:        # a --set (or a Python override) over the file's value: say so
        return f"{field} = {ours!r} (overriding {cfg.path}:{line}, which has {held!r})"
    return f"{cfg.path}:{line} {field}"


BUDGET_KEYS = ("max_latency_ms", "max_flash_kb", "max_peak_sram_kb")


def check_budgets(budgets: Any, profiles: Sequence[str], fail: Callable[..., ConfigError]
                  ) -> None:
    """``hardware.budgets``: a mapping of the run's profiles to known, positive limits."""
    if not isinstance(budgets, dict):
        raise fail(("hardware", "budgets"), "budgets must map profile -> {max_latency_ms: ...}")
    for prof, limits in budgets.items():
        if prof not in profiles:
            raise fail(("hardware", "budgets", prof), f"budget for profile '{prof}' that is not "
                       "in hardware.profiles", did_you_mean(prof, profiles)
                       or f"add {prof} to hardware.profiles, or remove its budget")
        if not isinstance(limits, dict):
            raise fail(("hardware", "budgets", prof), "expected a mapping of limits",
                       f"keys: {', '.join(BUDGET_KEYS)}")
        for key, value in limits.items():
            if key not in BUDGET_KEYS:
                raise fail(("hardware", "budgets", prof, key), f"unknown budget '{key}'",
                           did_you_mean(key, BUDGET_KEYS) or f"known: {', '.join(BUDGET_KEYS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 < value < math.inf:                   # nan and inf too
                raise fail(("hardware", "budgets", prof, key),
                           f"expected a positive number, got {value!r}",
                           "leave the budget out for no limit" if value == math.inf else
                           unit_hint(key, value))


UNITS = {"kb": 1.0, "k": 1.0, "kib": 1.0, "mb": 1024.0, "mib": 1024.0, "m": 1024.0,
         "b": 1 / 1024, "ms": 1.0, "s": 1000.0, "us": 1e-3}


def unit_hint(key: str, value: Any) -> str | None:
    """The number to write for a budget given with a unit (``64KB``, ``1 MB``, ``15 ms``):
    budgets are plain numbers in the unit their key names (KB of 1024 bytes, or ms)."""
    import re

    found = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]+)\s*", str(value))
    unit = key.rsplit("_", 1)[-1]                   # kb or ms
    given = found.group(2).lower() if found else ""
    scale = UNITS.get(given)
    if scale is None or (given in ("ms", "s", "us")) != (unit == "ms"):   # KB vs ms
        return None
    try:
        number = float(found.group(1)) * scale
    except ValueError:
        return None
    return f"write {key}: {number:g} (a plain number, in {'KB' if unit == 'kb' else 'ms'})"
