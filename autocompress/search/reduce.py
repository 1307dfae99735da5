"""Before any trial: refuse a budget that even the space's cheapest candidate misses
(``check_budget_reachable``), and hardware-aware space reduction: drop the values of a
per-layer format knob that no device in the run rewards.

A value of ``quant.bits``, ``quant.act_bits`` or ``sparsity.ratio`` is dropped when a more
faithful value of the same knob on the same layer(s) (more bits, less sparsity) gives a
different deployed format yet costs no more on every metric the run cares about (its cost
objectives and budgets, on the profiles they name), on both the largest and the smallest
candidate of the space. Assuming fewer bits and more sparsity never raise accuracy, such a
value can only lose it. Example: on an MCU whose kernels run int8 only, 2- and 4-bit weights
run as slowly as int8 (they are costed as the next supported format); unless Flash is an
objective or a budget, they buy nothing, and a per-layer search that keeps them spends most
of its trials on candidates hobbled by 2-bit layers. Add ``<profile>.flash_kb`` to the
objectives or a ``max_flash_kb`` budget and they are searched again;
``search.reduce_space: false`` keeps every value regardless.

Latency and Flash add up layer by layer (but for boundaries between float and integer layers,
and a layer without a quant rule, costed int8 once any other layer is integer: that only
ever favours integer values), so two references suffice for them; peak SRAM is a
maximum over the execution order, so for it the probe compares the layer's own activation
width instead (a narrower activation is never dropped while peak SRAM counts). Values with
the same deployed format (``act_bits`` 32 and 8 on an int8 layer: it runs int8 either way)
are both kept, as are global-scope sparsity ratios (one ratio spans many layers). With no
cost objective and no budget nothing is dropped. Only formats are reduced: they leave the
model's shapes alone, so each probe is one cost estimate on a graph traced once per
reference. The search computes the reduction once, stores it in ``space_reduction.json``,
and every worker, resume and Ray actor reads it from there.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocompress.config_checks import field_loc
from autocompress.errors import AutocompressError, ConfigError, SpaceError, raised, user_frame
from autocompress.hardware.cost import BUDGET_KEYS
from autocompress.search.rundir import REDUCTION_FILE
from autocompress.space import ResolvedSpace
from autocompress.space.distributions import Choice, Fixed

if TYPE_CHECKING:
    from autocompress.search.setup import SearchContext

# knob -> +1 when a larger value is more faithful (keeps more accuracy), -1 when smaller is
FAITHFUL: dict[str, int] = {"quant.bits": 1, "quant.act_bits": 1, "sparsity.ratio": -1}


@dataclass(frozen=True)
class Reduction:
    dropped: Mapping[str, tuple[Any, ...]]     # param name -> values dropped
    metrics: tuple[str, ...] = ()             # "<profile>.<metric>" the probes compared
    layers: Mapping[str, int] = field(default_factory=dict)   # param name -> layers it sets

    def summary(self) -> str:
        if not self.dropped:
            return ""
        by_knob: dict[tuple[str, tuple[Any, ...]], int] = {}
        for name, values in self.dropped.items():
            key = (name.split("/")[0], values)
            by_knob[key] = by_knob.get(key, 0) + self.layers.get(name, 1)
        parts = [f"{knob} {', '.join(map(str, vals))} on {n} layer(s)"
                 for (knob, vals), n in sorted(by_knob.items(), key=str)]
        return (f"space: dropped {'; '.join(parts)}: no cheaper than a more faithful value "
                f"on {', '.join(self.metrics)} (search.reduce_space: false keeps them)")

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), "layers": dict(self.layers),
                "dropped": {k: list(v) for k, v in self.dropped.items()}}

    @classmethod
    def load(cls, run_dir: Path) -> Reduction:
        """The reduction a run stored; nothing dropped for a run made before it existed."""
        path = run_dir / REDUCTION_FILE
        if not path.is_file():
            return NONE
        try:
            data = json.loads(path.read_text())
            return cls(dropped={k: tuple(v) for k, v in data["dropped"].items()},
                       metrics=tuple(data["metrics"]), layers=data.get("layers", {}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"unreadable space reduction ({type(exc).__name__}: {exc})",
                              loc=str(path), hint="restore it from a copy of the run dir: "
                              "the run's study was sampled from the space it reduces") from None


NONE = Reduction(dropped={})


def cared_metrics(ctx: SearchContext, largest: Mapping[str, Any] | None = None
                  ) -> tuple[str, ...]:
    """``<profile>.<metric>`` of every cost objective and every budgeted quantity. A limit
    that only a device's own size sets (no budget in the config) counts where the largest
    candidate's cost ``largest`` (profile -> CostEstimate) breaks it: a 1 MB Flash that every
    candidate fits leaves the 2- and 4-bit values nothing to buy."""
    from autocompress.budgets import device_only

    out = [o for o in ctx.objectives if o != "accuracy"]
    device = device_only(ctx.cfg.hardware.budgets, ctx.device_limits)
    for prof, budget in ctx.budgets.items():
        for key, limit in budget.items():
            metric = f"{prof}.{BUDGET_KEYS[key]}"
            if metric not in device or (largest is not None and
                                        largest[prof].summary()[BUDGET_KEYS[key]] > limit):
                out.append(metric)
    return tuple(dict.fromkeys(out))


def _owners(rs: ResolvedSpace) -> dict[str, tuple[str, list[str]]]:
    """Param name -> (knob, the layers it sets: several for a ``share: true`` rule)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for fqn, knobs in rs.layer_params.items():
        for knob, name in knobs.items():
            out.setdefault(name, (knob, []))[1].append(fqn)
    return out


