"""Unstructured magnitude pruning: a 0/1 mask parametrization on ``weight``.

Layer-wise: each layer loses its smallest ``ratio`` of weights by magnitude. Global: one
threshold over all the layers with ``scope: global`` (a layer may end up denser or sparser
than the ratio; the total matches it). The mask is a buffer, so gradients of pruned weights
are zero and they stay zero while fine-tuning; ``bake`` folds it into the weight. A mask can
be tightened later (iterative pruning between fine-tuning steps) with ``tighten``.

>>> plan = CompressionPlan(layers={"fc": (SparsityConfig(ratio=0.8),)})   # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress.plan import SparsityConfig, TechniqueConfig
from autocompress.compress.registry import ApplyContext, register_handler, weighted_layers


class Mask(nn.Module):
    """Parametrization ``w -> w * mask``."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.mask

    @property
    def sparsity(self) -> float:
        return float(1.0 - self.mask.mean())


def magnitude_mask(weight: Tensor, ratio: float) -> Tensor:
    """1 where ``weight`` survives: all but the ``round(ratio * n)`` smallest magnitudes
    (ties broken by position, so the count is exact and deterministic)."""
    n = weight.numel()
    drop = round(ratio * n)
    mask = torch.ones(n)
    if drop > 0:
        order = torch.argsort(weight.detach().abs().flatten(), stable=True)
        mask[order[:drop]] = 0.0
    return mask.reshape(weight.shape)


def _global_masks(weights: Mapping[str, Tensor], ratio: float) -> dict[str, Tensor]:
    names = list(weights)
    flat = torch.cat([weights[n].detach().abs().flatten() for n in names])
    keep = magnitude_mask(flat, ratio)
    out: dict[str, Tensor] = {}
    start = 0
    for n in names:
        size = weights[n].numel()
        out[n] = keep[start:start + size].reshape(weights[n].shape)
        start += size
    return out


@register_handler(SparsityConfig)
class SparsityHandler:
    def apply(self, model: nn.Module, configs: Mapping[str, TechniqueConfig],
              ctx: ApplyContext) -> None:
        masks: dict[str, Tensor] = {}
        global_weights: dict[str, Tensor] = {}
        global_ratio: float | None = None
        for fqn, cfg in configs.items():
            if not isinstance(cfg, SparsityConfig) or cfg.ratio <= 0:
                continue
            for name, layer in weighted_layers(model, fqn):
                if cfg.scope == "global":
                    global_ratio = cfg.ratio if global_ratio is None else global_ratio
                    global_weights[name] = layer.weight
                else:
                    masks[name] = magnitude_mask(layer.weight, cfg.ratio)
        if global_weights and global_ratio is not None:
            masks.update(_global_masks(global_weights, global_ratio))
        for name, mask in masks.items():
            parametrize.register_parametrization(model.get_submodule(name), "weight", Mask(mask))


def masks_of(model: nn.Module) -> dict[str, Mask]:
    """fqn -> the sparsity mask of every masked layer."""
    out: dict[str, Mask] = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations["weight"]:
                if isinstance(p, Mask):
                    out[name] = p
    return out


@torch.no_grad()
def tighten(model: nn.Module, ratio: float) -> None:
    """Iterative pruning step: raise every masked layer to ``ratio`` sparsity by magnitude
    of its current (masked) weight; weights already pruned stay pruned."""
    for name, mask in masks_of(model).items():
        original = model.get_submodule(name).parametrizations["weight"].original
        scores = original.abs() * mask.mask
        mask.mask.copy_(magnitude_mask(scores, max(ratio, mask.sparsity)))


def cubic_schedule(ratio: float, steps: int) -> list[float]:
    """Sparsity after each of ``steps`` pruning steps (Zhu & Gupta 2017): fast at first,
    then gentle; the last step reaches ``ratio``.

    >>> [round(r, 3) for r in cubic_schedule(0.8, 3)]
    [0.563, 0.77, 0.8]
    """
    return [ratio * (1 - (1 - (i + 1) / steps) ** 3) for i in range(steps)]
