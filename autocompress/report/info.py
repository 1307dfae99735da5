"""Pure data behind the report: what each Pareto plot shows, and the flat trials table.

Renderers (``plots.py``) only draw these objects, so tests check *which trial lands where*
here, without matplotlib.

Example:
    >>> recs = [{"number": 0, "state": "complete", "metrics": {"accuracy": 0.9},
    ...          "cost": {"mcu": {"latency_ms": 5.0}}}]
    >>> [i.front for i in pareto_plot_infos(recs)]
    [(PlotPoint(x=5.0, y=0.9, number=0, xerr=None),)]
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autocompress.pareto import Budget, Objective, ParetoFront, Record, as_record, get_path

_UNITS = {"ms": "ms", "kb": "KB", "mb": "MB", "us": "µs", "s": "s"}
_AXIS_NAMES = {"latency_ms": "latency", "flash_kb": "flash", "peak_sram_kb": "peak SRAM",
               "std_ms": "latency std"}
_COST_ORDER = ("latency_ms", "std_ms", "flash_kb", "peak_sram_kb", "provenance")
_FIXED_COLUMNS = ("number", "state", "baseline", "duration_s", "seed", "plan_id", "rung", "note",
                  "error")


def unit_of(metric: str) -> str:
    """``'latency_ms'`` -> ``'ms'``; ``'accuracy'`` -> ``''``."""
    return _UNITS.get(metric.rsplit("_", 1)[-1], "") if "_" in metric else ""


def axis_label(metric: str) -> str:
    """``'flash_kb'`` -> ``'flash (KB)'``."""
    unit = unit_of(metric)
    name = _AXIS_NAMES.get(metric, metric.rsplit("_", 1)[0] if unit else metric)
    return f"{name} ({unit})" if unit else name


@dataclass(frozen=True, kw_only=True)
class PlotPoint:
    x: float
    y: float | None  # None: not trained (infeasible), drawn along the bottom edge
    number: int | None
    xerr: float | None = None  # latency std (``cost.<device>.std_ms``) on latency plots


_WORDS = {"latency_ms": "latency", "flash_kb": "flash", "peak_sram_kb": "SRAM"}


@dataclass(frozen=True, kw_only=True)
class BaselinePoint:
    name: str
    x: float
    y: float
    number: int | None
    on_front: bool
    xerr: float | None = None
    over_budget: bool = False    # breaks a budget of the run (any device's): kept off fronts
    over_on: tuple[str, ...] = ()   # the budgets it breaks, "<device>.<metric>"

    def over_text(self, profile: str) -> str:
        """What a label adds: '' within every budget, else the budgets it breaks: on this
        device's plot by metric, on another's with the device (a point left of this plot's
        latency line read "(over budget)": it broke the Flash budget).

        >>> b = BaselinePoint(name="fp32", x=1, y=1, number=1, on_front=False,
        ...                   over_budget=True, over_on=("pixel4.flash_kb",))
        >>> b.over_text("pixel4"), b.over_text("jetson_orin_nano")
        (' (over the flash budget)', ' (over the pixel4 flash budget)')
        >>> BaselinePoint(name="fp32", x=1, y=1, number=1, on_front=False, over_budget=True,
        ...               over_on=("pixel4.latency_ms", "pixel4.flash_kb")).over_text("orin")
        ' (over the pixel4 latency and flash budgets)'
        """
        if not self.over_budget:
            return ""
        by: dict[str, list[str]] = {}
        for key in self.over_on:
            device, _, metric = key.partition(".")
            by.setdefault(device, []).append(_WORDS.get(metric, metric))
        if not by:
            return " (over budget)"
        what = [" and ".join(by[profile])] if profile in by else \
            [f"{d} {' and '.join(ms)}" for d, ms in by.items()]
        plural = "s" if sum(len(ms) for ms in ([by[profile]] if profile in by
                                                else by.values())) > 1 else ""
        return f" (over the {', '.join(what)} budget{plural})"


@dataclass(frozen=True, kw_only=True)
class BudgetLine:
    x: float
    label: str  # e.g. "budget 10 ms"


@dataclass(frozen=True, kw_only=True)
class ParetoPlotInfo:
    """One device's accuracy-vs-cost picture. ``front`` is sorted by x and includes
    baselines that sit on the front; ``dominated`` and ``infeasible`` exclude baselines,
    which are listed (when trained) in ``baselines``."""

    profile: str
    x_metric: str
    x_label: str
    y_label: str
    front: tuple[PlotPoint, ...]
    dominated: tuple[PlotPoint, ...]
    infeasible: tuple[PlotPoint, ...]
    baselines: tuple[BaselinePoint, ...]
    budget_lines: tuple[BudgetLine, ...]
    n_total: int
    n_failed: int
    n_pruned: int
    stopped: tuple[PlotPoint, ...] = ()   # early-stopped trials, y = accuracy at their rung

    @property
    def x_name(self) -> str:
        """The x axis without its unit: ``'flash'``."""
        return self.x_label.split(" (")[0]

    @property
    def title(self) -> str:
        name = self.profile or "no device"
        off = sum(not b.on_front for b in self.baselines)
        extra = "".join(f", {n} {what}" for n, what in ((off, "baselines off the front"),
                                                       (self.n_pruned, "stopped early")) if n)
        return (f"{name}: {self.y_label} vs {self.x_name} — "
                f"{len(self.front)} on front, {len(self.dominated)} dominated, "
                f"{len(self.infeasible)} infeasible{extra}, {self.n_failed} failed "
                f"({self.n_total} trials)")

    @property
    def is_empty(self) -> bool:
        return not self.front


def profiles_in(records: Iterable[Record], budgets: Sequence[Budget] = (),
                objectives: Sequence[Objective] = ()) -> list[str]:
    """Device names in the run's order: those its cost objectives name, then its budgets,
    then any other in records' ``cost`` (stored with sorted keys)."""
    seen: dict[str, None] = {o.name.split(".")[0]: None for o in objectives
                             if o.path.startswith("cost.")}
    for b in budgets:
        seen.setdefault(b.profile, None)
    for rec in records:
        for name in rec.get("cost") or {}:
            seen.setdefault(name, None)
    return list(seen)


