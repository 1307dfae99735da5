"""Pure multi-objective helpers over trial records: dominance, Pareto front, hypervolume.

No numpy, pandas or matplotlib here; records are the plain dicts of ``records.jsonl``
(anything with ``to_dict()`` is accepted too).

Example:
    >>> acc = Objective(name="accuracy", sense="max", path="metrics.accuracy")
    >>> lat = Objective.latency("mcu")
    >>> recs = [{"number": 0, "state": "complete", "metrics": {"accuracy": 0.9},
    ...          "cost": {"mcu": {"latency_ms": 5.0}}},
    ...         {"number": 1, "state": "complete", "metrics": {"accuracy": 0.8},
    ...          "cost": {"mcu": {"latency_ms": 6.0}}}]
    >>> front = ParetoFront.from_records(recs, [acc, lat])
    >>> [r["number"] for r in front.points], [r["number"] for r in front.dominated]
    ([0], [1])
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from autocompress.errors import AutocompressError, ConfigError, did_you_mean
from autocompress.hypervolume import hv_min

if TYPE_CHECKING:
    import pandas as pd

Sense = Literal["max", "min"]
Record = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Budget:
    """An upper limit on one cost metric of one device, e.g. ``latency_ms <= 10`` on an MCU.

    >>> Budget(profile="stm32f746", metric="latency_ms", limit=10.0).key
    'stm32f746.max_latency_ms'
    """

    profile: str
    metric: str
    limit: float

    @property
    def key(self) -> str:
        """Constraint name as stored in a record's ``constraints``."""
        return f"{self.profile}.max_{self.metric}"

    def violation(self, record: Record) -> float | None:
        """``value - limit`` (> 0 means over budget), or None when the record has no such cost."""
        value = get_path(record, f"cost.{self.profile}.{self.metric}")
        return None if value is None else value - self.limit


@dataclass(frozen=True, kw_only=True)
class Objective:
    """One axis of the trade-off. ``path`` (default: ``name``) is a dotted path into a record.

    >>> Objective.latency("stm32f746").get({"cost": {"stm32f746": {"latency_ms": 4.2}}})
    4.2
    """

    name: str
    sense: Sense
    path: str = ""

    def __post_init__(self) -> None:
        if self.sense not in ("max", "min"):
            raise ConfigError(f"objective '{self.name}': sense must be 'max' or 'min', "
                              f"got {self.sense!r}", loc="objectives")
        if not self.path:
            object.__setattr__(self, "path", self.name)

    @classmethod
    def accuracy(cls) -> Objective:
        return cls(name="accuracy", sense="max", path="metrics.accuracy")

    @classmethod
    def latency(cls, profile: str) -> Objective:
        return cls(name=f"{profile}.latency_ms", sense="min", path=f"cost.{profile}.latency_ms")

    def get(self, record: Record) -> float | None:
        """The objective's value in ``record``; None when missing or not a finite number."""
        return get_path(record, self.path)


def get_path(record: Record, path: str) -> float | None:
    """Follow a dotted path; a key that itself contains dots (``cost.rpi4.ort.latency_ms``)
    is matched longest-first. Returns a finite float or None."""
    node: Any = record
    parts = path.split(".")
    while parts:
        if not isinstance(node, Mapping):
            return None
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in node:
                node, parts = node[key], parts[i:]
                break
        else:
            return None
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        return None
    return float(node) if math.isfinite(node) else None


def as_record(record: Any) -> Record:
    """A record dict as is; any other object via its ``to_dict()`` (e.g. a TrialRecord)."""
    return record if isinstance(record, Mapping) else record.to_dict()


