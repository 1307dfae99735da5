"""Weight fake quantization with a straight-through estimator (QAT).

Each quantized layer gets a ``torch.nn.utils.parametrize`` parametrization on ``weight``:
the forward pass sees weights rounded to at most ``2**bits - 1`` levels per output channel
(symmetric, restricted range like TFLite's int8 weights); gradients pass straight through.
``bake`` replaces parametrized weights by their quantized values for export.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress.plan import QuantConfig, TechniqueConfig
from autocompress.compress.registry import ApplyContext, register_handler


def fake_quantize(weight: Tensor, bits: int, per_channel: bool = True,
                  symmetric: bool = True) -> Tensor:
    """Quantize-dequantize ``weight`` (output channel on dim 0). Not differentiable itself."""
    dims = tuple(range(1, weight.dim())) if per_channel and weight.dim() > 1 else None
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        amax = weight.abs().amax(dim=dims, keepdim=True) if dims else weight.abs().max()
        scale = torch.clamp(amax, min=1e-12) / qmax
        return torch.clamp(torch.round(weight / scale), -qmax, qmax) * scale
    lo = weight.amin(dim=dims, keepdim=True) if dims else weight.min()
    hi = weight.amax(dim=dims, keepdim=True) if dims else weight.max()
    levels = 2 ** bits - 1
    scale = torch.clamp(hi - lo, min=1e-12) / levels
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(weight / scale) + zero, 0, levels) - zero) * scale


class FakeQuant(nn.Module):
    """Parametrization: w -> w + (q(w) - w).detach()  (straight-through estimator)."""

    def __init__(self, bits: int, per_channel: bool = True, symmetric: bool = True) -> None:
        super().__init__()
        self.bits = bits
        self.per_channel = per_channel
        self.symmetric = symmetric

    def forward(self, weight: Tensor) -> Tensor:
        q = fake_quantize(weight.detach(), self.bits, self.per_channel, self.symmetric)
        return weight + (q - weight.detach())

    def extra_repr(self) -> str:
        return f"bits={self.bits}, per_channel={self.per_channel}, symmetric={self.symmetric}"


@register_handler(QuantConfig)
class QuantHandler:
    def apply(self, model: nn.Module, configs: Mapping[str, TechniqueConfig],
              ctx: ApplyContext) -> None:
        modules = dict(model.named_modules())
        for fqn, cfg in configs.items():
            if not isinstance(cfg, QuantConfig) or cfg.bits >= 32:
                continue
            parametrize.register_parametrization(
                modules[fqn], "weight", FakeQuant(cfg.bits, cfg.per_channel, cfg.symmetric))


def weight_bits(model: nn.Module) -> dict[str, int]:
    """fqn -> bits of every fake-quantized layer."""
    out: dict[str, int] = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations["weight"]:
                if isinstance(p, FakeQuant):
                    out[name] = p.bits
    return out


def bake(model: nn.Module) -> nn.Module:
    """Replace every weight parametrization (fake quant) by a plain tensor holding its
    quantized value, in place; returns ``model``.

    Unlike ``remove_parametrizations(..., leave_parametrized=True)`` this is safe on a
    deepcopy: a copy shares the dynamic ``Parametrized<Cls>`` class with its original, and
    ``remove_parametrizations`` deletes the property from that shared class, which breaks
    the original (torch 2.13: ``'ParametrizedConv2d' object has no attribute 'weight'``).
    """
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        plists = dict(module._modules["parametrizations"].items())  # type: ignore[union-attr]
        with torch.no_grad():
            values = {name: getattr(module, name).detach().clone() for name in plists}
        del module._modules["parametrizations"]
        module.__class__ = module.__class__.__bases__[0]  # this object only
        for name, value in values.items():
            original = getattr(plists[name], "original", None)
            if original is None or isinstance(original, nn.Parameter):
                module.register_parameter(name, nn.Parameter(value))
            else:
                module.register_buffer(name, value)
    return model
