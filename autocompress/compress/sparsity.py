"""Unstructured magnitude pruning: a 0/1 mask parametrization on ``weight``.

Layer-wise: each layer loses its smallest ``ratio`` of weights by magnitude. Global: one
threshold over all the layers with ``scope: global`` (a layer may end up denser or sparser
than the ratio; the total matches it). The mask is a buffer, so gradients of pruned weights
are zero and they stay zero while fine-tuning (the mask multiplies the weight in every
forward pass, so it holds after every optimizer step); ``bake`` folds it into the weight.
Iterative configs (``steps > 1``) start at their schedule's first ratio; ``tighten`` raises
their masks at epoch ends (``train.finetune`` calls it).

>>> plan = CompressionPlan(layers={"fc": (SparsityConfig(ratio=0.8),)})   # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress.plan import SparsityConfig, TechniqueConfig, global_lead
from autocompress.compress.registry import (
    ApplyContext,
    parametrized,
    register_handler,
    weighted_layers,
)


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


def _first_ratio(cfg: SparsityConfig) -> float:
    return schedule(cfg.ratio, cfg.steps, cfg.schedule)[0]


@register_handler(SparsityConfig)
class SparsityHandler:
    """Masks at each config's ratio (iterative configs: at their schedule's first step)."""

    def apply(self, model: nn.Module, configs: Mapping[str, TechniqueConfig],
              ctx: ApplyContext) -> None:
        sparse = {f: c for f, c in configs.items() if isinstance(c, SparsityConfig) and c.ratio > 0}
        for name, mask in _masks_at(model, sparse, _first_ratio).items():
            parametrize.register_parametrization(model.get_submodule(name), "weight", Mask(mask))


def _masks_at(model: nn.Module, configs: Mapping[str, SparsityConfig],
              ratio_of: Callable[[SparsityConfig], float]) -> dict[str, Tensor]:
    """Layer name -> magnitude mask at ``ratio_of(config)``, scored by the layer's current
    weight. Where a mask already prunes, the score is 0 and every other score is above 0
    (a weight that quantizes or clusters to 0 included): the pruned weights are the first
    to go, so they stay pruned and a mask never ends up sparser than its ratio."""
    existing = masks_of(model)
    masks: dict[str, Tensor] = {}
    global_weights: dict[str, Tensor] = {}
    lead = global_lead(configs)
    global_ratio = None if lead is None else ratio_of(lead)
    for fqn, cfg in configs.items():
        for name, layer in weighted_layers(model, fqn):
            with torch.no_grad():
                weight = layer.weight.detach().abs()
                if name in existing:
                    weight = weight.clamp_min(torch.finfo(weight.dtype).tiny) \
                        * existing[name].mask
            if cfg.scope == "global":
                global_weights[name] = weight
            else:
                masks[name] = magnitude_mask(weight, ratio_of(cfg))
    if global_weights and global_ratio is not None:
        masks.update(_global_masks(global_weights, global_ratio))
    return masks


def iterative_configs(configs: Mapping[str, TechniqueConfig]) -> dict[str, SparsityConfig]:
    """The sparsity configs pruned step by step: a layer-scope one with ``steps > 1``, every
    global-scope one when :func:`global_lead` has ``steps > 1``."""
    sparse = {f: c for f, c in configs.items() if isinstance(c, SparsityConfig) and c.ratio > 0}
    lead = global_lead(sparse)
    return {f: c for f, c in sparse.items()
            if (c.scope == "global" and lead is not None and lead.steps > 1)
            or (c.scope != "global" and c.steps > 1)}


def masks_of(model: nn.Module) -> dict[str, Mask]:
    """fqn -> the sparsity mask of every masked layer."""
    return parametrized(model, Mask)


def schedule(ratio: float, steps: int, kind: str = "cubic") -> list[float]:
    """Sparsity after each of ``steps`` pruning steps; the last reaches ``ratio``.
    ``cubic`` (Zhu & Gupta 2017): fast at first, then gentle; ``linear``: equal steps.

    >>> [round(r, 3) for r in schedule(0.8, 3)]
    [0.563, 0.77, 0.8]
    >>> [round(r, 3) for r in schedule(0.8, 4, "linear")]
    [0.2, 0.4, 0.6, 0.8]
    """
    if kind == "linear":
        return [ratio * (i + 1) / steps for i in range(steps)]
    return [ratio * (1 - (1 - (i + 1) / steps) ** 3) for i in range(steps)]


def scheduled_ratio(cfg: SparsityConfig, epochs_done: int, epochs: int) -> float:
    """Sparsity ``cfg`` asks for after ``epochs_done`` of ``epochs`` fine-tuning epochs.

    Pruning happens in the first half of the fine-tune and the second half recovers at full
    sparsity (as in Zhu & Gupta 2017, where pruning ends well before training does; with a
    cosine learning rate the last epochs learn little): step i of ``steps`` (0-based) is
    taken after epoch round(i * w / (steps - 1)), w = max(1, epochs // 2). With one epoch or
    none, the full ratio from the start.

    >>> c = SparsityConfig(ratio=0.8, steps=3, schedule="linear")
    >>> [round(scheduled_ratio(c, e, 8), 3) for e in range(9)]
    [0.267, 0.267, 0.533, 0.533, 0.8, 0.8, 0.8, 0.8, 0.8]
    """
    if cfg.steps == 1 or epochs <= 1:   # one shot, or no epoch to spread the steps over
        return cfg.ratio
    steps = schedule(cfg.ratio, cfg.steps, cfg.schedule)
    window = max(1, epochs // 2)
    due = [i for i in range(cfg.steps) if round(i * window / (cfg.steps - 1)) <= epochs_done]
    return steps[max(due)]


@torch.no_grad()
def tighten(model: nn.Module, configs: Mapping[str, TechniqueConfig], epochs_done: int,
            epochs: int) -> None:
    """Iterative pruning step: raise every iterative config's masks to its scheduled ratio
    (``scheduled_ratio``) by magnitude of the current masked weight; pruned weights stay
    pruned. One-shot configs are left as they are. The global-scope layers are one group
    with one threshold, on the schedule of :func:`global_lead` (whose ratio they share):
    all of them are tightened together when it is iterative, none when it is one shot."""
    iterative = iterative_configs(configs)
    current = masks_of(model)
    for name, mask in _masks_at(model, iterative,
                                lambda c: scheduled_ratio(c, epochs_done, epochs)).items():
        current[name].mask.copy_(torch.minimum(current[name].mask, mask))
