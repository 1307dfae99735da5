"""Weight clustering (parameter sharing): each layer's non-zero weights take one of ``k``
shared values. The parametrization holds the assignment (``indices``, a buffer) and a
trainable ``codebook``; fine-tuning trains the shared values (gradients of a value are the
sum over its weights). Zeros (from sparsity) stay exactly zero: index 0 is a fixed 0.0.
Stored as a codebook plus ceil(log2 k)-bit indices (see ``size.stored_bytes``).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress.plan import ClusterConfig, TechniqueConfig
from autocompress.compress.registry import (
    ApplyContext,
    register_handler,
    weight_parametrizations,
    weighted_layers,
)

LLOYD_ITERS = 25   # 1-D k-means converges in a few iterations on ~1e3..1e5 weights


def kmeans_1d(values: Tensor, k: int, init: str = "kmeans") -> tuple[Tensor, Tensor]:
    """Deterministic 1-D k-means: (sorted centroids (k',), assignment per value); k' <= k
    when there are fewer distinct values. ``init``: quantiles ("kmeans") or linspace."""
    values = values.detach().float().flatten()
    k = max(1, min(k, int(torch.unique(values).numel())))
    if init == "uniform":
        centroids = torch.linspace(float(values.min()), float(values.max()), k)
    else:
        centroids = torch.quantile(values, torch.linspace(0, 1, k)) if values.numel() < (1 << 24) \
            else torch.linspace(float(values.min()), float(values.max()), k)
    assign = torch.zeros(values.numel(), dtype=torch.long)
    for _ in range(LLOYD_ITERS):
        assign = (values[:, None] - centroids[None, :]).abs().argmin(1)
        sums = torch.zeros(k).index_add_(0, assign, values)
        counts = torch.zeros(k).index_add_(0, assign, torch.ones_like(values))
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        if torch.equal(updated, centroids):
            break
        centroids = updated
    assign = (values[:, None] - centroids[None, :]).abs().argmin(1)
    return centroids, assign


class Cluster(nn.Module):
    """Parametrization ``w -> [0, codebook][indices] * (w != 0)`` (only the zeros of ``w``
    matter after set-up)."""

    def __init__(self, weight: Tensor, k: int, init: str = "kmeans") -> None:
        super().__init__()
        w = weight.detach()
        nonzero = w != 0
        centroids, assign = kmeans_1d(w[nonzero], k, init) if nonzero.any() else \
            (torch.zeros(1), torch.zeros(0, dtype=torch.long))
        indices = torch.zeros(w.shape, dtype=torch.long)
        indices[nonzero] = assign + 1
        self.register_buffer("indices", indices)
        self.codebook = nn.Parameter(centroids.clone())

    def forward(self, weight: Tensor) -> Tensor:
        table = torch.cat([self.codebook.new_zeros(1), self.codebook])
        # zeros of the incoming weight stay zero: a sparsity mask tightened after set-up
        # (iterative pruning) still prunes
        return table[self.indices].to(weight.dtype) * (weight != 0)

    @property
    def k(self) -> int:
        return int(self.codebook.numel())


def is_clustered(layer: nn.Module) -> bool:
    return any(isinstance(p, Cluster) for p in weight_parametrizations(layer))


@register_handler(ClusterConfig)
class ClusterHandler:
    def apply(self, model: nn.Module, configs: Mapping[str, TechniqueConfig],
              ctx: ApplyContext) -> None:
        for fqn, cfg in configs.items():
            if not isinstance(cfg, ClusterConfig):
                continue
            for _, layer in weighted_layers(model, fqn):
                parametrize.register_parametrization(
                    layer, "weight", Cluster(layer.weight, cfg.k, cfg.init))
