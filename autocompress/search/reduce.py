"""Hardware-aware space reduction: before any trial, drop the values of a per-layer format
knob that no device in the run rewards.

A value of ``quant.bits``, ``quant.act_bits`` or ``sparsity.ratio`` is dropped when a more
faithful value of the same knob on the same layer (more bits, less sparsity) costs no more
on every metric the run cares about (its cost objectives and its budgets, on every
profile) on both the largest and the smallest candidate of the space. Such a value can only
lose accuracy. Example: on an MCU whose kernels run int8 only, 2- and 4-bit weights run as
slowly as int8 (they are costed as the next supported format); unless Flash is an objective
or a budget, they buy nothing, and a per-layer search that keeps them spends most of its
trials on candidates hobbled by 2-bit layers. Add ``<profile>.flash_kb`` to the objectives
or a ``max_flash_kb`` budget and they are searched again; ``search.reduce_space: false``
keeps every value regardless.

Only formats are reduced: they leave the model's shapes alone, so each probe is one cost
estimate on a graph traced once per reference (well under a second in all). Arch, pruning
and distillation knobs trade accuracy for cost in ways a cost model cannot rank.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from autocompress.hardware.cost import BUDGET_KEYS
from autocompress.space import ResolvedSpace
from autocompress.space.distributions import Choice, Fixed

if TYPE_CHECKING:
    from autocompress.search.setup import SearchContext

# knob -> +1 when a larger value is more faithful (keeps more accuracy), -1 when smaller is
FAITHFUL: dict[str, int] = {"quant.bits": 1, "quant.act_bits": 1, "sparsity.ratio": -1}


@dataclass(frozen=True)
class Reduction:
    dropped: Mapping[str, tuple[Any, ...]]     # param name -> values dropped
    metrics: tuple[str, ...]                  # "<profile>.<metric>" the probes compared

    def summary(self) -> str:
        if not self.dropped:
            return ""
        by_knob: dict[tuple[str, tuple[Any, ...]], int] = {}
        for name, values in self.dropped.items():
            key = (name.split("/")[0], values)
            by_knob[key] = by_knob.get(key, 0) + 1
        parts = [f"{knob} {', '.join(map(str, vals))} on {n} layer(s)"
                 for (knob, vals), n in sorted(by_knob.items(), key=str)]
        return (f"space: dropped {'; '.join(parts)}: no cheaper than a more faithful value "
                f"on {', '.join(self.metrics) or 'any metric'} (search.reduce_space: false "
                "keeps them)")

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics),
                "dropped": {k: list(v) for k, v in self.dropped.items()}}


def cared_metrics(ctx: SearchContext) -> tuple[str, ...]:
    """``<profile>.<metric>`` of every cost objective and every budgeted quantity."""
    out = [o for o in ctx.objectives if o != "accuracy"]
    for prof, budget in ctx.budgets.items():
        out += [f"{prof}.{BUDGET_KEYS[k]}" for k in budget if k in BUDGET_KEYS]
    return tuple(dict.fromkeys(out))


def _references(ctx: SearchContext) -> list[dict[str, Any]]:
    """The largest, most faithful candidate and the cheapest one."""
    from autocompress.search.baselines import largest_arch
    from autocompress.search.study import cheapest_params

    rs = ctx.rspace
    largest = rs.uniform_params(base=largest_arch(rs))
    for name, dist in rs.dists.items():
        if name.split("/")[0] in FAITHFUL and not isinstance(dist, Fixed):
            values = sorted(dist.values(), key=lambda v: FAITHFUL[name.split("/")[0]] * v)
            largest[name] = values[-1]
    return [largest, cheapest_params(rs)]


def _vector(ctx: SearchContext, plan: Any, graph: Any, metrics: tuple[str, ...]
            ) -> tuple[float, ...]:
    from autocompress.search.objective import estimate

    costs = estimate(ctx, plan, graph)
    return tuple(costs[m.split(".")[0]].summary()[m.split(".", 1)[1]] for m in metrics)


def dominated(ctx: SearchContext) -> Reduction:
    """Values of format knobs that a more faithful value dominates on cost (see module doc)."""
    from autocompress.graph import inspect_model
    from autocompress.search.objective import build_compressed

    rs, metrics = ctx.rspace, cared_metrics(ctx)
    owner = {name: (fqn, knob) for fqn, knobs in rs.layer_params.items()
             for knob, name in knobs.items()}
    probed = {name: d for name, d in rs.dists.items() if isinstance(d, Choice)
              and len(d.choices) > 1 and owner.get(name, ("", ""))[1] in FAITHFUL}
    if not probed:
        return Reduction(dropped={}, metrics=metrics)
    vectors: dict[str, list[dict[Any, tuple[float, ...]]]] = {n: [] for n in probed}
    for params in _references(ctx):
        plan = rs.to_plan(params)
        graph = inspect_model(build_compressed(ctx, plan, ctx.cfg.seed), ctx.example())
        present = {layer.fqn for layer in graph.layers}
        for name, dist in probed.items():
            fqn = owner[name][0]
            if fqn not in present and f"{fqn}.0" not in present:
                continue   # this reference has no such layer (e.g. a shallower stage)
            vectors[name].append({v: _vector(ctx, rs.to_plan({**params, name: v}), graph,
                                             metrics) for v in dist.choices})
    dropped: dict[str, tuple[Any, ...]] = {}
    for name, dist in probed.items():
        sign, refs = FAITHFUL[owner[name][1]], vectors[name]
        if not refs:
            continue
        gone = tuple(v for v in dist.choices if any(
            sign * w > sign * v and all(_no_worse(r[w], r[v]) for r in refs)
            for w in dist.choices))
        if gone:
            dropped[name] = gone
    return Reduction(dropped=dropped, metrics=metrics)


def _no_worse(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y + 1e-9 * max(1.0, abs(y)) for x, y in zip(a, b, strict=True))


def reduced(rspace: ResolvedSpace, red: Reduction) -> ResolvedSpace:
    """``rspace`` without the dropped values. A parameter left with one value stays a
    one-value choice, not ``Fixed``: baselines set it like any searched parameter, so one
    outside the reduced space (uniform int4) is still evaluated, from its own values."""
    dists = dict(rspace.dists)
    for name, gone in red.dropped.items():
        dist = dists[name]
        assert isinstance(dist, Choice)
        kept = tuple(v for v in dist.choices if v not in gone)
        dists[name] = Choice(choices=kept)
    return replace(rspace, dists=dists)
