"""Handler registry: one handler per technique config, applied in one defined order.

A new technique is one config class (plan.py) + one handler registered here:

>>> @register_handler(MyConfig)           # doctest: +SKIP
... class MyHandler:
...     def apply(self, model, configs, ctx): ...
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from autocompress.compress.plan import TechniqueConfig

# The order techniques are applied in, when several act on one layer: structure first
# (channels removed), then value changes (quantization of what remains).
ORDER: tuple[str, ...] = ("prune", "quant")


@dataclass(frozen=True, kw_only=True)
class ApplyContext:
    example: torch.Tensor            # batch-first example input (shapes only)
    round_to: int = 1                # channel alignment of the target device
    ignored: tuple[str, ...] = ()    # layers never to restructure (e.g. the classifier)


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
