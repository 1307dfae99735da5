"""Activation fake quantization: the input of each chosen layer is quantized per tensor,
asymmetric (uint), at 4..8 bits, with a straight-through estimator.

The quantizer is a child module ``<layer>.act_quant`` (its range ``lo``/``hi`` are buffers,
so they travel in the state dict and a plan replays with the trained ranges) called by a
forward pre-hook that is a plain function (deep copies keep working). Ranges are
calibrated on data at apply time (min-max or a percentile); in QAT mode they then follow an
exponential moving average of the batch ranges while training, in PTQ mode they are frozen.

ONNX export skips these quantizers (they are identities while exporting): torch cannot
export sub-8-bit fake quant, and Round/Clip nodes would run in float, slower; the int8 QDQ
export quantizes activations itself at 8 bits, over the ranges calibrated here where a layer
has them (``input_ranges``), elsewhere over its own calibration. Compare an ONNX file
with ``remove_act_quant(copy)`` of the model, not with the fake-quantized one.

>>> attach_act_quant(model, {"stem.conv": (8, "minmax", "qat")})   # doctest: +SKIP
>>> calibrate_act_quant(model, x_calib)                              # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from autocompress._trace import forward_calls

ATTR = "act_quant"
EMA = 0.9            # weight of the old range per training step (QAT), as torch's observers
PERCENTILE = 0.999   # quantile kept by ``act_calib: percentile`` (both tails)
MAX_SAMPLES = 1 << 20  # elements per tensor used for a quantile (torch.quantile limit 2**24)


def _range(x: Tensor, calib: str) -> tuple[Tensor, Tensor]:
    flat = x.detach().flatten().float()
    if calib == "percentile":
        if flat.numel() > MAX_SAMPLES:     # on the tensor's device: QAT runs on a GPU too
            flat = flat[torch.linspace(0, flat.numel() - 1, MAX_SAMPLES,
                                       device=flat.device).long()]
        q = torch.quantile(flat, torch.tensor([1 - PERCENTILE, PERCENTILE], device=flat.device))
        return q[0], q[1]
    return flat.min(), flat.max()


def _exporting() -> bool:
    compiler = getattr(torch, "compiler", None)
    dynamo = bool(compiler is not None and hasattr(compiler, "is_exporting")
                  and compiler.is_exporting())
    return bool(torch.onnx.is_in_onnx_export()) or dynamo


class ActQuant(nn.Module):
    """Per-tensor asymmetric fake quant of a tensor at ``bits``; 0.0 stays exact."""

    def __init__(self, bits: int, calib: str = "minmax", mode: str = "qat") -> None:
        super().__init__()
        self.bits, self.calib, self.mode = bits, calib, mode
        self.observing = False
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))

    def observe(self, x: Tensor) -> None:
        """Widen the range to ``x``'s (a module called twice in a forward gets both calls':
        the last call's range alone clipped the first's); calibration starts it at 0."""
        lo, hi = _range(x, self.calib)
        self.lo.copy_(torch.minimum(self.lo, torch.clamp(lo, max=0.0)))
        self.hi.copy_(torch.maximum(self.hi, torch.clamp(hi, min=0.0)))

    def forward(self, x: Tensor) -> Tensor:
        if _exporting():   # the fp32 ONNX stays float; the int8 QDQ export quantizes inputs
            return x
        if self.observing:
            self.observe(x)
        elif self.training and self.mode == "qat":
            with torch.no_grad():
                lo, hi = _range(x, self.calib)
                self.lo.mul_(EMA).add_((1 - EMA) * torch.clamp(lo, max=0.0))
                self.hi.mul_(EMA).add_((1 - EMA) * torch.clamp(hi, min=0.0))
        levels = 2 ** self.bits - 1
        scale = torch.clamp(self.hi - self.lo, min=1e-8) / levels
        zero = torch.round(-self.lo / scale)
        code = x / scale + zero
        q = (torch.clamp(torch.round(code), 0, levels) - zero) * scale
        # straight-through inside the range, no gradient where the clamp cuts (as torch's
        # FakeQuantize): a value past the range does not move the output
        inside = ((code >= -0.5) & (code <= levels + 0.5)).to(x.dtype)
        return q.detach() + (x - x.detach()) * inside

    def extra_repr(self) -> str:
        return f"bits={self.bits}, calib={self.calib}, mode={self.mode}"


def _pre_hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (getattr(module, ATTR)(args[0]), *args[1:])


def attach_act_quant(model: nn.Module, layers: Mapping[str, tuple[int, str, str]]) -> None:
    """Quantize the input of each layer ``fqn -> (bits, calib, mode)``."""
    for fqn, (bits, calib, mode) in layers.items():
        layer = model.get_submodule(fqn)
        if hasattr(layer, ATTR):
            raise ValueError(f"{fqn} already has activation quantization")
        layer.add_module(ATTR, ActQuant(bits, calib, mode))
        layer.register_forward_pre_hook(_pre_hook)


@torch.no_grad()
def calibrate_act_quant(model: nn.Module, data: Tensor, batch: int = 256,
                        layers: Collection[str] | None = None) -> None:
    """Set every activation range (or those of ``layers`` only: the others, e.g. ranges
    learned in QAT, are kept) from ``data`` (min of lows, max of highs over batches; each
    layer sees inputs already quantized upstream, as at inference)."""
    quants = [m for m in model.modules() if isinstance(m, ActQuant)] if layers is None \
        else [getattr(model.get_submodule(fqn), ATTR) for fqn in layers]
    lo = {id(q): torch.tensor(float("inf")) for q in quants}
    hi = {id(q): torch.tensor(float("-inf")) for q in quants}
    was = model.training
    model.eval()
    for start in range(0, len(data), batch):
        for q in quants:
            q.observing = True
            q.lo.zero_()
            q.hi.zero_()
        model(data[start:start + batch])
        for q in quants:
            q.observing = False
            lo[id(q)] = torch.minimum(lo[id(q)], q.lo)
            hi[id(q)] = torch.maximum(hi[id(q)], q.hi)
    for q in quants:
        q.lo.copy_(lo[id(q)])
        q.hi.copy_(hi[id(q)])
    model.train(was)


def act_bits(model: nn.Module) -> dict[str, int]:
    """fqn -> input activation bits of every layer with activation quantization."""
    return {name: m.act_quant.bits for name, m in model.named_modules()
            if isinstance(getattr(m, ATTR, None), ActQuant)}


def unused_ranges(state: Mapping[str, Tensor], model: nn.Module) -> list[str]:
    """Keys of ``state`` holding an activation range (``<layer>.act_quant.lo``/``hi``) for a
    quantizer ``model`` does not have. Weights trained before a float layer (``bits: 32``)
    stopped getting an activation quantizer carry them; the layer runs float now."""
    own = model.state_dict()
    return [k for k in state if k not in own and k.rsplit(".", 2)[-2:] in ([ATTR, "lo"],
                                                                         [ATTR, "hi"])]


def input_ranges(model: nn.Module, example: Tensor
                 ) -> list[tuple[tuple[int, ...], float, float] | None]:
    """Per conv/linear layer, in execution order on ``example``: (weight shape, lo, hi) of
    its calibrated input range, or None when it has no activation quantizer. Hands the
    ranges calibrated in torch to the int8 ONNX export (``quant_ort.quantize_int8``)."""
    out: list[tuple[tuple[int, ...], float, float] | None] = []
    for module, _, _ in forward_calls(model, example, (nn.Conv2d, nn.Linear)):
        q = getattr(module, ATTR, None)
        out.append((tuple(module.weight.shape), float(q.lo), float(q.hi))
                   if isinstance(q, ActQuant) else None)
    return out


def layer_order(model: nn.Module, example: Tensor) -> list[str]:
    """Names of the conv/linear layers in execution order on ``example`` (the order of the
    exported graph's weighted nodes, as for ``input_ranges``)."""
    names = {m: n for n, m in model.named_modules()}
    return [names[m] for m, _, _ in forward_calls(model, example, (nn.Conv2d, nn.Linear))]


def remove_act_quant(model: nn.Module) -> nn.Module:
    """Drop every activation quantizer (module and hook) in place; returns ``model``.

    For ONNX export: the fake-quant ops would be exported as Round/Clip nodes that run in
    float (slower, not int8); the int8 QDQ export quantizes activations itself."""
    for module in model.modules():
        if isinstance(getattr(module, ATTR, None), ActQuant):
            del module._modules[ATTR]
            for key, hook in list(module._forward_pre_hooks.items()):
                if hook is _pre_hook:
                    del module._forward_pre_hooks[key]
    return model
