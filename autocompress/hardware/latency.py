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

import bisect
import math
import weakref
from dataclasses import dataclass
from typing import Any

from autocompress.errors import ProfileError
from autocompress.graph import LayerInfo
from autocompress.hardware._lut2d import fit_local
from autocompress.hardware.formats import (
    LayerFormat,
    bytes_per_element,
    compute_format,
    runnable_format,
)
from autocompress.hardware.keys import (
    WEIGHTED_OPS,
    boundary_layer,
    channels,
    layer_key,
    parse_key,
    spatial,
)
from autocompress.hardware.spec import HardwareProfile, LutEntry

# Extrapolate from LUT neighbours at most this far outside the measured channel range
# (factor on the MAC-proportional coordinate); beyond it the analytic model answers.
MAX_EXTRAPOLATION = 2.0


@dataclass(frozen=True, kw_only=True)
class LayerLatency:
    latency_ms: float
    std_ms: float
    provenance: str               # lut | interp | analytic
    key: str                      # the LUT key of what actually runs (executed formats)


def executed_formats(profile: HardwareProfile, fmt: LayerFormat) -> tuple[str, str]:
    """(weight, activation) formats the device really runs for the requested ``fmt``."""
    return (runnable_format(fmt.weight_format, profile.formats.weights),
            runnable_format(fmt.act_format, profile.formats.activations))


def is_depthwise(layer: LayerInfo) -> bool:
    return layer.op == "conv2d" and layer.groups > 1 and layer.groups == channels(layer.in_shape)