def not_a_latency_front(objectives: Sequence[Objective]) -> bool:
    """True when the run's front is not accuracy against latency, which each device's plot
    and front table show: more than two objectives, or a Flash or peak SRAM objective."""
    return len(objectives) > 2 or any(o.sense == "min" and not o.name.endswith(".latency_ms")
                                      for o in objectives)


def pareto_plot_infos(records: Sequence[Any], objectives: Sequence[Objective] = (),
                      budgets: Sequence[Budget] = (), *,
                      x_metric: str = "latency_ms") -> list[ParetoPlotInfo]:
    """One :class:`ParetoPlotInfo` per device: y = the first ``max`` objective (default
    ``metrics.accuracy``), x = ``cost.<device>.<x_metric>``. The front is recomputed in these
    two objectives; feasibility uses every budget (a trial must fit all of them)."""
    recs = [as_record(r) for r in records]
    y_obj = next((o for o in objectives if o.sense == "max"), Objective.accuracy())
    return [_info(recs, profile, y_obj, budgets, x_metric)
            for profile in profiles_in(recs, budgets, objectives) or [""]]


def _info(records: Sequence[Record], profile: str, y_obj: Objective,
          budgets: Sequence[Budget], x_metric: str) -> ParetoPlotInfo:
    x_obj = Objective(name=f"{profile}.{x_metric}", sense="min",
                      path=f"cost.{profile}.{x_metric}")
    front = ParetoFront.from_records(records, [y_obj, x_obj], budgets)

    err_path = f"cost.{profile}.std_ms" if x_metric == "latency_ms" else ""

    def point(rec: Record) -> PlotPoint | None:
        x = x_obj.get(rec)
        return None if x is None else PlotPoint(
            x=x, y=y_obj.get(rec), number=rec.get("number"),
            xerr=get_path(rec, err_path) if err_path else None)

    def points(recs: Iterable[Record], *, skip_baselines: bool) -> tuple[PlotPoint, ...]:
        pts = (point(r) for r in recs if not (skip_baselines and r.get("baseline")))
        return tuple(sorted((p for p in pts if p is not None), key=lambda p: p.x))

    on_front, over = {id(r) for r in front.points}, {id(r) for r in front.infeasible}
    baselines = tuple(
        BaselinePoint(name=str(r["baseline"]), x=x, y=y, number=r.get("number"),
                      on_front=id(r) in on_front, over_budget=id(r) in over,
                      over_on=tuple(f"{b.profile}.{b.metric}" for b in budgets
                                    if (b.violation(r) or 0.0) > 0),
                      xerr=get_path(r, err_path) if err_path else None)
        for r in (*front.points, *front.dominated, *front.infeasible)   # over budget: still shown
        if r.get("baseline")
        and (x := x_obj.get(r)) is not None and (y := y_obj.get(r)) is not None)
    lines = tuple(BudgetLine(x=b.limit, label=f"budget {b.limit:g} {unit_of(x_metric)}".rstrip())
                  for b in budgets if b.profile == profile and b.metric == x_metric)
    stopped = tuple(sorted((PlotPoint(x=x, y=float(y), number=r.get("number"))
                            for r in front.pruned if (x := x_obj.get(r)) is not None and
                            (y := (r.get("metrics") or {}).get(f"rung_accuracy/{r.get('rung')}"))
                            is not None), key=lambda p: p.x))
    return ParetoPlotInfo(
        profile=profile, x_metric=x_metric, x_label=axis_label(x_metric),
        y_label=y_obj.name, front=points(front.points, skip_baselines=False),
        dominated=points(front.dominated, skip_baselines=True),
        infeasible=points(front.infeasible, skip_baselines=True),
        baselines=tuple(sorted(baselines, key=lambda b: b.x)), budget_lines=lines,
        n_total=len(records), n_failed=len(front.failed), n_pruned=len(front.pruned),
        stopped=stopped)


