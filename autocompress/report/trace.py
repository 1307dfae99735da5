"""Pure data behind the hypervolume plot: how the front grew, trial after trial.

Per device, the front in (accuracy, latency) after each trial (in trial-number order) and its
hypervolume against a fixed reference point: accuracy 0 and the latency budget, or the largest
latency any trial reached when there is no budget. ``fraction`` divides by the reference box
(budget x accuracy 1.0), so devices can share one axis.

Example:
    >>> recs = [{"number": n, "state": "complete", "metrics": {"accuracy": a},
    ...          "cost": {"m": {"latency_ms": ms}}}
    ...         for n, a, ms in [(0, 0.5, 4.0), (1, 0.4, 6.0), (2, 0.8, 2.0)]]
    >>> (info,) = hypervolume_infos(recs)
    >>> info.reference, info.reference_source, info.values
    ((0.0, 6.0), 'max seen', (1.0, 1.0, 3.2))
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autocompress.pareto import (
    Budget,
    Objective,
    ParetoFront,
    Record,
    as_record,
    dominates,
)
from autocompress.report.info import profiles_in


@dataclass(frozen=True, kw_only=True)
class HypervolumeInfo:
    """``values[i]`` is the front's hypervolume after trial ``numbers[i]``; ``front_sizes``
    its size. ``reference`` is (y, latency) in objective order."""

    profile: str
    y_label: str
    reference: tuple[float, float]
    reference_source: str  # "budget" or "max seen"
    numbers: tuple[int, ...]
    values: tuple[float, ...]
    front_sizes: tuple[int, ...]

    @property
    def box(self) -> float:
        """Area of the reference box when y is an accuracy in [0, 1]; 1.0 otherwise."""
        return self.reference[1] * (1.0 - self.reference[0]) if self.y_label == "accuracy" \
            else 1.0

    @property
    def fractions(self) -> tuple[float, ...]:
        box = self.box or 1.0
        return tuple(v / box for v in self.values)

    @property
    def label(self) -> str:
        return f"{self.profile} (ref {self.reference[1]:.3g} ms, {self.reference_source})"


def hypervolume_infos(records: Sequence[Any], objectives: Sequence[Objective] = (),
                      budgets: Sequence[Budget] = ()) -> list[HypervolumeInfo]:
    """One :class:`HypervolumeInfo` per device that has a latency in some record.
    Infeasible, failed and pruned trials leave the hypervolume unchanged."""
    recs = sorted((as_record(r) for r in records), key=_number)
    y_obj = next((o for o in objectives if o.sense == "max"), Objective.accuracy())
    out = []
    for profile in profiles_in(recs, budgets, objectives):
        lat = Objective.latency(profile)
        seen = [v for r in recs if (v := lat.get(r)) is not None]
        limits = [b.limit for b in budgets if b.profile == profile and b.metric == "latency_ms"]
        if not seen and not limits:
            continue
        ref = (0.0, min(limits)) if limits else (0.0, max(seen))
        objs = (y_obj, lat)
        front: list[tuple[float, float]] = []
        numbers, values, sizes = [], [], []
        for i, rec in enumerate(recs):
            point = _feasible_values(rec, objs, budgets)
            if point is not None and not any(dominates(p, point, ["max", "min"]) or p == point
                                             for p in front):
                front = [p for p in front if not dominates(point, p, ["max", "min"])] + [point]
            hv = ParetoFront(objectives=objs, values=tuple(front)).hypervolume(ref)
            n = _number(rec)
            numbers.append(n if n != _NO_NUMBER else i)
            values.append(hv)
            sizes.append(len(front))
        out.append(HypervolumeInfo(profile=profile, y_label=y_obj.name, reference=ref,
                                   reference_source="budget" if limits else "max seen",
                                   numbers=tuple(numbers), values=tuple(values),
                                   front_sizes=tuple(sizes)))
    return out


_NO_NUMBER = 1 << 62


def _number(rec: Record) -> int:
    n = rec.get("number")
    return n if isinstance(n, int) and not isinstance(n, bool) else _NO_NUMBER


def _feasible_values(rec: Record, objs: tuple[Objective, Objective],
                     budgets: Sequence[Budget]) -> tuple[float, float] | None:
    """The record's (y, latency) when it is complete, feasible and has both values."""
    front = ParetoFront.from_records([rec], objs, budgets)
    return (front.values[0][0], front.values[0][1]) if front.values else None
