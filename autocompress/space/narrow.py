"""Narrow a search space by measured per-layer sensitivity (``autocompress sensitivity RUN_DIR
--narrow OUT.yaml``), as NNI's sensitivity-based pruner and AMC/HAQ's per-layer limits do:
a layer's bit-widths, prune ratios and sparsity ratios that lost more than ``max_drop``
accuracy points when that layer alone was compressed are removed from its choices, and so
is every value that compresses that layer at least as hard (fewer bits, a higher ratio).
A listed value no probe speaks for is kept, and so is the least compressing value of every
knob: a narrowed knob never becomes empty. A range ends below its first bad probe, at the
last good one (or its low end). The sparsity ratio of a rule that fixes
``sparsity.scope: global`` is left as it is: it sets one threshold over its layers, which no
one-layer probe measures.

A layer's own parameter is narrowed in the exact rule that sets it, or by a new exact rule
appended for it (exact rules win over regex rules wherever they stand; appended, the rules
already there keep their indices, and so a shared parameter its name); a parameter that a
``share: true`` rule gives several layers is narrowed in that rule, by what any of its
layers lost. Narrowed values are written as a list, even a single one, so that the
run's uniform baselines stay what they were (a value outside a list makes a baseline
evaluated from its own parameters, not a trial the space would drop).

>>> from autocompress.space.distributions import Choice, Range
>>> narrow_values("quant.bits", Choice(choices=(2, 4, 8)), [(4, 0.5), (2, 6.0)], 2.0)
[4, 8]
>>> narrow_values("prune.ratio", Range(low=0.0, high=0.75), [(0.25, 1.0), (0.5, 30.0)], 2.0)
{'low': 0.0, 'high': 0.25}
>>> narrow_values("prune.ratio", Choice(choices=(0.0, 0.5)), [(0.25, 3.0)], 2.0)
[0.0]
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autocompress.compress.plan import PruneConfig, QuantConfig
from autocompress.space.distributions import Choice, Distribution, Fixed, Range

# the knobs a sensitivity probe measures, and whether a higher value compresses harder
NARROWED = {"quant.bits": False, "prune.ratio": True, "sparsity.ratio": True}

Measured = Sequence[tuple[Any, float | None]]       # (probed value, accuracy points lost)


def _at_least_as_hard(knob: str, value: Any, than: Any) -> bool:
    return value >= than if NARROWED[knob] else value <= than


def narrow_values(knob: str, dist: Distribution, measured: Measured, max_drop: float
                  ) -> Any:
    """``dist`` without the values known to lose more than ``max_drop`` points, as YAML
    (a list, or ``{low, high, ...}`` for a range); None when nothing is removed."""
    bad = [v for v, lost in measured if lost is not None and lost > max_drop]
    if not bad or isinstance(dist, Fixed):
        return None
    if isinstance(dist, Choice):
        keep = [v for v in dist.choices if not any(_at_least_as_hard(knob, v, p) for p in bad)]
        if len(keep) == len(dist.choices):
            return None
        lightest = min(dist.choices) if NARROWED[knob] else max(dist.choices)
        return keep or [lightest]
    return _narrow_range(knob, dist, measured, bad)


def _narrow_range(knob: str, dist: Range, measured: Measured, bad: list[Any]) -> Any:
    if not NARROWED[knob]:                     # bits: every width up to the worst bad one goes
        low = int(max(bad)) + 1
        if dist.step:                          # up onto the range's grid
            step = int(dist.step)
            low = int(dist.low) + -(-(low - int(dist.low)) // step) * step
        if low <= dist.low:
            return None
        return [int(dist.high)] if low >= dist.high else _range(dist, low, dist.high)
    first_bad = min(bad)
    if first_bad > dist.high:
        return None
    safe = [v for v, lost in measured if lost is not None and dist.low <= v < first_bad]
    high = max(safe, default=dist.low)
    if dist.step:                              # down onto the range's grid
        high = round(dist.low + int((high - dist.low) / dist.step + 1e-9) * dist.step, 10)
    return [dist.low] if high <= dist.low else _range(dist, dist.low, high)


def _range(dist: Range, low: Any, high: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"low": low, "high": high}
    if dist.step:
        out["step"] = dist.step
    if dist.log:
        out["log"] = True
    return out


@dataclass(frozen=True, kw_only=True)
class Narrowing:
    exact: dict[str, dict[str, Any]]            # fqn -> knob -> narrowed YAML value
    shared: dict[int, dict[str, Any]]           # rule index -> knob -> narrowed YAML value
    lines: list[str]                            # what changed, one line each


def narrow(rspace: Any, measured: Mapping[str, Mapping[str, Measured]], max_drop: float
           ) -> Narrowing:
    """The narrowing of ``rspace`` (a ResolvedSpace) by ``measured[fqn][knob]``: (probed
    value, points lost) pairs, for the layers a sensitivity run probed."""
    users: dict[str, list[str]] = {}
    for fqn, knobs in rspace.layer_params.items():
        for knob, name in knobs.items():
            if knob in NARROWED:
                users.setdefault(name, []).append(fqn)
    exact: dict[str, dict[str, Any]] = {}
    shared: dict[int, dict[str, Any]] = {}
    lines: list[str] = []
    for name, fqns in users.items():
        knob = next(k for k, n in rspace.layer_params[fqns[0]].items() if n == name)
        scope = rspace.layer_params[fqns[0]].get("sparsity.scope")
        if knob == "sparsity.ratio" and scope and rspace.dists[scope] == Fixed(value="global"):
            continue             # one threshold over the layers, not one layer's ratio
        probed = [m for f in fqns for m in measured.get(f, {}).get(knob, ())]
        new = narrow_values(knob, rspace.dists[name], probed, max_drop)
        if new is None:
            continue
        worst = max((m for m in probed if m[1] is not None), key=lambda m: m[1])
        lines.append(f"{', '.join(fqns) if len(fqns) < 4 else f'{len(fqns)} layers'} {knob}: "
                     f"{_text(rspace.dists[name])} -> {new} (lost {worst[1]:.1f} points at "
                     f"{worst[0]:g})")
        if name.split("/", 1)[1] == fqns[0] and len(fqns) == 1:
            exact.setdefault(fqns[0], {})[knob] = new
        else:                                    # a share: true rule's one parameter
            shared.setdefault(int(name.rsplit("/rule", 1)[1]), {})[knob] = new
    return Narrowing(exact=exact, shared=shared, lines=lines)


def _text(dist: Distribution) -> Any:
    if isinstance(dist, Choice):
        return list(dist.choices)
    return _range(dist, dist.low, dist.high) if isinstance(dist, Range) else dist.value


def narrowed_document(raw: Mapping[str, Any], narrowing: Narrowing) -> dict[str, Any]:
    """The space file's data with the narrowing applied (see the module docstring)."""
    doc = dict(raw)
    rules = [dict(r) for r in (raw.get("rules") or [])]
    for index, knobs in narrowing.shared.items():
        rules[index].update(knobs)
    for fqn, knobs in narrowing.exact.items():
        rest = dict(knobs)
        for rule in rules:                    # the exact rule that sets a knob: in place
            if str(rule.get("match")) == fqn:
                for knob in [k for k in rest if k in rule]:
                    rule[knob] = rest.pop(knob)
        if rest:
            rules.append({"match": fqn, **rest})
    doc["rules"] = rules
    return doc


def measured_by_layer(probes: Sequence[Any], result: Mapping[str, Any]
                      ) -> dict[str, dict[str, list[tuple[Any, float | None]]]]:
    """``{fqn: {knob: [(probed value, points lost), ...]}}`` of a sensitivity result
    (``autocompress.sensitivity.analyse``) and its probes (a ``config`` each)."""
    out: dict[str, dict[str, list[tuple[Any, float | None]]]] = {}
    for fqn, row in result["drop"].items():
        for probe in probes:
            c = probe.config
            knob, value = (("quant.bits", c.bits) if isinstance(c, QuantConfig) else
                           ("prune.ratio" if isinstance(c, PruneConfig) else "sparsity.ratio",
                            c.ratio))
            change = row.get(probe.label)
            out.setdefault(fqn, {}).setdefault(knob, []).append(
                (value, None if change is None else -100 * change))
    return out