def padded(count: int, align: int) -> int:
    """Channel count the kernels actually process: rounded up to ``align``.

    Counts below ``align`` (a 1- or 3-channel network input) are left alone: CMSIS-NN-style
    kernels fold them into the im2col row instead of padding each pixel.
    """
    if align <= 1 or count < align:
        return count
    return -(-count // align) * align


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
    entry = profile.entries.get(key)
    if entry is not None:
        return LayerLatency(latency_ms=entry.mean_ms * skip, std_ms=entry.std_ms * skip,
                            provenance="lut", key=key)
    near = _index(profile).interpolate(key, profile.align.channels) if profile.entries else None
    if near is not None:
        return LayerLatency(latency_ms=near[0] * skip, std_ms=near[1] * skip,
                            provenance="interp", key=key)
    if not (profile.fallback if fallback is None else fallback) or profile.analytic is None:
        raise ProfileError(f"no LUT entry for '{key}' (layer {layer.fqn}) and fallback is off",
                           loc=profile.path or profile.name,
                           hint="measure this shape with `autocompress profile`, or set "
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


def _coordinate(op: str, c_in: int, c_out: int, groups: int, depthwise: bool) -> float:
    """A MAC-proportional position in channel space: cin/g * cout for weighted ops."""
    if op in WEIGHTED_OPS and not depthwise:
        return c_in / groups * c_out
    return float(c_out)


class _LutIndex:
    """LUT entries grouped by everything except channel counts, sorted by coordinate.

    ``int8_dw`` = (fast, block) (``AlignSpec.int8_dw_fast``/``int8_dw_block``): int8
    depthwise convs run a fast kernel at multiples of ``fast``, a ``block``-channel kernel
    otherwise, and each of the ``c mod block`` remaining channels at a per-channel cost; an
    off-block count is costed as the block kernel at ``block * (c // block)`` channels plus
    that remainder, the per-channel cost taken from the measured off-block entries.
    ``fp32_block`` (``AlignSpec.fp32_block``): fp32 convs on the fast path are located, and
    2-D fitted, at channel counts padded to this block (their time steps at its multiples).
    """

    def __init__(self, entries: dict[str, LutEntry], fast_multiple: int = 1,
                 int8_dw: tuple[int, int] | None = None, fp32_block: int = 0) -> None:
        self.fast_multiple = fast_multiple
        self.int8_dw = int8_dw
        self.fp32_block = fp32_block
        groups: dict[tuple[Any, ...], list[tuple[float, LutEntry]]] = {}
        planes: dict[tuple[Any, ...], list[tuple[float, float, float]]] = {}
        for key, entry in entries.items():
            p = parse_key(key)
            group, x = self._locate(p, 1)
            groups.setdefault(group, []).append((x, entry))
            block = self._block(p, group, 1)
            planes.setdefault(group, []).append((padded(channels(p["in"]), block),
                                                 padded(channels(p["out"]), block),
                                                 entry.mean_ms))
        self.groups = {g: sorted(v, key=lambda t: t[0]) for g, v in groups.items()}
        # groups of regular convs / linears with off-diagonal points get the 2-D fit
        self.planes = {g: v for g, v in planes.items() if g[0] in WEIGHTED_OPS
                       and g[6] != "dw" and any(ci != co for ci, co, _ in v)}
        self.cache: dict[tuple[str, int], tuple[float, float] | None] = {}
        self.per_channel: dict[tuple[Any, ...], float | None] = {}

    def _locate(self, p: dict[str, Any], align: int) -> tuple[tuple[Any, ...], float]:
        c_in, c_out = channels(p["in"]), channels(p["out"])
        depthwise = p["op"] == "conv2d" and p["g"] > 1 and p["g"] == c_in
        fast = self.fast_multiple
        slow: Any = fast > 1 and any(c >= fast and c % fast for c in (c_in, c_out))
        if depthwise and self.int8_dw and p["w"] == p["a"] == "int8":
            slow = "fast" if c_out % self.int8_dw[0] == 0 else \
                "block" if c_out % self.int8_dw[1] == 0 else "rest"
        thin_input = c_in if fast > 1 and c_in < fast and p["op"] in WEIGHTED_OPS else 0
        group = (p["op"], spatial(p["in"]), spatial(p["out"]), len(p["in"]), p["k"], p["s"],
                 "dw" if depthwise else p["g"], p["w"], p["a"], slow, thin_input)
        block = self._block(p, group, align)
        x = _coordinate(p["op"], padded(c_in, block), padded(c_out, block),
                        1 if depthwise else p["g"], depthwise)
        return group, x

    def _block(self, p: dict[str, Any], group: tuple[Any, ...], align: int) -> int:
        """Channel multiple the kernels really process for this key: ``fp32_block`` for fp32
        convs on the fast path (NCHWc blocks: time steps at block multiples), else ``align``."""
        if self.fp32_block and p["op"] == "conv2d" and p["a"] == "fp32" and group[9] is False:
            return max(align, self.fp32_block)
        return align

    def interpolate(self, key: str, align: int) -> tuple[float, float] | None:
        """(mean_ms, std_ms) from neighbours of ``key``, or None if there are too few."""
        if (key, align) not in self.cache:
            self.cache[key, align] = self._interpolate(key, align)
        return self.cache[key, align]

    def _interpolate(self, key: str, align: int) -> tuple[float, float] | None:
        p = parse_key(key)
        group, x = self._locate(p, align)
        if group[9] == "rest":
            split = self._remainder(group, channels(p["out"]))
            if split is not None:
                return split
        line = self._interpolate_1d(group, x)
        if group in self.planes:
            block = self._block(p, group, align)
            value = fit_local(self.planes[group], padded(channels(p["in"]), block),
                              padded(channels(p["out"]), block))
            if value is not None:
                rel_std = line[1] / line[0] if line else 0.0
                return value, value * rel_std
        return line

    def _interpolate_1d(self, group: tuple[Any, ...], x: float) -> tuple[float, float] | None:
        points = self.groups.get(group)
        if not points or len(points) < 2:
            return None
        xs = [p[0] for p in points]
        i = bisect.bisect_left(xs, x)
        if 0 < i < len(xs):
            lo, hi = points[i - 1], points[i]
        elif i == 0 and x * MAX_EXTRAPOLATION >= xs[0]:
            lo, hi = points[0], points[1]
        elif i == len(xs) and x <= xs[-1] * MAX_EXTRAPOLATION:
            lo, hi = points[-2], points[-1]
        else:
            return None
        if hi[0] == lo[0]:
            return ((lo[1].mean_ms + hi[1].mean_ms) / 2, (lo[1].std_ms + hi[1].std_ms) / 2)
        t = (x - lo[0]) / (hi[0] - lo[0])
        mean = lo[1].mean_ms + t * (hi[1].mean_ms - lo[1].mean_ms)
        std = max(0.0, lo[1].std_ms + t * (hi[1].std_ms - lo[1].std_ms))
        return (mean, std) if mean > 0 else None


    def _remainder(self, group: tuple[Any, ...], c: int) -> tuple[float, float] | None:
        """Block kernel at ``block * (c // block)`` channels + ``c % block`` x the measured
        per-remaining-channel cost of this group (None below one block or without data)."""
        assert self.int8_dw is not None
        block = self.int8_dw[1]
        base_group = (*group[:9], "block", *group[10:])
        if c < block:
            return None
        if group not in self.per_channel:
            costs = []
            for x, entry in self.groups.get(group, []):
                base = self._interpolate_1d(base_group, block * (x // block)) \
                    if x > block else None
                if base is not None:
                    costs.append((entry.mean_ms - base[0]) / (x % block))
            self.per_channel[group] = sorted(costs)[len(costs) // 2] if len(costs) >= 2 \
                else None
        base = self._interpolate_1d(base_group, float(block * (c // block)))
        per_channel = self.per_channel[group]
        if base is None or per_channel is None:
            return None
        return base[0] + (c % block) * per_channel, base[1]


_INDEXES: weakref.WeakKeyDictionary[HardwareProfile, _LutIndex] = weakref.WeakKeyDictionary()


def _index(profile: HardwareProfile) -> _LutIndex:
    index = _INDEXES.get(profile)
    if index is None:
        align = profile.align
        int8_dw = (align.int8_dw_fast, align.int8_dw_block) if align.int8_dw_block else None
        index = _INDEXES[profile] = _LutIndex(dict(profile.entries), align.fast_multiple,
                                              int8_dw, align.fp32_block)
    return index
