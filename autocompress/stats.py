"""The statistics the search's rules share: early stopping's margin and chance floor and the
teacher checks. Torch-free, like ``search.early_stop``, which ``config`` imports."""
from __future__ import annotations

import math


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` samples, sqrt(p (1 - p) / n).

    >>> round(binomial_se(0.5, 270), 4)
    0.0304
    >>> round(binomial_se(0.1, 270), 4)
    0.0183
    """
    return math.sqrt(p * (1 - p) / n)
