"""The LUT index behind ``latency.estimate_layer_latency``: entries grouped by everything
except channel counts, 1-D interpolation along a MAC-proportional coordinate, a local 2-D
fit for regular convs with off-diagonal points, and the measured kernel-block effects
(``AlignSpec.int8_dw_*``, ``AlignSpec.fp32_block``). One index per profile, cached.
"""
from __future__ import annotations

import bisect
import weakref
from typing import Any

from autocompress.hardware._lut2d import fit_local
from autocompress.hardware.keys import WEIGHTED_OPS, channels, parse_key, spatial
from autocompress.hardware.spec import HardwareProfile, LutEntry

# Extrapolate from LUT neighbours at most this far outside the measured channel range
# (factor on the MAC-proportional coordinate); beyond it the analytic model answers.
MAX_EXTRAPOLATION = 2.0


def padded(count: int, align: int) -> int:
    """Channel count the kernels actually process: rounded up to ``align``.

    Counts below ``align`` (a 1- or 3-channel network input) are left alone: CMSIS-NN-style
    kernels fold them into the im2col row instead of padding each pixel.

    >>> padded(27, 4), padded(3, 4), padded(16, 1)
    (28, 3, 16)
    """
    if align <= 1 or count < align:
        return count
    return -(-count // align) * align


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
