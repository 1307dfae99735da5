"""apply_plan: the one way a plan changes a model. Returns a copy."""
from __future__ import annotations

import copy

import torch
from torch import nn

from autocompress.compress import prune as _prune  # noqa: F401  (registers handler)
from autocompress.compress import quantize as _quantize  # noqa: F401  (registers handler)
from autocompress.compress.plan import CONFIG_TYPES, CompressionPlan
from autocompress.compress.registry import ApplyContext, handlers_in_order


def apply_plan(model: nn.Module, plan: CompressionPlan, example: torch.Tensor, *,
               round_to: int = 1, ignored: tuple[str, ...] = ()) -> nn.Module:
    """Copy ``model`` and apply every technique of ``plan`` in ``registry.ORDER``.

    >>> compressed = apply_plan(student, plan, torch.zeros(1, 1, 8, 8))  # doctest: +SKIP
    """
    modules = dict(model.named_modules())
    missing = sorted(set(plan.layers) - set(modules))
    if missing:
        raise KeyError(f"plan names layers the model does not have: {missing[:5]}")
    out = copy.deepcopy(model)
    ctx = ApplyContext(example=example, round_to=round_to, ignored=ignored)
    was_training = out.training
    out.eval()
    for kind, handler in handlers_in_order():
        configs = plan.configs(CONFIG_TYPES[kind])
        if configs:
            handler.apply(out, configs, ctx)
    out.train(was_training)
    return out
