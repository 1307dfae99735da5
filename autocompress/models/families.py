"""Student families by name (the search space's ``family:`` key): how to parse an
architecture, build the network and list its layer names without building it.

A new family is one ``Family`` entry here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


FAMILIES: Mapping[str, Family] = {
    "mobilenet_v2": Family(StudentArch.from_dict, build_student, student_layer_names),
    "resnet": Family(ResNetArch.from_dict, build_resnet, resnet_layer_names),
}


def get_family(name: str | None) -> Family:
    """The family called ``name`` (None: the default, MobileNetV2-like)."""
    key = name or DEFAULT_FAMILY
    if key not in FAMILIES:
        raise KeyError(f"unknown student family {key!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[key]
