"""How each baseline looks: one (marker, colour) per name, the same in every plot of every
run, and the legend order of baseline names."""
from __future__ import annotations

import zlib
from collections.abc import Sequence

# One (marker, colour) per baseline name, the same in every plot of every run; the built-in
# baselines (search/baselines.py) in legend order, then any other name by a stable hash.
BASELINE_STYLES: dict[str, tuple[str, str]] = {
    "fp32": ("s", "#555555"),
    "uniform-int8": ("D", "#ff7f0e"),
    "uniform-int4": ("v", "#e377c2"),
    "sparse-25": ("^", "#9467bd"),
    "sparse-50": ("P", "#8c564b"),
}
FALLBACK_STYLES = (("*", "#17becf"), ("X", "#bcbd22"), ("h", "#2ca02c"), ("p", "#e7298a"),
                   ("<", "#7570b3"), (">", "#a6761d"), ("d", "#1b9e77"), ("8", "#66a61e"))


def baseline_style(name: str) -> tuple[str, str]:
    """(marker, colour) of a baseline: fixed for the built-in names, else a stable hash of
    the name (crc32, not ``hash()``, which changes per process), so a name looks the same in
    every plot of every run.

    >>> baseline_style("uniform-int4")
    ('v', '#e377c2')
    >>> baseline_style("my-baseline") == baseline_style("my-baseline")
    True
    """
    if name in BASELINE_STYLES:
        return BASELINE_STYLES[name]
    return FALLBACK_STYLES[zlib.crc32(name.encode("utf-8")) % len(FALLBACK_STYLES)]


def baseline_order(names: Sequence[str]) -> list[str]:
    """Legend order of baseline names: the built-in ones in :data:`BASELINE_STYLES` order,
    then the rest alphabetically (not by x, which differs from plot to plot)."""
    known = list(BASELINE_STYLES)
    return sorted(dict.fromkeys(names),
                  key=lambda n: (0, known.index(n), "") if n in known else (1, 0, n))
