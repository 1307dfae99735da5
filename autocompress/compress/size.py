"""Stored bytes of a compressed model, as a deployment would hold it.

Per conv/linear weight tensor, from the tensors themselves (zeros counted, distinct values
counted) and the layer's quantization: values packed at their bit-width (sub-8-bit packed,
no padding per element); a clustered layer stores ceil(log2 k)-bit indices plus a k-entry
codebook at the value bit-width; a layer with zeros may store its non-zeros plus the
cheaper of a bitmask or CSR indices, when that beats dense. Every layer also stores a bias
(BatchNorm is folded into the conv at export, so each layer has one; 4 B each, int32 or
fp32; not the first factor of a low-rank pair, which has none) and, when integer, its
scales (4 B per channel or per tensor, plus a 1 B zero point each when asymmetric: it lies
in the code range, 0..255); an activation quantizer stores a scale and a zero point (8 B).
Other parameters (BatchNorm before folding) are not counted.

>>> stored_bytes(model).total_bytes   # doctest: +SKIP
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from autocompress.compress.actquant import act_bits
from autocompress.compress.cluster import Cluster
from autocompress.compress.plan import ClusterConfig, CompressionPlan, LowRankConfig, QuantConfig
from autocompress.compress.quantize import FakeQuant
from autocompress.compress.registry import weight_parametrizations
from autocompress.hardware.memory import CSR_INDEX_BYTES, CSR_ROWPTR_BYTES

BIAS_BYTES = 4        # B per output channel: int32 (integer layers) or fp32 bias
SCALE_BYTES = 4       # B per scale (fp32)
ZERO_POINT_BYTES = 1  # B per zero point (uint8: within the 0..2**bits-1 code range)
ACT_QUANT_BYTES = 8   # B per quantized activation: scale + zero point


@dataclass(frozen=True, kw_only=True)
class TensorBytes:
    fqn: str
    params: int           # weight elements
    rows: int             # output channels
    bits: int             # bits per stored value (32 = float)
    nonzero: int
    codebook: int         # shared values (0 = not clustered)
    encoding: str         # dense | bitmask | csr  (+ "+codebook")
    weight_bytes: float   # values (+ indices, + codebook)
    extra_bytes: float    # bias, scales, zero points, activation quant params

    @property
    def total_bytes(self) -> float:
        return self.weight_bytes + self.extra_bytes


@dataclass(frozen=True, kw_only=True)
class SizeReport:
    layers: tuple[TensorBytes, ...]

    @property
    def total_bytes(self) -> float:
        return sum(t.total_bytes for t in self.layers)

    @property
    def params(self) -> int:
        return sum(t.params for t in self.layers)


def encode_bytes(params: int, nonzero: int, bits: float, rows: int,
                 dense_bits: float | None = None) -> tuple[float, str]:
    """Cheapest of dense, non-zeros + bitmask, non-zeros + CSR: (bytes, encoding). Dense
    takes ``dense_bits`` per value when given (codebook indices with zeros: zero needs a
    code of its own)."""
    options = {"dense": params * (bits if dense_bits is None else dense_bits) / 8}
    if nonzero < params:
        values = nonzero * bits / 8
        options["bitmask"] = values + params / 8
        options["csr"] = values + nonzero * CSR_INDEX_BYTES + (rows + 1) * CSR_ROWPTR_BYTES
    enc = min(options, key=options.__getitem__)
    return float(options[enc]), enc


def layer_config(plan: CompressionPlan | None, fqn: str, cls: type) -> object | None:
    """The ``cls`` config of layer ``fqn`` in ``plan``; a low-rank factor inherits its layer's."""
    if plan is None:
        return None
    configs = plan.configs(cls)
    parent = fqn.rpartition(".")[0]
    return configs.get(fqn, configs.get(parent))   # a low-rank factor inherits its layer's


def layer_bytes(fqn: str, layer: nn.Module, plan: CompressionPlan | None = None,
                act: Mapping[str, int] | None = None) -> TensorBytes:
    plist = weight_parametrizations(layer)
    fq = next((p for p in plist if isinstance(p, FakeQuant)), None)
    qcfg = layer_config(plan, fqn, QuantConfig)
    bits, per_channel, symmetric = 32, True, True
    if fq is not None:
        bits, per_channel, symmetric = fq.bits, fq.per_channel, fq.symmetric
    elif isinstance(qcfg, QuantConfig):
        bits, per_channel, symmetric = qcfg.bits, qcfg.per_channel, qcfg.symmetric
    with torch.no_grad():
        weight = layer.weight.detach()
    params, rows = weight.numel(), int(weight.shape[0])
    nonzero = int(torch.count_nonzero(weight))
    clustered = any(isinstance(p, Cluster) for p in plist) or \
        isinstance(layer_config(plan, fqn, ClusterConfig), ClusterConfig)
    codebook = int(torch.unique(weight[weight != 0]).numel()) if clustered else 0
    value_bits: float = bits
    index_bits = max(1, math.ceil(math.log2(codebook))) if codebook > 1 else 1
    use_codebook = clustered and index_bits < bits
    if use_codebook:
        value_bits = index_bits
    zero_code = max(1, math.ceil(math.log2(codebook + 1))) \
        if use_codebook and nonzero < params else None
    size, enc = encode_bytes(params, nonzero, value_bits, rows, zero_code)
    if use_codebook:
        size += codebook * bits / 8
        enc += "+codebook"
    first_factor = plan is not None and fqn.endswith(".0") and \
        isinstance(plan.configs(LowRankConfig).get(fqn[:-2]), LowRankConfig)
    extra = 0 if first_factor else rows * BIAS_BYTES     # a low-rank first factor: no bias
    if bits < 32:
        scales = rows if per_channel and weight.dim() > 1 and not clustered else 1
        extra += scales * (SCALE_BYTES + (0 if symmetric else ZERO_POINT_BYTES))
    if act and fqn in act:
        extra += ACT_QUANT_BYTES
    return TensorBytes(fqn=fqn, params=params, rows=rows, bits=bits, nonzero=nonzero,
                       codebook=codebook if use_codebook else 0, encoding=enc,
                       weight_bytes=size, extra_bytes=float(extra))


def stored_bytes(model: nn.Module, plan: CompressionPlan | None = None) -> SizeReport:
    """Per-layer stored bytes of ``model`` (parametrized or baked). Bits come from the live
    fake quant, else from ``plan`` (a baked model keeps no parametrization)."""
    act = act_bits(model)
    return SizeReport(layers=tuple(
        layer_bytes(name, m, plan, act) for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))))
