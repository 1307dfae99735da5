"""Local 2-D fit of a conv's latency over (input channels, output channels).

A conv's time is not a function of its MACs alone: im2col-style kernels copy ``c_in x k x k``
values per output pixel whatever ``c_out`` is, and write ``c_out`` outputs whatever ``c_in``
is. So a pruned 58->7 conv costs far more than a 20->20 conv of equal MACs. When a LUT group
holds off-diagonal points (``c_in != c_out``), the latency model fits
``t = a + b c_in + c c_out + d c_in c_out`` by weighted least squares on the nearest entries
(distance in log channel space) and evaluates it at the query.

>>> pts = [(ci, co, 1 + 0.1 * ci + 0.01 * ci * co) for ci in (8, 16, 32) for co in (8, 32)]
>>> round(fit_local(pts, 24, 16), 3)       # exact for data of that form
7.24
"""
from __future__ import annotations

import math
from collections.abc import Sequence

NEIGHBOURS = 8          # entries used per local fit
MAX_LOG_DISTANCE = 2.0  # farthest neighbour allowed, in log-channel units (e^2 = 7.4x)
SANE = (0.5, 2.0)       # accept a fit only within [0.5 x min, 2 x max] of its neighbours


def fit_local(points: Sequence[tuple[float, float, float]], c_in: float,
              c_out: float) -> float | None:
    """Latency at (``c_in``, ``c_out``) from ``points`` = (c_in, c_out, ms), or None when
    the neighbourhood is too thin or the fit is implausible."""
    import numpy as np

    arr = np.asarray(points, dtype=float)
    if len(arr) < 4:
        return None
    d = np.hypot(np.log(arr[:, 0] / c_in), np.log(arr[:, 1] / c_out))
    near = np.argsort(d)[:NEIGHBOURS]
    near = near[d[near] <= MAX_LOG_DISTANCE]
    if len(near) < 4 or np.all(arr[near, 0] == arr[near, 1]):
        return None
    ci, co, t = arr[near, 0], arr[near, 1], arr[near, 2]
    w = 1.0 / (d[near] + 0.05)
    design = np.stack([np.ones_like(ci), ci, co, ci * co], axis=1)
    coef, *_ = np.linalg.lstsq(design * w[:, None], t * w, rcond=None)
    value = float(coef @ np.array([1.0, c_in, c_out, c_in * c_out]))
    if not math.isfinite(value) or not SANE[0] * t.min() <= value <= SANE[1] * t.max():
        return None
    return value
