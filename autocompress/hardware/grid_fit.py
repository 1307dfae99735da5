"""What the measured grid says beyond its entries: the kernels' channel blocks (int8
depthwise fast/block multiples, the fp32 NCHWc block) and analytic fallback constants.
``measure.measure_profile`` writes them into the profile (``align``, ``analytic``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from autocompress.graph import LayerInfo
from autocompress.hardware.keys import layer_key, parse_key
from autocompress.hardware.measure import Timing


def detect_int8_dw_blocks(entries: dict[str, Timing], ratio: float = 0.9,
                          ) -> tuple[int, int] | None:
    """(fast, block) channel multiples of the int8 depthwise kernels, read off the grid.

    Per (spatial, kernel, stride) group of measured int8 depthwise entries (>= 8 channels),
    each count ``c`` of the "other" set is compared with the time at ``c`` interpolated
    linearly between its neighbours in the "candidate" set: ``fast`` is the largest ``f``
    in 32, 16, 8 whose multiples run below ``ratio`` x (median over all such pairs) of the
    odd multiples of ``f/2``; ``block = f/2`` must in turn beat the counts off its
    multiple by the same margin. None when the grid shows no such split (nothing changes).
    ``ratio`` 0.9 asks for a 10% systematic gap, several times the 1-3% timing noise: the
    remainder's share shrinks as channels grow (this host: 0.5-0.65 at 36-52 channels,
    0.75-0.85 at 68-132, which a 0.75 threshold missed on a grid dense to 136).
    """
    groups: dict[tuple[Any, ...], dict[int, float]] = {}
    for key, t in entries.items():
        p = parse_key(key)
        c = p["in"][0] if len(p["in"]) == 3 else 0
        if p["op"] == "conv2d" and p["g"] == c >= 8 and p["w"] == p["a"] == "int8":
            groups.setdefault((p["in"][1:], p["k"], p["s"]), {})[c] = t.median_ms

    def faster(select: Callable[[int], bool], versus: Callable[[int], bool]) -> bool:
        ratios = []
        for times in groups.values():
            xs = sorted(c for c in times if select(c))
            if len(xs) < 2:
                continue
            ys = [times[c] for c in xs]
            ratios += [float(np.interp(c, xs, ys)) / t for c, t in times.items()
                       if versus(c) and xs[0] < c < xs[-1]]
        return bool(ratios) and float(np.median(ratios)) < ratio

    for fast in (32, 16, 8):
        block = fast // 2
        if faster(lambda c, f=fast: c % f == 0, lambda c, f=fast, b=block: c % f == b):
            if faster(lambda c, f=fast, b=block: c % b == 0 and c % f != 0,
                      lambda c, b=block: c % b != 0):
                return fast, block
            return None
    return None


def detect_fp32_block(entries: dict[str, Timing], factor: float = 4.0) -> int:
    """Channel block of the fp32 conv kernels (ORT's NCHWc), read off the grid; 0 if none.

    Per (spatial, kernel, stride) group of fp32 regular convs with ``c_in == c_out`` a
    multiple of 4, the relative time step from ``c`` to ``c + 4`` channels is collected by
    the largest power of two dividing ``c`` (capped at 64). The block is the smallest ``m``
    in 8, 16, 32 whose steps (median) and those of every larger ``m`` exceed ``factor`` x
    the steps at odd multiples of 4: time is flat inside a block and jumps across its edge.
    Measured on this host: 2.3% steps at odd multiples of 4 and 8, 70% at 16, 79% at 32.
    """
    steps: dict[int, list[float]] = {}
    groups: dict[tuple[Any, ...], dict[int, float]] = {}
    for key, t in entries.items():
        p = parse_key(key)
        c = p["in"][0] if len(p["in"]) == 3 else 0
        if p["op"] == "conv2d" and p["g"] == 1 and p["w"] == p["a"] == "fp32" \
                and c == p["out"][0] and c >= 8 and c % 4 == 0:
            groups.setdefault((p["in"][1:], p["k"], p["s"]), {})[c] = t.median_ms
    for times in groups.values():
        for c, t in times.items():
            if c + 4 in times:
                m = 4
                while c % (2 * m) == 0 and m < 64:
                    m *= 2
                steps.setdefault(m, []).append(abs(times[c + 4] - t) / t)
    median = {m: float(np.median(v)) for m, v in steps.items()}
    if 4 not in median:
        return 0
    jumps = [m for m in (8, 16, 32) if m in median
             and all(median[n] > factor * median[4] for n in median if n >= m)]
    return min(jumps, default=0)


def fit_analytic(layers: Iterable[LayerInfo], entries: dict[str, Timing]) -> dict[str, Any]:
    """Analytic fallback constants fitted to the measured entries (for shapes off the grid)."""
    rate: dict[str, dict[str, list[float]]] = {"regular": {}, "depthwise": {}}
    small: list[float] = []
    bw: list[float] = []
    for layer in layers:
        for fmt in ("fp32", "int8"):
            t = entries[layer_key(layer, fmt, fmt)].median_ms
            if layer.op == "conv2d" and layer.macs >= 1_000_000:
                kind = "depthwise" if layer.groups > 1 else "regular"
                rate[kind].setdefault(fmt, []).append(layer.macs / (t * 1e-3) / 1e9)
            if layer.op == "add" and fmt == "fp32":
                bw.append(3 * 4 * math.prod(layer.in_shape) / (t * 1e-3) / 1e9)
            if layer.macs <= 2_000:
                small.append(t)
    def med(v: list[float], default: float) -> float:
        return round(float(np.median(v)), 3) if v else default
    return {"gmacs_per_s": {f: med(rate["regular"].get(f, []), 1.0) for f in ("fp32", "int8")},
            "depthwise_gmacs_per_s": {f: med(rate["depthwise"].get(f, []), 0.5)
                                      for f in ("fp32", "int8")},
            "mem_bw_gbps": med(bw, 5.0), "per_op_overhead_us": round(med(small, 0.002) * 1e3, 2)}
