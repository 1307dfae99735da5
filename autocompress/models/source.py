"""Where candidate models come from: the built-in student family or a user callable.

A user builder is ``build_model(input_shape: tuple[int, ...], num_classes: int) -> nn.Module``;
its architecture is fixed (per-layer knobs only). The layer producing the logits is never
pruned (its output channels are the classes).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocompress.errors import ModelError, raised
from autocompress.imports import load_callable
from autocompress.models.families import DEFAULT_FAMILY, Family, get_family


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    input_shape: tuple[int, ...]
    num_classes: int
    base: Mapping[str, Any] = field(default_factory=dict)   # StudentArch fields (family)
    builder: str | None = None                              # "module:callable" (user)
    base_dir: Path | None = None
    loc: str = "model.builder"
    family: str = DEFAULT_FAMILY                            # student family (families.py)

    @property
    def _family(self) -> Family:
        try:
            return get_family(self.family)
        except KeyError as exc:
            raise ModelError(str(exc.args[0]), loc="search space family") from None

    @property
    def is_family(self) -> bool:
        return self.builder is None

    @property
    def num_stages(self) -> int:
        if not self.is_family:
            return 0
        return len(self._arch({}).stage_channels)

    def _arch(self, arch: Mapping[str, Any]) -> Any:
        merged = {**self.base, **arch}
        try:
            return self._family.parse(merged)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"bad student architecture {merged}: {exc}",
                             loc="search space base/arch") from None

    def layer_names(self, arch: Mapping[str, Any]) -> list[str]:
        return self._family.layer_names(self._arch(arch))

    def build(self, arch: Mapping[str, Any], seed: int) -> nn.Module:
        torch.manual_seed(seed)
        if self.is_family:
            return self._family.build(self._arch(arch), in_channels=self.input_shape[0],
                                      num_classes=self.num_classes)
        assert self.builder is not None
        fn = load_callable(self.builder, loc=self.loc, base_dir=self.base_dir)
        try:
            model = fn(tuple(self.input_shape), self.num_classes)
        except Exception as exc:
            raise ModelError(f"{self.builder}{(tuple(self.input_shape), self.num_classes)} "
                             f"{raised(exc)}", loc=self.loc) from exc
        if not isinstance(model, nn.Module):
            raise ModelError(f"{self.builder} returned {type(model).__name__}, "
                             "expected a torch.nn.Module", loc=self.loc,
                             hint="signature: build_model(input_shape, num_classes) -> nn.Module")
        return model
