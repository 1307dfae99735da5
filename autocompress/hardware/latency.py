"""Per-layer latency: LUT hit, else interpolation in channel count, else the analytic model.

Every answer says where it came from (``provenance``): ``lut`` (the key was measured),
``interp`` (linear between measured keys that differ only in channel counts) or ``analytic``
(roofline: ``max(compute, memory) + per-op overhead``, constants from the profile).

Effects modelled on purpose, because real runtimes show them:

- a bit-width the device cannot run natively runs in the next wider native format
  (int4 on an int8-only MCU runs as int8): that format sets the time and the LUT key;
- channel counts off the profile's ``align.channels`` multiple cost as if padded up;
- channel counts off ``align.fast_multiple`` (a slower kernel path) and network-input convs
  with fewer channels than it are interpolated only among LUT entries of their own kind;
- unstructured sparsity saves time only where ``formats.sparse_kernels`` is true;
- a measured profile's model-input boundary (quantize + layout change) is added once
  (``input_boundary_ms``), and off-block int8 depthwise counts split into block kernel +
  remainder channels (``_LutIndex``).

>>> from autocompress.graph import LayerInfo
>>> from autocompress.hardware.profile import load_profile
>>> conv = LayerInfo(fqn="c", op="conv2d", in_shape=(16, 32, 32), out_shape=(32, 32, 32),
...                  kernel=3, params=4608, macs=4718592)
>>> est = estimate_layer_latency(load_profile("stm32f746"), conv)
>>> est.provenance, round(est.latency_ms) > 0
('analytic', True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from autocompress.errors import ProfileError
from autocompress.graph import LayerInfo
from autocompress.hardware._lut_index import MAX_EXTRAPOLATION, _index, padded
from autocompress.hardware.formats import (
    LayerFormat,
    bytes_per_element,
    compute_format,
    format_for_bits,
    runnable_format,
)
from autocompress.hardware.keys import WEIGHTED_OPS, boundary_layer, channels, layer_key
from autocompress.hardware.spec import HardwareProfile

__all__ = ["MAX_EXTRAPOLATION", "LayerLatency", "analytic_latency_ms", "estimate_layer_latency",
           "executed_formats", "input_boundary_ms", "is_depthwise", "padded"]


@dataclass(frozen=True, kw_only=True)
class LayerLatency:
    latency_ms: float
    std_ms: float
    provenance: str               # lut | interp | analytic
    key: str                      # the LUT key of what actually runs (executed formats)


def executed_formats(profile: HardwareProfile, fmt: LayerFormat) -> tuple[str, str]:
    """(weight, activation) formats the device really runs for the requested ``fmt`` (a
    clustered layer computes with its codebook's values, not its indices)."""
    return (runnable_format(format_for_bits(fmt.value_bits), profile.formats.weights),
            runnable_format(fmt.act_format, profile.formats.activations))


def is_depthwise(layer: LayerInfo) -> bool:
    return layer.op == "conv2d" and layer.groups > 1 and layer.groups == channels(layer.in_shape)


def estimate_layer_latency(profile: HardwareProfile, layer: LayerInfo,
                           fmt: LayerFormat | None = None, *,
                           fallback: bool | None = None) -> LayerLatency:
    """Latency of one layer on ``profile`` with compression ``fmt`` (default: native).

    ``fallback`` overrides ``profile.fallback``: when False, a layer with neither a LUT entry
    nor interpolation neighbours raises ProfileError naming its key.
    """
    fmt = fmt or profile.default_format
    w_fmt, a_fmt = executed_formats(profile, fmt)
    key = layer_key(layer, w_fmt, a_fmt)
    skip = 1.0 - fmt.sparsity if (profile.formats.sparse_kernels
                                  and layer.op in WEIGHTED_OPS) else 1.0
    # a (1, k) conv's key names kernel 1: its entries and neighbours are square convs'
    entry = profile.entries.get(key) if layer.square else None
    if entry is not None:
        return LayerLatency(latency_ms=entry.mean_ms * skip, std_ms=entry.std_ms * skip,
                            provenance="lut", key=key)
    near = _index(profile).interpolate(key, profile.align.channels) \
        if profile.entries and layer.square else None
    if near is not None:
        return LayerLatency(latency_ms=near[0] * skip, std_ms=near[1] * skip,
                            provenance="interp", key=key)
    if not (profile.fallback if fallback is None else fallback) or profile.analytic is None:
        raise ProfileError(f"no LUT entry for '{key}' (layer {layer.fqn}) and fallback is off",
                           loc=profile.path or profile.name,
                           hint="add an entry for this key (measured on the device; "
                           "`autocompress profile` measures this machine only), or set "
                           "fallback: true to use the analytic model")
    ms = analytic_latency_ms(profile, layer, w_fmt, a_fmt, sparsity=fmt.sparsity)
    assert profile.analytic is not None
    return LayerLatency(latency_ms=ms, std_ms=ms * profile.analytic.rel_std,
                        provenance="analytic", key=key)


def input_boundary_ms(profile: HardwareProfile, layer: LayerInfo,
                      fmt: LayerFormat | None = None) -> float:
    """Layout/quantization boundary of the model input, read by ``layer`` (a conv) in
    ``fmt``: a measured profile stores it (``boundary|`` keys) because its conv entries have
    both boundaries subtracted; 0 where the profile has none (analytic profiles).
    """
    if layer.op != "conv2d" or not profile.entries:
        return 0.0
    a_fmt = executed_formats(profile, fmt or profile.default_format)[1]
    key = layer_key(boundary_layer(layer.in_shape), a_fmt, a_fmt)
    entry = profile.entries.get(key)
    if entry is not None:
        return entry.mean_ms
    near = _index(profile).interpolate(key, profile.align.channels)
    return near[0] if near is not None else 0.0


def analytic_latency_ms(profile: HardwareProfile, layer: LayerInfo, w_fmt: str, a_fmt: str,
                        *, sparsity: float = 0.0) -> float:
    """Roofline: ``max(MACs / MAC-rate, bytes / bandwidth) + per-op overhead``, in ms
    (activation bytes over ``act_bw_gbps`` where the profile gives one).

    ``w_fmt``/``a_fmt`` are executed (native) formats; channels are padded to alignment.
    """
    spec = profile.analytic
    if spec is None:
        raise ProfileError("profile has no analytic model", loc=profile.path or profile.name)
    align = profile.align.channels
    c_in, c_out = channels(layer.in_shape), channels(layer.out_shape)
    f_in = padded(c_in, align) / c_in if c_in else 1.0
    f_out = padded(c_out, align) / c_out if c_out else 1.0
    weighted = layer.op in WEIGHTED_OPS
    depthwise = is_depthwise(layer)
    # Depthwise: one filter per channel, so padding the channel count scales work once.
    f_work = f_out if depthwise or not weighted else f_in * f_out
    dense = 1.0 - sparsity if profile.formats.sparse_kernels and weighted else 1.0
    cf = compute_format(w_fmt, a_fmt) if weighted else a_fmt
    rate = spec.macs_per_s(cf, depthwise=depthwise)
    if rate is None:
        raise ProfileError(f"analytic model has no throughput for format '{cf}'",
                           loc=profile.path or profile.name, hint="add it to macs_per_cycle")
    compute_s = layer.macs * f_work * dense / rate
    reads = max(1, len(layer.inputs)) if layer.op in ("add", "mul") else 1
    act_bytes = (math.prod(layer.in_shape) * f_in * reads
                 + math.prod(layer.out_shape) * f_out) * bytes_per_element(a_fmt)
    weight_bytes = layer.params * f_work * dense * bytes_per_element(w_fmt) if weighted else 0.0
    act_bw = spec.act_bw_gbps or spec.mem_bw_gbps
    memory_s = act_bytes / (act_bw * 1e9) + weight_bytes / (spec.mem_bw_gbps * 1e9)
    return max(compute_s, memory_s) * 1e3 + spec.per_op_overhead_us * 1e-3
