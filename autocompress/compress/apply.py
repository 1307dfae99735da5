"""apply_plan: the one way a plan changes a model. Returns a copy."""
from __future__ import annotations

import copy

import torch
from torch import nn

# Importing a technique module registers its handler.
from autocompress.compress import cluster as _cluster  # noqa: F401
from autocompress.compress import lowrank as _lowrank  # noqa: F401
from autocompress.compress import prune as _prune  # noqa: F401
from autocompress.compress import quantize as _quantize  # noqa: F401
from autocompress.compress import sparsity as _sparsity  # noqa: F401
from autocompress.compress.plan import CONFIG_TYPES, CompressionPlan
from autocompress.compress.registry import ApplyContext, handlers_in_order


def apply_plan(model: nn.Module, plan: CompressionPlan, example: torch.Tensor, *,
               round_to: int = 1, ignored: tuple[str, ...] = (),
               calibration: torch.Tensor | None = None) -> nn.Module:
    """Copy ``model`` and apply every technique of ``plan`` in ``registry.ORDER``.

    ``calibration``: inputs for data-aware steps (activation ranges, Taylor importance);
    ``example`` is used when it is None.

    >>> compressed = apply_plan(student, plan, torch.zeros(1, 1, 8, 8))  # doctest: +SKIP
    """
    modules = dict(model.named_modules())
    missing = sorted(set(plan.layers) - set(modules))
    if missing:
        raise KeyError(f"plan names layers the model does not have: {missing[:5]}")
    out = copy.deepcopy(model)
    ctx = ApplyContext(example=example, round_to=round_to, ignored=ignored,
                       calibration=calibration)
    was_training = out.training
    out.eval()
    for kind, handler in handlers_in_order():
        configs = plan.configs(CONFIG_TYPES[kind])
        if configs:
            handler.apply(out, configs, ctx)
    out.train(was_training)
    return out