def _to_min(values: Sequence[float], senses: Sequence[str]) -> tuple[float, ...]:
    return tuple(-v if s == "max" else v for v, s in zip(values, senses, strict=True))


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[str]) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and strictly better somewhere.

    >>> dominates([0.9, 3.0], [0.9, 4.0], ["max", "min"])
    True
    """
    ma, mb = _to_min(a, senses), _to_min(b, senses)
    pairs = list(zip(ma, mb, strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def pareto_indices(points: Sequence[Sequence[float]], senses: Sequence[str]) -> list[int]:
    """Indices (ascending) of the non-dominated points; identical points are all kept.

    Sorted sweep: a point can only be dominated by one that sorts before it, and (by
    transitivity) by a non-dominated one, so each point is checked against the front so far.

    >>> pareto_indices([[0.9, 5.0], [0.8, 6.0], [0.95, 9.0], [0.9, 5.0]], ["max", "min"])
    [0, 2, 3]
    """
    mins = [_to_min(p, senses) for p in points]
    front: list[int] = []
    for i in sorted(range(len(mins)), key=lambda k: mins[k]):
        if not any(dominates(mins[j], mins[i], ["min"] * len(mins[i])) for j in front):
            front.append(i)
    return sorted(front)


@dataclass(frozen=True, kw_only=True)
class ParetoFront:
    """Trial records split into front / dominated / infeasible / failed / pruned.

    ``points`` are complete, feasible, non-dominated records sorted by the first ``min``
    objective (then the others); ``values`` holds their objective values in the same order.
    A record is infeasible when its state is ``infeasible``, any stored constraint is > 0, or
    it breaks one of ``budgets``. A complete record missing an objective value goes to
    ``failed`` (it cannot be ranked).
    """

    objectives: tuple[Objective, ...]
    budgets: tuple[Budget, ...] = ()
    points: tuple[Record, ...] = ()
    values: tuple[tuple[float, ...], ...] = ()
    dominated: tuple[Record, ...] = ()
    infeasible: tuple[Record, ...] = ()
    failed: tuple[Record, ...] = ()
    pruned: tuple[Record, ...] = ()

    @classmethod
    def from_records(cls, records: Iterable[Any], objectives: Sequence[Objective],
                     budgets: Sequence[Budget] = ()) -> ParetoFront:
        if not objectives:
            raise ConfigError("at least one objective is needed", loc="objectives")
        objs, buds = tuple(objectives), tuple(budgets)
        senses = [o.sense for o in objs]
        ranked: list[tuple[Record, tuple[float, ...]]] = []
        infeasible: list[Record] = []
        failed: list[Record] = []
        pruned: list[Record] = []
        for raw in records:
            rec = as_record(raw)
            state = rec.get("state")
            if state == "infeasible" or _violates(rec, buds):
                infeasible.append(rec)
            elif state == "pruned":
                pruned.append(rec)
            elif state != "complete":
                failed.append(rec)
            elif None in (vals := [o.get(rec) for o in objs]):
                failed.append(rec)
            else:
                ranked.append((rec, tuple(v for v in vals if v is not None)))
        on_front = set(pareto_indices([v for _, v in ranked], senses))
        order = _sort_key(objs)
        front = sorted((ranked[i] for i in on_front), key=lambda rv: order(rv[1]))
        return cls(objectives=objs, budgets=buds,
                   points=tuple(r for r, _ in front), values=tuple(v for _, v in front),
                   dominated=tuple(r for i, (r, _) in enumerate(ranked) if i not in on_front),
                   infeasible=tuple(infeasible), failed=tuple(failed), pruned=tuple(pruned))

    def _index(self, name: str) -> int:
        names = [o.name for o in self.objectives]
        if name not in names:
            raise AutocompressError(f"unknown objective '{name}' (known: {', '.join(names)})",
                                    hint=did_you_mean(name, names))
        return names.index(name)

    def hypervolume(self, reference: Mapping[str, float] | Sequence[float]) -> float:
        """Exact hypervolume dominated by the front and bounded by ``reference`` (a mapping
        by objective name, or values in objective order). ``max`` objectives are negated, so
        the reference is a *worst acceptable* value (e.g. accuracy 0.0, latency 100 ms).
        Points not strictly better than the reference in every objective add nothing.

        >>> r = {"state": "complete", "metrics": {"accuracy": 0.5},
        ...      "cost": {"m": {"latency_ms": 2.0}}}
        >>> f = ParetoFront.from_records([r], [Objective.accuracy(), Objective.latency("m")])
        >>> f.hypervolume({"accuracy": 0.0, "m.latency_ms": 10.0})
        4.0
        """
        if isinstance(reference, Mapping):
            _ = [self._index(key) for key in reference]  # unknown names raise
            ref = [float(reference[o.name]) for o in self.objectives]
        else:
            ref = [float(v) for v in reference]
            if len(ref) != len(self.objectives):
                raise AutocompressError(f"reference has {len(ref)} values, expected "
                                        f"{len(self.objectives)} (one per objective)")
        ref_min = _to_min(ref, senses := [o.sense for o in self.objectives])
        pts = [p for p in (_to_min(v, senses) for v in self.values)
               if all(x < r for x, r in zip(p, ref_min, strict=True))]
        return hv_min(pts, ref_min)

    def select(self, max_values: Mapping[str, float] | None = None,
               min_values: Mapping[str, float] | None = None) -> Record | None:
        """Best front point (by the first ``max`` objective, ties by the sort order) whose
        values are ``<= max_values[name]`` and ``>= min_values[name]``; None if none fits.

        >>> f = ParetoFront.from_records([], [Objective.accuracy(), Objective.latency("m")])
        >>> f.select(max_values={"m.latency_ms": 10.0}) is None
        True
        """
        upper = {self._index(k): v for k, v in (max_values or {}).items()}
        lower = {self._index(k): v for k, v in (min_values or {}).items()}
        fits = [(r, v) for r, v in zip(self.points, self.values, strict=True)
                if all(v[i] <= lim for i, lim in upper.items())
                and all(v[i] >= lim for i, lim in lower.items())]
        if not fits:
            return None
        senses = [o.sense for o in self.objectives]
        k = senses.index("max") if "max" in senses else 0
        sign = -1.0 if senses[k] == "max" else 1.0
        return min(enumerate(fits), key=lambda t: (sign * t[1][1][k], t[0]))[1][0]

    def knee(self) -> Record | None:
        """Front point closest to the ideal point after scaling each objective to [0, 1]
        over the front (1 = best) — the "most balanced" trade-off. None for an empty front."""
        if not self.values:
            return None
        spans = [(min(c), max(c)) for c in zip(*self.values, strict=True)]

        def gap(x: float, lo: float, hi: float, sense: str) -> float:  # 0 = best, 1 = worst
            s = 1.0 if hi == lo else (x - lo) / (hi - lo)
            return 1.0 - (s if sense == "max" else 1.0 - s)

        dists = [sum(gap(x, *span, o.sense) ** 2 for x, span, o in
                     zip(v, spans, self.objectives, strict=True)) for v in self.values]
        return self.points[min(range(len(dists)), key=dists.__getitem__)]

    def to_dataframe(self) -> pd.DataFrame:
        """Front points as a flat table (see ``autocompress.report.table``); needs pandas."""
        from autocompress.report.table import records_to_dataframe

        return records_to_dataframe(list(self.points))


def _violates(record: Record, budgets: Sequence[Budget]) -> bool:
    constraints = record.get("constraints") or {}
    if any(isinstance(c, (int, float)) and c > 0 for c in constraints.values()):
        return True
    return any((v := b.violation(record)) is not None and v > 0 for b in budgets)


def _sort_key(objectives: Sequence[Objective]) -> Any:
    """Order front points by the first ``min`` objective ascending, then the rest (best first)."""
    senses = [o.sense for o in objectives]
    first = senses.index("min") if "min" in senses else 0
    order = [first] + [i for i in range(len(senses)) if i != first]
    return lambda v: tuple(v[i] if senses[i] == "min" else -v[i] for i in order)
