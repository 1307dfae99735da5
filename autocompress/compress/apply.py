"""apply_plan: the one way a plan changes a model. Returns a copy."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

# Importing a technique module registers its handler.
from autocompress.compress import cluster as _cluster  # noqa: F401
from autocompress.compress import lowrank as _lowrank  # noqa: F401
from autocompress.compress import prune as _prune  # noqa: F401
from autocompress.compress import quantize as _quantize  # noqa: F401
from autocompress.compress import sparsity as _sparsity  # noqa: F401
from autocompress.compress.plan import CONFIG_TYPES, CompressionPlan, PruneConfig
from autocompress.compress.registry import ApplyContext, handlers_in_order
from autocompress.errors import ModelError, did_you_mean


def apply_plan(model: nn.Module, plan: CompressionPlan, example: torch.Tensor, *,
               round_to: int = 1, ignored: tuple[str, ...] = (),
               calibration: torch.Tensor | None = None) -> nn.Module:
    """Copy ``model`` and apply every technique of ``plan`` in ``registry.ORDER``.

    ``calibration``: inputs for data-aware steps (activation ranges, Taylor importance);
    ``example`` is used when it is None.

    >>> compressed = apply_plan(student, plan, torch.zeros(1, 1, 8, 8))  # doctest: +SKIP
    """
    _check_layers(model, plan)
    out = copy.deepcopy(model)
    ctx = ApplyContext(example=example, round_to=round_to, ignored=ignored,
                       calibration=calibration)
    was_training = out.training
    out.eval()
    before = _output_shape(out, example) if plan.configs(PruneConfig) else None
    for kind, handler in handlers_in_order():
        configs = plan.configs(CONFIG_TYPES[kind])
        if configs:
            handler.apply(out, configs, ctx)
    if before is not None and (after := _output_shape(out, example)) != before:
        raise ModelError(f"the plan's pruning changed the model's output from {before} to "
                         f"{after}: it prunes the layer that writes the output (or one "
                         "coupled with it)", loc="plan",
                         hint="leave that layer out of the plan's pruning, or pass it in "
                              "ignored=(...); the search never prunes its last layer")
    out.train(was_training)
    return out


_WEIGHTED = (nn.Conv2d, nn.Linear)


def _check_layers(model: nn.Module, plan: CompressionPlan) -> None:
    """Every layer the plan names is a Conv2d or Linear of ``model`` (a low-rank pair is
    named by the layer it replaced, as in the search)."""
    modules = dict(model.named_modules())
    for fqn in plan.layers:
        module = modules.get(fqn)
        if isinstance(module, _WEIGHTED) or (       # a low-rank pair (PTQ after the fine-tune)
                isinstance(module, nn.Sequential) and len(module) == 2
                and all(isinstance(m, _WEIGHTED) for m in module)):
            continue
        layers = [n for n, m in modules.items() if isinstance(m, _WEIGHTED)]
        what = (f"is a {type(modules[fqn]).__name__}" if fqn in modules else
                "is not a layer of the model")
        raise ModelError(f"'{fqn}' {what}: a plan compresses Conv2d and Linear layers",
                         loc=f"plan.layers.{fqn}",
                         hint=did_you_mean(fqn, layers) or f"layers: {', '.join(layers[:8])}")


def _output_shape(model: nn.Module, example: torch.Tensor) -> Any:
    """The shapes of the model's output tensors (nested like the output)."""
    def shapes(y: Any) -> Any:
        if isinstance(y, torch.Tensor):
            return tuple(y.shape)
        if isinstance(y, dict):
            return {k: shapes(v) for k, v in y.items()}
        return [shapes(v) for v in y] if isinstance(y, (list, tuple)) else None

    with torch.no_grad():
        return shapes(model(example))
