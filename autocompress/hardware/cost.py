"""The cost model: a ModelGraph + per-layer formats -> latency, Flash and peak SRAM.

Pure arithmetic over the graph (no torch), cheap enough to run before every trial.

>>> from autocompress.graph import LayerInfo, ModelGraph
>>> g = ModelGraph(input_shape=(64,), layers=(
...     LayerInfo(fqn="fc", op="linear", in_shape=(64,), out_shape=(10,), params=640,
...               bias=10, macs=640),))
>>> est = CostModel("stm32f746").estimate(g, {"fc": LayerFormat(weight_bits=4)})
>>> est.summary()["flash_kb"] == (320 + 40 + 40) / 1024
True
>>> check_budget(est, {"max_flash_kb": 1.0})["max_flash_kb"] < 0
True
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from autocompress.errors import ConfigError, did_you_mean
from autocompress.graph import ModelGraph
from autocompress.hardware.formats import LayerFormat, bits_of
from autocompress.hardware.latency import (
    estimate_layer_latency,
    executed_formats,
    input_boundary_ms,
)
from autocompress.hardware.memory import KB, layer_flash_bytes, peak_sram, stored_dense
from autocompress.hardware.profile import load_profile
from autocompress.hardware.spec import HardwareProfile

__all__ = ["BUDGET_KEYS", "CostEstimate", "CostModel", "LayerCost", "LayerFormat",
           "check_budget"]

COST_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class LayerCost:
    fqn: str
    op: str
    latency_ms: float
    std_ms: float
    flash_kb: float
    provenance: str               # lut | interp | analytic
    key: str                      # LUT key of what runs (executed formats)


@dataclass(frozen=True, kw_only=True)
class CostEstimate:
    """Whole-model cost on one device. ``provenance`` counts layers per source."""

    profile: str
    latency_ms: float
    std_ms: float
    flash_kb: float
    peak_sram_kb: float
    peak_at: str                  # fqn of the layer step where live SRAM peaks
    layers: tuple[LayerCost, ...] = ()
    provenance: Mapping[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """The three budgeted quantities: ``latency_ms``, ``flash_kb``, ``peak_sram_kb``."""
        return {"latency_ms": self.latency_ms, "flash_kb": self.flash_kb,
                "peak_sram_kb": self.peak_sram_kb}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (with ``version`` and the per-layer list)."""
        out = asdict(self)
        out["layers"] = [asdict(layer) for layer in self.layers]
        out["provenance"] = dict(self.provenance)
        return {"version": COST_VERSION, **out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostEstimate:
        body = {k: v for k, v in data.items() if k != "version"}
        body["layers"] = tuple(LayerCost(**layer) for layer in body.get("layers", ()))
        body["provenance"] = dict(body.get("provenance", {}))
        return cls(**body)


class CostModel:
    """Estimates latency / Flash / peak SRAM of a ModelGraph on one hardware profile.

    >>> CostModel("stm32f746").profile.name
    'stm32f746'
    """

    def __init__(self, profile: HardwareProfile | str, *, fallback: bool | None = None) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.fallback = fallback

    def deployed(self, formats: Mapping[str, LayerFormat]) -> dict[str, LayerFormat]:
        """``formats`` with their float (32-bit) widths at the profile's ``float_bits``: a
        layer a plan or an int8 file keeps float runs in the device's own float format
        (fp16 on a Jetson, whose int8 would otherwise look faster than the float it
        replaces). An explicit ``fp32`` (``predict --format fp32``) is not passed here."""
        bits = self.profile.float_bits
        if bits == 32:
            return dict(formats)
        def width(b: int) -> int:
            return bits if b == 32 else b
        return {name: replace(f, weight_bits=width(f.weight_bits), act_bits=width(f.act_bits),
                              codebook_bits=width(f.codebook_bits))
                for name, f in formats.items()}

    def estimate(self, graph: ModelGraph, formats: Mapping[str, LayerFormat] | None = None,
                 default: LayerFormat | None = None, *, strict: bool = False) -> CostEstimate:
        """Cost of ``graph`` with per-layer ``formats`` (fqn -> LayerFormat).

        Layers not in ``formats`` use ``default`` (itself defaulting to the profile's
        preferred native format); a weightless layer (add, pool, ...) not in ``formats``
        runs in the format of the layer that wrote its input (the widest, for several
        inputs): an add between int8 convs runs int8 whatever the device's default.
        Weightless layers take only ``act_bits`` from their format.
        Names in ``formats`` that the graph lacks (a shallower candidate architecture) are
        ignored, or raise ValueError when ``strict``. A module called more than once (its
        calls ``m``, ``m#1``, ...) has its format on every call and its weights stored once.
        """
        formats = formats or {}
        default = default or self.profile.default_format
        unknown = set(formats) - {layer.fqn for layer in graph.layers} if strict else set()
        if unknown:
            name = min(unknown)
            hint = did_you_mean(name, [layer.fqn for layer in graph.layers])
            raise ValueError(f"formats name layers not in the graph: {sorted(unknown)}"
                             + (f" ({hint})" if hint else ""))
        costs: list[LayerCost] = []
        act_bits: dict[str, int] = {}
        counts: dict[str, int] = {}
        total_ms = var_ms = sys_std_ms = flash = 0.0
        written: dict[str, tuple[int, LayerFormat]] = {}   # tensor -> (act bits, format)
        for layer in graph.layers:
            base, _, again = layer.fqn.partition("#")    # "m#1": the 2nd call of module m
            fmt = formats.get(layer.fqn, formats.get(base))
            if fmt is None:
                inputs = [written[t] for t in layer.inputs if t in written]
                fmt = default if layer.compressible or not inputs else max(
                    inputs, key=lambda w: w[0])[1]
            lat = estimate_layer_latency(self.profile, layer, fmt, fallback=self.fallback)
            act_bits[layer.fqn] = bits_of(executed_formats(self.profile, fmt)[1])
            written[layer.output] = (act_bits[layer.fqn], fmt)
            layer_flash = 0.0 if again else layer_flash_bytes(   # stored once
                layer, fmt if self.profile.formats.packed_weights else stored_dense(fmt))
            flash += layer_flash
            total_ms += lat.latency_ms
            # Measurement noise is independent per layer; analytic-model error is not.
            if lat.provenance == "analytic":
                sys_std_ms += lat.std_ms
            else:
                var_ms += lat.std_ms ** 2
            counts[lat.provenance] = counts.get(lat.provenance, 0) + 1
            costs.append(LayerCost(fqn=layer.fqn, op=layer.op, latency_ms=lat.latency_ms,
                                   std_ms=lat.std_ms, flash_kb=layer_flash / KB,
                                   provenance=lat.provenance, key=lat.key))
        peak = peak_sram(graph, act_bits)
        total_ms += self.profile.runtime.overhead_ms   # once per inference, not per layer
        if graph.layers:                               # the input's quantize/layout change
            first = graph.layers[0]
            total_ms += input_boundary_ms(self.profile, first, formats.get(first.fqn, default))
        return CostEstimate(profile=self.profile.name, latency_ms=total_ms,
                            std_ms=math.sqrt(var_ms) + sys_std_ms, flash_kb=flash / KB,
                            peak_sram_kb=peak.peak_bytes / KB, peak_at=peak.fqn,
                            layers=tuple(costs), provenance=counts)


# budget key -> CostEstimate.summary() field it limits
BUDGET_KEYS = {"max_latency_ms": "latency_ms", "max_flash_kb": "flash_kb",
               "max_peak_sram_kb": "peak_sram_kb"}


def check_budget(estimate: CostEstimate, budget: Mapping[str, float]) -> dict[str, float]:
    """``value - limit`` per budget key (<= 0 satisfied: Optuna's constraint convention).

    >>> est = CostEstimate(profile="p", latency_ms=5.0, std_ms=0.0, flash_kb=100.0,
    ...                    peak_sram_kb=50.0, peak_at="x")
    >>> check_budget(est, {"max_latency_ms": 10, "max_flash_kb": 64})
    {'max_latency_ms': -5.0, 'max_flash_kb': 36.0}
    """
    values = estimate.summary()
    out: dict[str, float] = {}
    for key, limit in budget.items():
        if key not in BUDGET_KEYS:
            raise ConfigError(f"unknown budget key '{key}'", loc="budget",
                              hint=did_you_mean(key, BUDGET_KEYS)
                              or f"budget keys: {', '.join(BUDGET_KEYS)}")
        out[key] = float(values[BUDGET_KEYS[key]] - float(limit))
    return out
