"""A plan's per-layer formats as the cost model sees them (a pure function of the plan).

>>> from autocompress.compress.plan import CompressionPlan, QuantConfig
>>> plan = CompressionPlan(layers={"fc": (QuantConfig(bits=4),)})
>>> plan_formats(plan)["fc"].weight_bits
4
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from autocompress.compress.plan import (
    ClusterConfig,
    CompressionPlan,
    LowRankConfig,
    QuantConfig,
    SparsityConfig,
)
from autocompress.hardware.formats import LayerFormat

if TYPE_CHECKING:
    from autocompress.graph import ModelGraph
    from autocompress.hardware import CostEstimate, CostModel


def plan_cost(cost_model: CostModel, plan: CompressionPlan, graph: ModelGraph) -> CostEstimate:
    """The plan's cost as the search records it (``graph``: the compressed model's): layers
    it leaves alone in :func:`unquantized_format`, float ones in the profile's float format
    (``CostModel.deployed``)."""
    alone = unquantized_format(plan, cost_model.profile.default_format)
    return cost_model.estimate(graph, cost_model.deployed(plan_formats(plan, alone)), alone)


def unquantized_format(plan: CompressionPlan, native: LayerFormat) -> LayerFormat:
    """The format a layer without a quant config is costed in: int8 when the plan quantizes
    some layer to integer bits, since export's ``model.int8.onnx`` then quantizes every layer
    the plan does not keep at 32 bits (post-training: the search trains it float; on a phone,
    whose native format is fp32, such a layer was costed fp32, its activations 4x the
    file's); else the device's ``native`` one, the float ``model.onnx`` (whose int8 copy is
    then the whole model quantized after training, costed by export on its own).

    >>> unquantized_format(CompressionPlan(layers={"fc": (QuantConfig(bits=4),)}),
    ...                    LayerFormat(weight_bits=32, act_bits=32)).weight_bits
    8
    """
    integer = any(isinstance(c, QuantConfig) and c.bits < 32
                  for c in plan.configs(QuantConfig).values())
    return LayerFormat(weight_bits=8, act_bits=8) if integer else native


def plan_formats(plan: CompressionPlan, default: LayerFormat | None = None
                 ) -> dict[str, LayerFormat]:
    """Per-layer weight/activation formats and sparsity the cost model sees (32 bits = float).

    A layer the plan does not quantize runs in ``default`` (the device's native format, as
    for a layer the plan leaves alone; float when None): sparsity or clustering alone does
    not move it off int8 on an MCU (it did: a 50%-sparse layer cost fp32 time and Flash).

    Activation bits: the layer's ``act_bits`` when it quantizes weights and activations,
    else 8 for an integer layer (the export runs it int8) and 32 for a float one, whatever
    its ``act_bits`` (the export keeps a 32-bit layer float, input included: no runtime has
    float-weight, int8-activation kernels). A clustered layer (integer
    or float) stores ceil(log2 k)-bit indices when that is narrower than its bits, plus its
    codebook (``codebook`` = k entries of ``codebook_bits`` = its bits); either way it has one
    per-tensor scale (``per_channel`` False), as has ``QuantConfig.per_channel=False``
    (``compress.size`` counts the same). A low-rank layer's
    formats also go to its two factors (``<fqn>.0``, ``<fqn>.1``); names a graph lacks are
    ignored by the cost model.
    Global-scope sparsity is costed at the ratio it applies on every layer it covers
    (``CompressionPlan.with_global_lead``).
    """
    out: dict[str, LayerFormat] = {}
    plan = plan.with_global_lead()       # a hand-made plan may give each its own ratio
    quant, sparse = plan.configs(QuantConfig), plan.configs(SparsityConfig)
    cluster, lowrank = plan.configs(ClusterConfig), plan.configs(LowRankConfig)
    for fqn in sorted(set(quant) | set(sparse) | set(cluster)):
        q, sp, cl = quant.get(fqn), sparse.get(fqn), cluster.get(fqn)
        bits = q.bits if isinstance(q, QuantConfig) else 32
        act = 32 if bits == 32 else 8
        if isinstance(q, QuantConfig) and q.act_bits < 32 and bits < 32:
            act = q.act_bits
        if not isinstance(q, QuantConfig) and default is not None:
            bits, act = default.weight_bits, default.act_bits
        codebook = codebook_bits = 0
        if isinstance(cl, ClusterConfig):
            index_bits = max(1, math.ceil(math.log2(cl.k)))
            if index_bits < bits:
                codebook, codebook_bits, bits = cl.k, bits, index_bits
        per_channel = not isinstance(cl, ClusterConfig) and \
            (q.per_channel if isinstance(q, QuantConfig) else True)
        fmt = LayerFormat(weight_bits=bits, act_bits=act,
                          sparsity=sp.ratio if isinstance(sp, SparsityConfig) else 0.0,
                          codebook=codebook, codebook_bits=codebook_bits,
                          per_channel=per_channel,
                          symmetric=q.symmetric if isinstance(q, QuantConfig) else True)
        out[fqn] = fmt
        if fqn in lowrank:
            out[f"{fqn}.0"] = out[f"{fqn}.1"] = fmt
    return out
