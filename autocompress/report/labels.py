"""Label placement for the plots, in display units (pure geometry: no matplotlib): each
label goes to the first free spot around its point, off the obstacles and the labels placed
before it."""
from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display units
# Where a label's box may sit relative to its point, in preference order, as (dx, dy) of the
# box's lower-left corner in units of (label width, label height) plus a gap. Above-left of a
# (max y, min x) front point is empty by definition (no line, no point), so it comes first.
LABEL_CANDIDATES = ((-1.0, 0.0, -1, 1), (-1.0, -0.5, -1, 0), (0.0, -1.0, 1, -1),
                    (-0.5, 0.0, 0, 1), (-0.5, -1.0, 0, -1), (0.0, -0.5, 1, 0),
                    (0.0, 0.0, 1, 1), (-1.0, -1.0, -1, -1))


def place_labels(anchors: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]],
                 obstacles: Sequence[Box] = (), bounds: Box | None = None, *,
                 gap: float = 3.0) -> list[tuple[float, float]]:
    """Greedy, deterministic label placement in display units: for each anchor in turn, the
    first of :data:`LABEL_CANDIDATES` whose box (``sizes[i]`` = width, height; ``gap`` away
    from the anchor) overlaps no obstacle, no label placed before and stays in ``bounds``;
    when none is free, the candidate with the least overlapping area (ties: the earlier one).
    Returns each box's lower-left corner as an offset from its anchor.

    >>> place_labels([(0, 0), (0, 0)], [(10, 5), (10, 5)])
    [(-13.0, 3.0), (-13.0, -2.5)]
    """
    placed: list[Box] = []
    out: list[tuple[float, float]] = []
    for (ax_, ay), (w, h) in zip(anchors, sizes, strict=True):
        best: tuple[float, int, tuple[float, float], Box] | None = None
        for rank, (fx, fy, gx, gy) in enumerate(LABEL_CANDIDATES):
            dx, dy = fx * w + gx * gap, fy * h + gy * gap
            box = (ax_ + dx, ay + dy, ax_ + dx + w, ay + dy + h)
            cost = sum(_overlap(box, o) for o in (*obstacles, *placed))
            if bounds is not None:
                cost += w * h - _overlap(box, bounds)
            if best is None or cost < best[0]:
                best = (cost, rank, (dx, dy), box)
            if cost == 0.0:
                break
        assert best is not None
        placed.append(best[3])
        out.append(best[2])
    return out


def _overlap(a: Box, b: Box) -> float:
    """Area shared by two boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0.0 and h > 0.0 else 0.0
