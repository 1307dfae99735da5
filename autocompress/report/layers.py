"""Pure data behind the per-layer heatmap: how each front point compresses each layer.

Rows are the front's trials (fastest first), columns the layers in execution order (taken
from the cost estimate's per-layer list, merged across trials whose architectures differ),
and there is one panel per technique found in the plans: weight bits, prune ratio (the share
of channels removed, where the record says: the kept count is rounded to a multiple of the
profiles' ``align.channels``) and, when present, sparsity, rank ratio, cluster k. A technique this module does
not know is shown by its first numeric field, so new plan kinds never break the report.

Example:
    >>> rec = {"number": 3, "state": "complete", "metrics": {"accuracy": 0.9},
    ...        "cost": {"m": {"latency_ms": 2.0, "layers": [{"fqn": "b"}, {"fqn": "a"}]}},
    ...        "plan": {"layers": {"a": [{"kind": "quant", "bits": 4}],
    ...                            "b": [{"kind": "prune", "ratio": 0.5}]}}}
    >>> info = layer_heatmap_info([rec])
    >>> info.layers, [(p.label, p.cells) for p in info.panels]
    (('b', 'a'), [('weight bits', ((None, 4.0),)), ('prune ratio', ((0.5, None),))])
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autocompress.pareto import Budget, Objective, ParetoFront, Record, as_record, get_path
from autocompress.report.info import unit_of
from autocompress.report.panel import KNOB_PARAMS, HeatmapPanel, searched_cells

# kind -> (label, candidate fields, value when the layer exists but the kind is not applied,
#          True when a larger value compresses more)
_KNOWN: dict[str, tuple[str, tuple[str, ...], float | None, bool]] = {
    "quant": ("weight bits", ("bits", "weight_bits", "w_bits"), 32.0, False),
    "prune": ("prune ratio", ("ratio", "amount"), 0.0, True),
    "sparsity": ("sparsity", ("sparsity", "ratio", "amount"), 0.0, True),
    "lowrank": ("rank ratio", ("rank_ratio", "ratio"), 1.0, False),
    "cluster": ("cluster k", ("k", "clusters", "n_clusters"), None, False),
}
# secondary numeric fields shown as their own panel when some layer sets them off-default
_EXTRA: dict[str, tuple[tuple[str, str, float], ...]] = {
    "quant": (("act_bits", "activation bits", 32.0),)}
_ALIASES = {"unstructured": "sparsity", "sparse": "sparsity", "low_rank": "lowrank",
            "svd": "lowrank", "clustering": "cluster", "quantize": "quant", "quantization": "quant",
            "pruning": "prune"}


@dataclass(frozen=True, kw_only=True)
class LayerHeatmapInfo:
    rows: tuple[str, ...]           # e.g. "#6  97.8%  3.18 ms"
    numbers: tuple[int | None, ...]
    layers: tuple[str, ...]
    present: tuple[tuple[bool, ...], ...]
    panels: tuple[HeatmapPanel, ...]
    front_size: int = 0             # front points in all; rows shows at most MAX_ROWS of them

    @property
    def is_empty(self) -> bool:
        return not self.rows or not self.layers or not self.panels

    @property
    def sampled(self) -> str | None:
        """``'30 of the 84 front points, evenly spaced along the front'``, or None when
        every front point has its row."""
        if self.front_size <= len(self.rows):
            return None
        return (f"{len(self.rows)} of the {self.front_size} front points, evenly spaced "
                "along the front")


def technique_of(entry: Mapping[str, Any]) -> tuple[str, str, float] | None:
    """``(kind, field, value)`` for one plan entry, or None when it has no numeric value.
    Unknown kinds use their first numeric field (in key order); a kind with none counts 1.

    >>> technique_of({"kind": "quant", "bits": 4, "per_channel": True})
    ('quant', 'bits', 4.0)
    >>> technique_of({"kind": "mystery", "on": True, "alpha": 0.3})
    ('mystery', 'alpha', 0.3)
    """
    raw_kind = str(entry.get("kind", "?"))
    kind = _ALIASES.get(raw_kind, raw_kind)
    fields = _KNOWN[kind][1] if kind in _KNOWN else tuple(
        k for k, v in entry.items() if k != "kind" and _number(v) is not None)
    for f in fields:
        if (value := _number(entry.get(f))) is not None:
            return kind, f, value
    return (kind, "applied", 1.0) if kind not in _KNOWN else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def execution_order(sequences: Iterable[Sequence[str]]) -> list[str]:
    """Merge per-trial layer orders into one: a topological order of "a runs before b"
    pairs; layers no pair orders go by natural name order (``stages.0.1`` before
    ``stages.1.0``), a cycle (never in one model) by first appearance.

    >>> execution_order([["stem", "s0.0", "s1.0", "head"], ["stem", "s0.0", "s0.1", "head"]])
    ['stem', 's0.0', 's0.1', 's1.0', 'head']
    """
    first: dict[str, int] = {}
    after: dict[str, set[str]] = {}
    indeg: dict[str, int] = {}
    for seq in sequences:
        for name in seq:
            first.setdefault(name, len(first))
            indeg.setdefault(name, 0)
        for a, b in itertools.pairwise(seq):
            if a != b and b not in after.setdefault(a, set()):
                after[a].add(b)
                indeg[b] += 1
    out: list[str] = []
    todo = set(first)
    while todo:
        ready = [n for n in todo if indeg[n] == 0]
        name = (min(ready, key=lambda n: (_natural(n), first[n])) if ready
                else min(todo, key=first.__getitem__))
        out.append(name)
        todo.discard(name)
        for b in after.get(name, ()):
            indeg[b] -= 1
    return out


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _owner(name: str, layers: set[str]) -> str | None:
    """The plan layer a cost layer belongs to: itself, or the layer whose name prefixes it
    (a low-rank layer ``a.b`` runs as its factors ``a.b.0`` and ``a.b.1``)."""
    while name and name not in layers:
        name = name.rpartition(".")[0]
    return name or None


def _cost_layers(rec: Record) -> list[str]:
    names: list[str] = []
    for cost in (rec.get("cost") or {}).values():
        for layer in (cost or {}).get("layers") or ():
            if isinstance(layer, Mapping) and isinstance(layer.get("fqn"), str):
                names.append(layer["fqn"])
    return names


def _plan_layers(rec: Record) -> Mapping[str, Any]:
    plan = rec.get("plan") or {}
    layers = plan.get("layers") if isinstance(plan, Mapping) else None
    return layers if isinstance(layers, Mapping) else {}


def _row_label(rec: Record, objectives: Sequence[Objective]) -> str:
    parts = [f"#{rec.get('number')}"]
    devices = {o.name.split(".")[0] for o in objectives if "." in o.name}
    for o in objectives:
        v = o.get(rec)
        if v is None:
            continue
        if o.name == "accuracy" and 0.0 <= v <= 1.0:
            parts.append(f"{100 * v:.1f}%")
        else:
            text = f"{v:.3g} {unit_of(o.name)}".rstrip()     # KB, µs: as the rest of the report
            # two devices' latencies side by side: say which is which
            parts.append(f"{o.name.split('.')[0]} {text}" if len(devices) > 1 else text)
    if rec.get("baseline"):
        parts.append(f"({rec['baseline']})")
    return "  ".join(parts)


MAX_ROWS = 30   # a 300-point front drew a 25000-pixel-high PNG in 2.5 minutes


def layer_heatmap_info(records: Sequence[Any], objectives: Sequence[Objective] = (),
                       budgets: Sequence[Budget] = (), *, max_rows: int = MAX_ROWS
                       ) -> LayerHeatmapInfo:
    """The heatmap of the front in ``objectives`` (default: accuracy vs the first device's
    latency). Layers are those named in any front plan, in execution order. A front of more
    than ``max_rows`` points shows ``max_rows`` of them, evenly spaced along it (its ends
    included; ``front_size`` says how many there are)."""
    recs = [as_record(r) for r in records]
    objs = list(objectives) or _default_objectives(recs)
    front = list(ParetoFront.from_records(recs, objs, budgets).points)
    size = len(front)
    if size > max_rows > 1:
        front = [front[round(i * (size - 1) / (max_rows - 1))] for i in range(max_rows)]
    plans = [_plan_layers(r) for r in front]
    coupled = [{f for f in (r.get("channels") or {}) if (_pruned_share(r, f) or 0) > 0}
               for r in front]           # pruned with a layer the plan prunes (no entry)
    in_plans = {name for p in plans for name in p} | set().union(*coupled)
    owners = ([_owner(n, in_plans) for n in _cost_layers(r)] for r in front)
    order = [n for n in execution_order([o for o in seq if o] for seq in owners)
             if n in in_plans]
    order += sorted(in_plans - set(order), key=_natural)
    known = [set(_cost_layers(r)) | set(p) for r, p in zip(front, plans, strict=True)]
    values: dict[tuple[str, str], dict[tuple[int, str], float]] = {}
    kept = False        # a prune cell shows the channels removed, not the ratio asked
    for i, plan in enumerate(plans):
        for layer, entries in plan.items():
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, Mapping) and (t := technique_of(entry)) is not None:
                    share = _pruned_share(front[i], layer) if t[0] == "prune" else None
                    kept = kept or share is not None
                    values.setdefault(t[:2], {})[(i, layer)] = t[2] if share is None else share
                    for field, _, off in _EXTRA.get(t[0], ()):
                        if (v := _number(entry.get(field))) is not None and v != off:
                            values.setdefault((t[0], field), {})[(i, layer)] = v
    pruned_with = set().union(*coupled)  # 0 in a row where its leader was left unpruned
    for i in range(len(front)):
        for layer in pruned_with & known[i]:
            cells = values.setdefault(("prune", "ratio"), {})
            if (i, layer) not in cells:
                cells[(i, layer)] = _pruned_share(front[i], layer) or 0.0
                kept = True
    panels = []
    for (kind, field), vals in sorted(values.items(), key=lambda kv: _panel_rank(*kv[0])):
        label, _, off, higher = _KNOWN.get(kind, (f"{kind} {field}", (), None, True))
        extra = {f: (lab, o) for f, lab, o in _EXTRA.get(kind, ())}
        if field in extra:
            (label, off), higher = extra[field], False
        elif kind == "prune" and kept:
            label = "channels pruned"
        cells = tuple(tuple(vals.get((i, layer)) for layer in order) for i in range(len(front)))
        panels.append(HeatmapPanel(kind=kind, field=field, label=label, cells=cells,
                                   off_value=off, higher_compresses_more=higher,
                                   searched=searched_cells(
                                       front, KNOB_PARAMS.get((kind, field)), vals, order)))
    return LayerHeatmapInfo(
        rows=tuple(_row_label(r, objs) for r in front),
        numbers=tuple(r.get("number") for r in front), layers=tuple(order),
        present=tuple(tuple(layer in k for layer in order) for k in known),
        panels=tuple(panels), front_size=size)


def _pruned_share(rec: Record, layer: str) -> float | None:
    """The share of ``layer``'s output channels its pruning removed (the record's
    ``channels``: [kept, of]), or None when the record does not say (an older run)."""
    pair = (rec.get("channels") or {}).get(layer)
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and
            all(_number(v) is not None for v in pair) and pair[1] > 0):
        return None
    return 1.0 - pair[0] / pair[1]


def _panel_rank(kind: str, field: str) -> tuple[int, int, str]:
    known = list(_KNOWN)
    extra = [f for f, _, _ in _EXTRA.get(kind, ())]
    return (known.index(kind) if kind in known else len(known),
            1 + extra.index(field) if field in extra else 0, kind)


def _default_objectives(records: Sequence[Record]) -> list[Objective]:
    for rec in records:
        for profile, cost in (rec.get("cost") or {}).items():
            if get_path({"c": cost}, "c.latency_ms") is not None:
                return [Objective.accuracy(), Objective.latency(profile)]
    return [Objective.accuracy()]