# ---------------------------------------------------------------- trials table


@dataclass(frozen=True, kw_only=True)
class TrialsTable:
    """Flat, CSV-ready view of records: fixed columns, then ``params/<k>``,
    ``metrics/<k>``, ``cost/<device>/<k>`` and ``constraint/<k>``. Missing cells are None.

    >>> t = TrialsTable.from_records([{"number": 1, "state": "complete",
    ...     "params": {"q": 4}, "cost": {"m": {"provenance": {"analytic": 12}}}}])
    >>> t.columns[-2:], t.rows[0][-2:]
    (('params/q', 'cost/m/provenance'), (4, 'analytic:12'))
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    @classmethod
    def from_records(cls, records: Iterable[Any]) -> TrialsTable:
        flat = [flatten_record(as_record(r)) for r in records]
        seen: dict[str, None] = {}
        for row in flat:
            for key in row:
                seen.setdefault(key, None)
        columns = (*_FIXED_COLUMNS, *sorted((k for k in seen if k not in _FIXED_COLUMNS),
                                            key=_column_key))
        return cls(columns=columns, rows=tuple(tuple(r.get(c) for c in columns) for r in flat))

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def flatten_record(record: Record) -> dict[str, Any]:
    """One record as ``{column: scalar}``. The ``plan`` and the per-layer cost list
    (``cost.<device>.layers``) are left out (they stay in records.jsonl); ``plan_id`` stays."""
    out: dict[str, Any] = {c: record.get(c) for c in _FIXED_COLUMNS}
    for key, value in (record.get("params") or {}).items():
        out[f"params/{key}"] = _cell(value)
    _flatten(out, "metrics", record.get("metrics") or {})
    for profile, cost in (record.get("cost") or {}).items():
        for key, value in (cost or {}).items():
            if key == "layers":
                continue
            if key == "provenance" and isinstance(value, Mapping):
                out[f"cost/{profile}/provenance"] = ";".join(f"{k}:{v}" for k, v in value.items())
            elif isinstance(value, Mapping):
                _flatten(out, f"cost/{profile}/{key}", value)
            else:
                out[f"cost/{profile}/{key}"] = _cell(value)
    for key, value in (record.get("constraints") or {}).items():
        out[f"constraint/{key}"] = _cell(value)
    return out


def _flatten(out: dict[str, Any], prefix: str, mapping: Mapping[str, Any]) -> None:
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            _flatten(out, f"{prefix}/{key}", value)
        else:
            out[f"{prefix}/{key}"] = _cell(value)


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, tuple, dict)) else value


def _column_key(column: str) -> tuple[int, str, int, str]:
    group, _, rest = column.partition("/")
    rank = {"params": 0, "metrics": 1, "cost": 2, "constraint": 3}.get(group, 4)
    if group == "cost":
        profile, _, key = rest.partition("/")
        known = _COST_ORDER.index(key) if key in _COST_ORDER else len(_COST_ORDER)
        return (rank, profile, known, key)
    # numbers in names by value: blocks.2 before blocks.10 (a 78-layer model's columns
    # went blocks.0, blocks.1, blocks.10, ..., blocks.19, blocks.2)
    return (rank, re.sub(r"\d+", lambda m: m.group().zfill(9), rest), 0, "")


def cost_value(record: Record, profile: str, metric: str) -> float | None:
    """Shortcut for ``record["cost"][profile][metric]`` as a float, or None."""
    return get_path(record, f"cost.{profile}.{metric}")
