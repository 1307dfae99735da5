"""The budgets a search holds its candidates to: ``hardware.budgets`` as the config writes
them, plus each profile's own memory. A microcontroller profile names its chip's SRAM and
Flash (``device.sram_kb``, ``device.flash_kb``); a candidate that does not fit them cannot
run there whatever the user asked, so they act as ``max_peak_sram_kb`` / ``max_flash_kb``
wherever ``hardware.budgets`` sets none (a tighter one written there wins; a looser one is
refused when a search starts). Such a limit is rejected before training, told to the sampler
and drawn on the plots like any budget. Phones and Jetsons name no sizes and get none.

>>> effective_budgets({"m": {"max_latency_ms": 5.0}}, {"m": {"max_flash_kb": 1024.0}})
{'m': {'max_latency_ms': 5.0, 'max_flash_kb': 1024.0}}
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from autocompress.config_checks import field_loc
from autocompress.errors import ConfigError
from autocompress.pareto import Budget

if TYPE_CHECKING:
    from autocompress.config import SearchConfig
    from autocompress.hardware.spec import DeviceSpec, HardwareProfile

RUN_CONFIG = "config.resolved.yaml"     # a run directory's config (search/rundir.py)
DEVICE_FILE = "device_limits.json"      # the device limits a run was searched with (rundir.py)

# budget key -> the DeviceSpec field it defaults to
DEVICE_KEYS = {"max_peak_sram_kb": "sram_kb", "max_flash_kb": "flash_kb"}

Budgets = Mapping[str, Mapping[str, float]]    # profile -> {budget key: limit}


def device_limits(device: DeviceSpec) -> dict[str, float]:
    """The budgets a device's own sizes set (none for a device without them)."""
    return {key: float(getattr(device, attr)) for key, attr in DEVICE_KEYS.items()
            if getattr(device, attr) is not None}


def effective_budgets(user: Budgets, devices: Budgets) -> dict[str, dict[str, float]]:
    """Per profile, the user's budgets, then the device's limits the user sets none for."""
    out = {}
    for prof in dict.fromkeys([*devices, *user]):
        mine = dict(user.get(prof, {}))             # the config's order, then the device's
        if merged := {**mine, **{k: v for k, v in devices.get(prof, {}).items() if k not in mine}}:
            out[prof] = merged
    return out


@lru_cache(maxsize=64)
def _limits(path: str, mtime_ns: int) -> dict[str, float]:
    from autocompress.hardware.profile import load_profile

    return device_limits(load_profile(Path(path)).device)


def config_device_limits(cfg: SearchConfig, profiles: Mapping[str, HardwareProfile] | None
                         = None) -> dict[str, dict[str, float]]:
    """The device limits of every profile the config names (from ``profiles`` when given). A
    run directory's config takes the ones its search started with (``device_limits.json``;
    none for a run made before device limits existed), so that report, export and resume
    judge its trials by the budgets they were searched with."""
    if Path(cfg.path).name == RUN_CONFIG:
        try:
            return dict(json.loads((Path(cfg.base_dir) / DEVICE_FILE).read_text()))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"unreadable device limits: {exc}",
                              loc=str(Path(cfg.base_dir) / DEVICE_FILE)) from None
    if profiles is None:
        from autocompress.hardware.profile import profile_path

        paths = {n: profile_path(n, cfg.profile_dirs()) for n in cfg.hardware.profiles}
        found = {n: _limits(str(p), p.stat().st_mtime_ns) for n, p in paths.items()}
    else:
        found = {n: device_limits(p.device) for n, p in profiles.items()}
    return {name: limits for name, limits in found.items() if limits}


def budgets_of(cfg: SearchConfig) -> list[Budget]:
    """Every budget of the run, the devices' own sizes included, one per (profile, metric)."""
    merged = effective_budgets(cfg.hardware.budgets, config_device_limits(cfg))
    return [Budget(profile=prof, metric=key.removeprefix("max_"), limit=float(limit))
            for prof, limits in merged.items() for key, limit in limits.items()]


def device_only(user: Budgets, devices: Budgets) -> set[str]:
    """``<profile>.<metric>`` of the limits that come from a device, not from the config."""
    return {f"{prof}.{key.removeprefix('max_')}" for prof, limits in devices.items()
            for key in limits if key not in user.get(prof, {})}


def check_within_device(cfg: SearchConfig) -> None:
    """Refuse a budget looser than the device it is for (it could never be used)."""
    for prof, limits in config_device_limits(cfg).items():
        for key, size in limits.items():
            asked = cfg.hardware.budgets.get(prof, {}).get(key)
            if asked is not None and asked > size:
                attr = DEVICE_KEYS[key]
                raise ConfigError(f"{asked:g} KB is more than the device has ({prof}: "
                                  f"device.{attr} {size:g} KB)",
                                  loc=field_loc(cfg, f"hardware.budgets.{prof}.{key}"),
                                  hint=f"lower it to at most {size:g}, or leave it out: the "
                                  "device's own size is the default limit")
