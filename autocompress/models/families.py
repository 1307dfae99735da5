"""Student families by name (the search space's ``family:`` key): how to parse an
architecture, build the network and list its layer names without building it.

A new family is one ``Family`` entry here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from torch import nn

from autocompress.models.resnet import ResNetArch, build_resnet, resnet_layer_names
from autocompress.models.student import StudentArch, build_student, student_layer_names

DEFAULT_FAMILY = "mobilenet_v2"


@dataclass(frozen=True)
class Family:
    parse: Callable[[dict[str, Any]], Any]              # arch dict -> arch object
    build: Callable[..., nn.Module]                      # (arch, *, in_channels, num_classes)
    layer_names: Callable[[Any], list[str]]              # arch object -> conv/linear fqns
    arch_type: type                                      # its frozen arch dataclass


FAMILIES: Mapping[str, Family] = {
    "mobilenet_v2": Family(StudentArch.from_dict, build_student, student_layer_names,
                           StudentArch),
    "resnet": Family(ResNetArch.from_dict, build_resnet, resnet_layer_names, ResNetArch),
}


def check_base(doc: Any, family: str | None, base: Any) -> None:
    """Raise SpaceError at the line of what is wrong with a search space's ``base:``."""
    from autocompress.errors import SpaceError

    if not isinstance(base, dict):
        raise doc.error(("base",), "'base' must be a mapping of architecture fields",
                        cls=SpaceError)
    if (problem := base_problem(family, base)) is not None:
        raise doc.error(("base", *problem[0]), problem[1], hint=problem[2], cls=SpaceError)


def base_problem(family: str | None, base: Mapping[str, Any]
                 ) -> tuple[tuple[str, ...], str, str] | None:
    """What is wrong with a search space's ``base:`` for ``family`` (key path, problem, hint),
    or None. Each field takes what its default is: a positive whole number, a positive
    number (``width_mult``), or a list of positive whole numbers with one entry per stage."""
    defaults = {f.name: f.default for f in fields(get_family(family).arch_type)
                if f.default is not MISSING}
    for key, value in base.items():
        if key not in defaults:
            return (key,), f"unknown field '{key}'", f"known: {', '.join(defaults)}"
        want = defaults[key]
        if isinstance(want, tuple):
            if not isinstance(value, list) or not value or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
                return (key,), f"expected a list of positive whole numbers, got {value!r}", \
                    f"e.g. {key}: {list(want)}"
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
                isinstance(want, int) and not isinstance(value, int)):
            kind = "a positive whole number" if isinstance(want, int) else "a positive number"
            return (key,), f"expected {kind}, got {value!r}", f"e.g. {key}: {want}"
    stages = len(base.get("stage_channels", defaults["stage_channels"]))
    for key, want in defaults.items():
        if isinstance(want, tuple) and len(base.get(key, want)) != stages:
            where = key if key in base else "stage_channels"
            return (where,), f"{key} has {len(base.get(key, want))} entries for {stages} " \
                "stages", f"give {key} with {stages} entries in base (the defaults are for " \
                f"{len(want)} stages)"
    return None


def get_family(name: str | None) -> Family:
    """The family called ``name`` (None: the default, MobileNetV2-like)."""
    key = name or DEFAULT_FAMILY
    if key not in FAMILIES:
        raise KeyError(f"unknown student family {key!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[key]
