"""Low-rank factorization by truncated SVD: one conv/linear becomes two smaller layers.

A conv W (C_out, C_in, kh, kw), flattened to (C_out, C_in*kh*kw) = U S V^T, is replaced by
``nn.Sequential(first, second)``: ``first`` = kh x kw conv C_in -> r (stride, padding,
dilation of the original, no bias) holding sqrt(S_r) V_r^T, ``second`` = 1x1 conv r -> C_out
holding U_r sqrt(S_r) and the original bias. A linear becomes two linears the same way. The
two layers are real modules (``<fqn>.0``, ``<fqn>.1``), so ``inspect_model``, the cost model
and ONNX all see them. A plan that factorizes a grouped/depthwise conv is refused (their
per-channel filters have nothing to share). Pruning runs first, so the SVD is of the pruned weight.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from autocompress.compress.plan import LowRankConfig, TechniqueConfig
from autocompress.compress.registry import ApplyContext, register_handler
from autocompress.errors import ModelError


def rank_for(layer: nn.Module, rank_ratio: float) -> int:
    """Rank kept for ``layer`` at ``rank_ratio`` (at least 1)."""
    w = layer.weight
    return max(1, round(rank_ratio * min(w.shape[0], w[0].numel())))


def _factors(weight: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    u, s, vh = torch.linalg.svd(weight.detach().flatten(1).double(), full_matrices=False)
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]).float(), (u[:, :rank] * root[None, :]).float()


def factorize(layer: nn.Module, rank: int) -> nn.Sequential:
    """Two layers whose composition is the rank-``rank`` approximation of ``layer``."""
    first_w, second_w = _factors(layer.weight, rank)
    bias = layer.bias
    if isinstance(layer, nn.Linear):
        first: nn.Module = nn.Linear(layer.in_features, rank, bias=False)
        second: nn.Module = nn.Linear(rank, layer.out_features, bias=bias is not None)
        first.weight.data.copy_(first_w)
        second.weight.data.copy_(second_w)
    elif isinstance(layer, nn.Conv2d):
        first = nn.Conv2d(layer.in_channels, rank, layer.kernel_size, layer.stride,
                          layer.padding, layer.dilation, bias=False,
                          padding_mode=layer.padding_mode)
        second = nn.Conv2d(rank, layer.out_channels, 1, bias=bias is not None)
        first.weight.data.copy_(first_w.reshape(first.weight.shape))
        second.weight.data.copy_(second_w.reshape(second.weight.shape))
    else:
        raise TypeError(f"low-rank needs a Conv2d or Linear, got {type(layer).__name__}")
    if bias is not None:
        second.bias.data.copy_(bias.detach())
    return nn.Sequential(first, second)


def factorizable(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.groups == 1)


@register_handler(LowRankConfig)
class LowRankHandler:
    def apply(self, model: nn.Module, configs: Mapping[str, TechniqueConfig],
              ctx: ApplyContext) -> None:
        for fqn, cfg in configs.items():
            if not isinstance(cfg, LowRankConfig):
                continue
            layer = model.get_submodule(fqn)
            if isinstance(layer, nn.Conv2d) and layer.groups > 1:   # was left whole, silently
                raise ModelError(f"cannot factorize '{fqn}': a grouped or depthwise conv "
                                 f"(groups={layer.groups}) has no low-rank form here",
                                 loc=f"plan.layers.{fqn}",
                                 hint="leave it out of the plan's lowrank entries")
            if not factorizable(layer):      # already a factorized pair (a PTQ pass after)
                continue
            parent_name, _, child = fqn.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, factorize(layer, rank_for(layer, cfg.rank_ratio)))
