"""Data for the search benchmarks: digits distorted at 3x16x16 (see ``techniques.py``'s
generator: affine warp, random colours, Gaussian noise), where students separate."""
from __future__ import annotations

from typing import Any


def make_data(seed: int) -> dict[str, Any]:
    from techniques import distorted_digits

    data = distorted_digits(seed, size=16)
    return {s: (getattr(data, s).x, getattr(data, s).y) for s in ("train", "val", "test")}
