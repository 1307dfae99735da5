"""Pure data behind the hypervolume plot: how the front grew, trial after trial.

The front is the one the report's front table uses (``info.not_a_latency_front``): where
the run's objectives are accuracy against one latency, one trace per device, in (accuracy,
that device's latency); otherwise (a Flash or peak SRAM objective, or more than two
objectives) one trace over the run's own objectives. Each trace is the front's hypervolume
after each trial (in trial-number order) against a fixed reference point: accuracy 0 and,
per cost axis, its budget, or the largest value any trial reached when it has none.
``fractions`` divide by the reference box (budget x accuracy 1.0), so traces can share one
axis.

Example:
    >>> recs = [{"number": n, "state": "complete", "metrics": {"accuracy": a},
    ...          "cost": {"m": {"latency_ms": ms}}}
    ...         for n, a, ms in [(0, 0.5, 4.0), (1, 0.4, 6.0), (2, 0.8, 2.0)]]
    >>> (info,) = hypervolume_infos(recs)
    >>> info.reference, info.reference_source, info.values
    ((0.0, 6.0), 'max seen', (1.0, 1.0, 3.2))
"""
from __future__ import annotations

import math
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
from autocompress.report.info import not_a_latency_front, profiles_in, unit_of


@dataclass(frozen=True, kw_only=True)
class HypervolumeInfo:
    """``values[i]`` is the front's hypervolume after trial ``numbers[i]``; ``front_sizes``
    its size. ``objectives`` name the front's axes, ``reference`` is the reference point in
    that order and ``reference_sources`` where each cost axis's came from (``budget`` or
    ``max seen``). ``profile``: the device of a latency trace; '' for the run's own front."""

    profile: str
    y_label: str
    objectives: tuple[str, ...]
    senses: tuple[str, ...]
    reference: tuple[float, ...]
    reference_sources: tuple[str, ...]
    numbers: tuple[int, ...]
    values: tuple[float, ...]
    front_sizes: tuple[int, ...]

    @property
    def reference_source(self) -> str:
        return ", ".join(dict.fromkeys(self.reference_sources))

    @property
    def box(self) -> float:
        """Volume of the reference box when every ``max`` axis is an accuracy in [0, 1];
        1.0 otherwise."""
        if any(s == "max" and n != "accuracy" for n, s in zip(self.objectives, self.senses,
                                                               strict=True)):
            return 1.0
        return math.prod(1.0 - r if s == "max" else r
                         for r, s in zip(self.reference, self.senses, strict=True))

    @property
    def fractions(self) -> tuple[float, ...]:
        box = self.box or 1.0
        return tuple(v / box for v in self.values)

    @property
    def name(self) -> str:
        """The device of a latency trace, or the run's objectives."""
        return self.profile or " vs ".join((self.y_label, ", ".join(self._costs())))

    @property
    def label(self) -> str:
        refs = [f"{self.reference[i]:.3g} {unit_of(self.objectives[i])}".rstrip()
                for i in range(len(self.objectives)) if self.senses[i] == "min"]
        if len(refs) == 1:
            return f"{self.name} (ref {refs[0]}, {self.reference_sources[0]})"
        return f"{self.name} (ref " + ", ".join(
            f"{r} {src}" for r, src in zip(refs, self.reference_sources, strict=True)) + ")"

    def _costs(self) -> list[str]:
        return [n for n, s in zip(self.objectives, self.senses, strict=True) if s == "min"]


def hypervolume_infos(records: Sequence[Any], objectives: Sequence[Objective] = (),
                      budgets: Sequence[Budget] = ()) -> list[HypervolumeInfo]:
    """One :class:`HypervolumeInfo` per device that has a latency in some record, or one
    for the run's own objectives where they are not accuracy vs one latency (the front the
    report's tables use). Infeasible, failed and pruned trials leave it unchanged."""
    recs = sorted((as_record(r) for r in records), key=_number)
    y_obj = next((o for o in objectives if o.sense == "max"), Objective.accuracy())
    fronts = [("", tuple(objectives))] if not_a_latency_front(objectives) else [
        (p, (y_obj, Objective.latency(p))) for p in profiles_in(recs, budgets, objectives)]
    out = []
    for profile, objs in fronts:
        refs = [_reference(o, recs, budgets) for o in objs]
        if any(r is None for r in refs):
            continue
        ref = tuple(r[0] for r in refs if r is not None)
        senses = [o.sense for o in objs]
        front: list[tuple[float, ...]] = []
        numbers, values, sizes, hv = [], [], [], 0.0
        for i, rec in enumerate(recs):
            point = _feasible_values(rec, objs, budgets)
            if point is not None and not any(dominates(p, point, senses) or p == point
                                             for p in front):
                front = [p for p in front if not dominates(point, p, senses)] + [point]
                # only a new front point changes it (3 or 4 objectives: not cheap)
                hv = ParetoFront(objectives=objs, values=tuple(front)).hypervolume(ref)
            n = _number(rec)
            numbers.append(n if n != _NO_NUMBER else i)
            values.append(hv)
            sizes.append(len(front))
        out.append(HypervolumeInfo(
            profile=profile, y_label=y_obj.name, objectives=tuple(o.name for o in objs),
            senses=tuple(senses), reference=ref,
            reference_sources=tuple(r[1] for r, o in zip(refs, objs, strict=True)
                                    if r is not None and o.sense == "min"),
            numbers=tuple(numbers), values=tuple(values), front_sizes=tuple(sizes)))
    return out


def _reference(obj: Objective, recs: Sequence[Record], budgets: Sequence[Budget]
               ) -> tuple[float, str] | None:
    """An axis's reference value and where it came from: 0 for a ``max`` axis (accuracy);
    for a cost, its tightest budget, else the largest value any record reached; None when
    there is neither."""
    if obj.sense == "max":
        return 0.0, ""
    limits = [b.limit for b in budgets if f"cost.{b.profile}.{b.metric}" == obj.path]
    if limits:
        return min(limits), "budget"
    seen = [v for r in recs if (v := obj.get(r)) is not None]
    return (max(seen), "max seen") if seen else None


_NO_NUMBER = 1 << 62


def _number(rec: Record) -> int:
    n = rec.get("number")
    return n if isinstance(n, int) and not isinstance(n, bool) else _NO_NUMBER


def _feasible_values(rec: Record, objs: Sequence[Objective], budgets: Sequence[Budget]
                     ) -> tuple[float, ...] | None:
    """The record's objective values when it is complete, feasible and has them all."""
    front = ParetoFront.from_records([rec], objs, budgets)
    return front.values[0] if front.values else None
