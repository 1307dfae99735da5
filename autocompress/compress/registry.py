"""Handler registry: one handler per technique config, applied in one defined order.

A new technique, for plans built by hand (``apply_plan``), is a config class in plan.py
(listed in ``CONFIG_TYPES``), its kind in :data:`ORDER` and a handler registered here, in a
module ``compress/apply.py`` imports:

>>> @register_handler(MyConfig)           # doctest: +SKIP
... class MyHandler:
...     def apply(self, model, configs, ctx): ...

For the search to offer it, the space's knob goes in ``space/knobs.py`` too (``LAYER_KNOBS``
and ``layer_configs``, which turns a trial's values into configs).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from autocompress.compress.plan import TechniqueConfig

# The order techniques are applied in, when several act on one layer: structure first
# (channels removed, then a layer split in two by SVD), then value changes on what remains
# (zeros, shared values, and last the quantization of those values: a zero or a codebook
# entry quantizes to one level, so sparsity and clustering survive quantization).
ORDER: tuple[str, ...] = ("prune", "lowrank", "sparsity", "cluster", "quant")


@dataclass(frozen=True, kw_only=True)
class ApplyContext:
    example: torch.Tensor            # batch-first example input (shapes only)
    round_to: int = 1                # channel alignment of the target device
    ignored: tuple[str, ...] = ()    # layers never to restructure (e.g. the classifier)
    calibration: torch.Tensor | None = None   # inputs for data-aware steps (else ``example``)

    @property
    def data(self) -> torch.Tensor:
        return self.example if self.calibration is None else self.calibration


WEIGHTED = (nn.Conv2d, nn.Linear)
P = TypeVar("P", bound=nn.Module)


def weight_parametrizations(module: nn.Module) -> list[nn.Module]:
    """The parametrizations on ``module.weight``, in the order they apply ([] if none)."""
    if not parametrize.is_parametrized(module, "weight"):
        return []
    return list(module.parametrizations["weight"])


def parametrized(model: nn.Module, cls: type[P]) -> dict[str, P]:
    """fqn -> the ``cls`` parametrization on the weight of every layer of ``model`` that
    has one (the last, if several)."""
    return {name: p for name, module in model.named_modules()
            for p in weight_parametrizations(module) if isinstance(p, cls)}


def weighted_layers(model: nn.Module, fqn: str) -> list[tuple[str, nn.Module]]:
    """The conv/linear layers a plan entry ``fqn`` stands for: the layer itself, or, once
    low-rank has split it, its two factors (``fqn.0``, ``fqn.1``)."""
    module = model.get_submodule(fqn)
    if isinstance(module, WEIGHTED):
        return [(fqn, module)]
    return [(f"{fqn}.{n}", m) for n, m in module.named_children() if isinstance(m, WEIGHTED)]


class Handler(Protocol):
    def apply(self, model: nn.Module, configs: Mapping[str, TechniqueConfig],
              ctx: ApplyContext) -> None: ...


_HANDLERS: dict[str, Handler] = {}


def register_handler(config_type: type[TechniqueConfig]) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if config_type.kind not in ORDER:
            raise ValueError(f"add {config_type.kind!r} to registry.ORDER")
        _HANDLERS[config_type.kind] = cls()
        return cls
    return deco


def handlers_in_order() -> list[tuple[str, Handler]]:
    return [(kind, _HANDLERS[kind]) for kind in ORDER if kind in _HANDLERS]
