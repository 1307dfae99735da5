"""Weight fake quantization: QAT with a straight-through estimator, or PTQ (frozen).

Each quantized layer gets a ``torch.nn.utils.parametrize`` parametrization on ``weight``:
the forward pass sees weights rounded to at most ``2**bits - 1`` levels per output channel
(symmetric: restricted range like TFLite's int8 weights) or per tensor, symmetric or
asymmetric (zero point; 0.0 stays exact), over the min-max range or an MSE-optimal clipped
range. In QAT gradients pass straight through; in PTQ the weight gets none. Activation
quantization lives in ``actquant``. ``bake`` replaces parametrized weights by their values.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress.actquant import attach_act_quant, calibrate_act_quant
from autocompress.compress.cluster import is_clustered
from autocompress.compress.plan import QuantConfig, TechniqueConfig
from autocompress.compress.registry import (
    ApplyContext,
    parametrized,
    register_handler,
    weighted_layers,
)


def fake_quantize(weight: Tensor, bits: int, per_channel: bool = True,
                  symmetric: bool = True, clip: Tensor | float = 1.0) -> Tensor:
    """Quantize-dequantize ``weight`` (output channel on dim 0). Not differentiable itself.

    ``clip`` (scalar or per channel, in (0, 1]) shrinks the range before rounding."""
    dims = tuple(range(1, weight.dim())) if per_channel and weight.dim() > 1 else None
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        amax = weight.abs().amax(dim=dims, keepdim=True) if dims else weight.abs().max()
        scale = torch.clamp(amax * clip, min=1e-12) / qmax
        return torch.clamp(torch.round(weight / scale), -qmax, qmax) * scale
    lo = weight.amin(dim=dims, keepdim=True) if dims else weight.min()
    hi = weight.amax(dim=dims, keepdim=True) if dims else weight.max()
    lo, hi = torch.clamp(lo, max=0.0) * clip, torch.clamp(hi, min=0.0) * clip  # 0 exact
    levels = 2 ** bits - 1
    scale = torch.clamp(hi - lo, min=1e-12) / levels
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(weight / scale) + zero, 0, levels) - zero) * scale


CLIP_GRID = tuple(1.0 - 0.05 * i for i in range(11))   # range fractions tried by MSE calib


def mse_clip(weight: Tensor, bits: int, per_channel: bool = True,
             symmetric: bool = True) -> Tensor:
    """Per-channel (or per-tensor) range fraction from ``CLIP_GRID`` that minimises the
    squared quantization error of ``weight``."""
    channel = per_channel and weight.dim() > 1
    shape = (-1,) + (1,) * (weight.dim() - 1) if channel else ()
    best = torch.ones(weight.shape[0]).reshape(shape) if channel else torch.tensor(1.0)
    best_err = torch.full_like(best, float("inf"))
    for c in CLIP_GRID:
        err = (fake_quantize(weight, bits, per_channel, symmetric, c) - weight) ** 2
        err = err.flatten(1).sum(1).reshape(shape) if channel else err.sum()
        better = err < best_err
        best = torch.where(better, torch.full_like(best, c), best)
        best_err = torch.where(better, err, best_err)
    return best


class FakeQuant(nn.Module):
    """Parametrization: w -> w + (q(w) - w).detach() (QAT: straight-through estimator), or
    w -> q(w) without gradient to w (PTQ: the weight is frozen at its quantized value)."""

    def __init__(self, bits: int, per_channel: bool = True, symmetric: bool = True,
                 mode: str = "qat", clip: Tensor | None = None) -> None:
        super().__init__()
        self.bits = bits
        self.per_channel = per_channel
        self.symmetric = symmetric
        self.mode = mode
        self.register_buffer("clip", torch.tensor(1.0) if clip is None else clip.clone())

    def forward(self, weight: Tensor) -> Tensor:
        q = fake_quantize(weight.detach(), self.bits, self.per_channel, self.symmetric,
                          self.clip)
        if self.mode == "ptq":
            return q
        return weight + (q - weight.detach())

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, per_channel={self.per_channel}, "
                f"symmetric={self.symmetric}, mode={self.mode}")


@register_handler(QuantConfig)
class QuantHandler:
    """Weight fake quant (``bits``) on each layer, then activation fake quant (``act_bits``)
    on its inputs, with activation ranges calibrated on ``ctx.data``."""

    def apply(self, model: nn.Module, configs: Mapping[str, TechniqueConfig],
              ctx: ApplyContext) -> None:
        act: dict[str, QuantConfig] = {}
        for fqn, cfg in configs.items():
            if not isinstance(cfg, QuantConfig):
                continue
            for name, layer in weighted_layers(model, fqn):
                if cfg.bits >= 32:   # a float layer runs float activations (as costed, exported)
                    continue
                if cfg.act_bits < 32:
                    act[name] = cfg
                # A clustered layer shares one codebook: quantize it with one scale, or the
                # k shared values would split into k per channel.
                per_channel = cfg.per_channel and not is_clustered(layer)
                clip = None
                if cfg.calib == "mse":
                    with torch.no_grad():
                        clip = mse_clip(layer.weight, cfg.bits, per_channel, cfg.symmetric)
                parametrize.register_parametrization(
                    layer, "weight",
                    FakeQuant(cfg.bits, per_channel, cfg.symmetric, cfg.mode, clip))
        if act:
            attach_act_quant(model, {n: (c.act_bits, c.act_calib, c.mode) for n, c in act.items()})
            # only the quantizers attached here: a model quantized before (PTQ after a QAT
            # fine-tune, train.finetune) keeps the ranges it learned
            calibrate_act_quant(model, ctx.data, layers=act)


def weight_bits(model: nn.Module) -> dict[str, int]:
    """fqn -> bits of every fake-quantized layer."""
    return {name: p.bits for name, p in parametrized(model, FakeQuant).items()}


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