def _references(rs: ResolvedSpace, owners: Mapping[str, tuple[str, list[str]]]
                ) -> list[dict[str, Any]]:
    """The largest, most faithful candidate and the cheapest one."""
    from autocompress.search.baselines import largest_arch
    from autocompress.search.study import cheapest_params

    largest = rs.uniform_params(base=largest_arch(rs))
    for name, (knob, _) in owners.items():
        dist = rs.dists[name]
        if knob in FAITHFUL and not isinstance(dist, Fixed):
            largest[name] = max(dist.values(), key=lambda v, k=knob: FAITHFUL[k] * v)
    return [largest, cheapest_params(rs)]


def setup_graph(ctx: SearchContext, plan: Any, what: str) -> Any:
    """The traced graph of a candidate built before any trial. A model that runs as built
    but not once the space prunes or factorizes one of its layers (its forward reads that
    layer's size: ``self.fc.in_features``) is the space's problem, said as one line; in a
    trial it is a failed candidate. A failure that never ran the user's code (a built-in
    student, a plain ``nn.Sequential``) is raised as it is: a bug, not the space's."""
    from autocompress.graph import inspect_model
    from autocompress.search.objective import build_compressed

    try:
        return inspect_model(build_compressed(ctx, plan, ctx.cfg.seed), ctx.example())
    except Exception as exc:
        if isinstance(exc, AutocompressError) and exc.loc:
            raise
        # only a forward of the user's can read a layer's size: a built-in student, or a
        # failure that never ran the user's code, is this package's (or Torch-Pruning's) bug
        if ctx.source.is_family or not user_frame(exc.__cause__ or exc):
            raise
        changed = ", ".join(f"{fqn} {c.kind}" for fqn, cfgs in plan.layers.items() for c in cfgs
                            if c.kind in ("prune", "lowrank") and getattr(c, "ratio", 1) > 0)
        why = exc.raw_message if isinstance(exc, AutocompressError) else raised(exc)
        raise SpaceError(f"the space's {what} candidate ({changed or 'no layer reshaped'}) does "
                         f"not run on the model: {why}", loc=str(ctx.cfg.space_path()),
                         hint="a forward that reads a layer's size (self.fc.in_features, a "
                         "view with the channel count written out) breaks when the space "
                         "prunes or factorizes that layer: write x.flatten(1), or leave the "
                         "layer out of the space's prune/lowrank rules") from None


def _probe(ctx: SearchContext, plan: Any, graph: Any, fqns: list[str],
           metrics: tuple[str, ...]) -> tuple[tuple[Any, ...], tuple[float, ...]]:
    """(deployed formats of ``fqns``, cost vector). Peak SRAM is a maximum over the execution
    order, so its entry is the layers' own activation bits (narrower never costs more)."""
    from autocompress.compress.formats import plan_formats
    from autocompress.search.objective import estimate

    formats = plan_formats(plan)
    costs = estimate(ctx, plan, graph)
    vec = []
    for m in metrics:
        prof, metric = m.split(".", 1)
        vec.append(float(sum(formats[f].act_bits for f in fqns if f in formats))
                   if metric == "peak_sram_kb" else costs[prof].summary()[metric])
    return tuple(formats.get(f) for f in fqns), tuple(vec)


def _global_sparsity(rs: ResolvedSpace) -> bool:
    return any("global" in d.values() for n, d in rs.dists.items()
               if n.startswith("sparsity.scope/"))


def dominated(ctx: SearchContext) -> Reduction:
    """Values of format knobs that a more faithful value dominates on cost (see module doc)."""
    from autocompress.search.objective import estimate

    rs, owners = ctx.rspace, _owners(ctx.rspace)
    skip = {"sparsity.ratio"} if _global_sparsity(rs) else set()
    probed = {name: d for name, d in rs.dists.items() if isinstance(d, Choice)
              and len(d.choices) > 1 and name in owners
              and owners[name][0] in FAITHFUL and owners[name][0] not in skip}
    if not probed:
        return Reduction(dropped={}, metrics=cared_metrics(ctx))
    refs = []
    for params, what in zip(_references(rs, owners), ("largest", "cheapest"), strict=True):
        plan = rs.to_plan(params)
        refs.append((params, plan, setup_graph(ctx, plan, what)))
    metrics = cared_metrics(ctx, largest=estimate(ctx, refs[0][1], refs[0][2]))
    if not metrics:
        return Reduction(dropped={}, metrics=metrics)
    probes: dict[str, list[dict[Any, tuple[tuple[Any, ...], tuple[float, ...]]]]] = \
        {n: [] for n in probed}
    for params, _, graph in refs:
        present = {layer.fqn for layer in graph.layers}
        for name, dist in probed.items():
            fqns = owners[name][1]
            if not any(f in present or f"{f}.0" in present for f in fqns):
                continue   # this reference has none of its layers (e.g. a shallower stage)
            probes[name].append({v: _probe(ctx, rs.to_plan({**params, name: v}), graph,
                                           fqns, metrics) for v in dist.choices})
    dropped: dict[str, tuple[Any, ...]] = {}
    for name, dist in probed.items():
        sign, refs = FAITHFUL[owners[name][0]], probes[name]
        gone = tuple(v for v in dist.choices if refs and any(
            _beats(w, v, sign, refs) for w in dist.choices))
        if gone:
            dropped[name] = gone
    return Reduction(dropped=dropped, metrics=metrics,
                     layers={n: len(owners[n][1]) for n in dropped})


def _beats(w: Any, v: Any, sign: int, refs: list[dict[Any, Any]]) -> bool:
    """``w`` is more faithful than ``v``, deploys differently, and costs no more."""
    return (sign * w > sign * v and any(r[w][0] != r[v][0] for r in refs)
            and all(_no_worse(r[w][1], r[v][1]) for r in refs))


def _no_worse(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y + 1e-9 * max(1.0, abs(y)) for x, y in zip(a, b, strict=True))


def reduced(rspace: ResolvedSpace, red: Reduction) -> ResolvedSpace:
    """``rspace`` without the dropped values. A parameter left with one value stays a
    one-value choice, not ``Fixed``: baselines set it like any searched parameter, so one
    outside the reduced space (uniform int4) is still evaluated, from its own values."""
    dists = dict(rspace.dists)
    for name, gone in red.dropped.items():
        dist = dists.get(name)
        kept = tuple(v for v in getattr(dist, "choices", ()) if v not in gone)
        if kept:
            dists[name] = Choice(choices=kept)
    return replace(rspace, dists=dists)


def check_budget_reachable(ctx: SearchContext) -> None:
    """Refuse, before any training or writing, a budget that even the cheapest candidate
    misses. Costing it also checks the cost path (e.g. a LUT without fallback) up front."""
    from autocompress.budgets import device_only
    from autocompress.search.objective import constraints_of, estimate
    from autocompress.search.study import cheapest_params

    params = cheapest_params(ctx.rspace)
    plan = ctx.rspace.to_plan(params)
    costs = estimate(ctx, plan, setup_graph(ctx, plan, "cheapest"))
    constraints = constraints_of(ctx, costs)
    over = {k: v for k, v in constraints.items() if v > 0}
    if over:
        device = device_only(ctx.cfg.hardware.budgets, ctx.device_limits)
        own = {k for k in over if k.replace(".max_", ".", 1) in device}   # the chip's size
        parts = []
        for key, excess in over.items():
            prof, metric = key.split(".", 1)
            value = costs[prof].summary()[metric.removeprefix("max_")]
            parts.append(f"{key} needs {value:.4g} > limit {value - excess:.4g}"
                         + (" (the device's own size)" if key in own else ""))
        raise ConfigError("no candidate in the space can meet the budget: the cheapest one "
                          f"({'; '.join(parts)})", loc=field_loc(ctx.cfg, "hardware.budgets" + (
                              f".{next(iter(over))}" if len(over) == 1 and not own else "")),
                          hint="allow smaller models in the search space, or a smaller input"
                          if own == set(over)
                          else "raise the limits or allow smaller models in the search space")
