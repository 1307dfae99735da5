"""A search space bound to one model's layers (``resolve``): fixed parameter names and
distributions. Each (layer, knob) gets its own parameter ``<prefix>/<fqn>``, or one per rule
``<prefix>/rule<i>`` shared by the layers it matches (``share: true``, global sparsity).

``ResolvedSpace.to_plan(params)`` is the only way sampled parameters become a plan.

>>> from autocompress.yamlio import Located
>>> space = SearchSpace.parse(Located(data={"rules": [{"match": "re:.*", "quant.bits": [4, 8]}]},
...                                   file="s.yaml"))
>>> rs = resolve(space, quant_layers=["a", "b"], prune_leaders=["a"])
>>> sorted(rs.distributions()), rs.to_plan({"quant/a": 4, "quant/b": 8}).layers["a"][0].bits
(['quant/a', 'quant/b'], 4)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autocompress.compress.plan import CompressionPlan, DistillConfig, TechniqueConfig
from autocompress.errors import SpaceError, did_you_mean
from autocompress.space.distributions import Choice, Distribution, Fixed, takes
from autocompress.space.knobs import LAYER_KNOBS, glob_hint, layer_configs, param_prefix
from autocompress.space.space import SearchSpace

LEADERS_WHY = ("it applies to prune-group leaders (the layer writing the model's output is "
               "never pruned, a layer coupled to a leader is pruned with it); ")


@dataclass(frozen=True, kw_only=True)
class ResolvedSpace:
    """The space bound to one model's layers: fixed parameter names and distributions."""

    space: SearchSpace
    dists: Mapping[str, Distribution]                   # searchable + fixed, by param name
    layer_params: Mapping[str, Mapping[str, str]]      # fqn -> knob -> param name
    num_stages: int = 0
    layer_names: Callable[[Mapping[str, Any]], list[str]] | None = field(default=None,
                                                                          compare=False)
    # every quantizable layer no rule skips: a uniform baseline quantizes each of them
    quant_layers: tuple[str, ...] = ()

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions of every searched parameter (fixed ones excluded)."""
        return {n: d.to_optuna() for n, d in self.dists.items() if not isinstance(d, Fixed)}

    def fixed(self) -> dict[str, Any]:
        return {n: d.value for n, d in self.dists.items() if isinstance(d, Fixed)}

    def arch_from(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if not self.num_stages:
            return {}
        arch: dict[str, Any] = dict(self.space.base)
        values = {**self.fixed(), **params}
        if "arch/width_mult" in values:
            arch["width_mult"] = float(values["arch/width_mult"])
        for knob, key in (("depth", "depths"), ("kernel", "kernels"), ("expand", "expands")):
            names = [f"arch/{knob}/{s}" for s in range(self.num_stages)]
            if all(n in values for n in names):
                arch[key] = [int(values[n]) for n in names]
        return arch

    def to_plan(self, params: Mapping[str, Any]) -> CompressionPlan:
        """Turn sampled parameters into a plan (pure)."""
        values = {**self.fixed(), **params}
        missing = sorted(set(self.dists) - set(values))
        if missing:
            raise SpaceError(f"parameters missing: {missing[:5]}")
        arch = self.arch_from(values)
        present = set(self.layer_names(arch)) if self.layer_names else None
        layers: dict[str, tuple[TechniqueConfig, ...]] = {}
        extra = {n.split("/", 1)[1]: v for n, v in params.items()       # a uniform baseline's
                 if n.startswith("quant/") and n not in self.dists}     # bits on layers no
        for fqn in dict.fromkeys([*self.layer_params, *extra]):         # rule quantizes
            if present is not None and fqn not in present:
                continue
            knobs = self.layer_params.get(fqn, {})
            cfgs = layer_configs({**{k: values[name] for k, name in knobs.items()},
                                  **({"quant.bits": extra[fqn]} if fqn in extra else {})})
            if cfgs:
                layers[fqn] = tuple(cfgs)
        # candidates always learn from the teacher: a space without ``distill:`` gets the
        # defaults (T 4, alpha 0.5); ``distill: {alpha: 0}`` switches KD off
        default = DistillConfig()
        distill = DistillConfig(
            temperature=float(values.get("distill/temperature", default.temperature)),
            alpha=float(values.get("distill/alpha", default.alpha)),
            feature_weight=float(values.get("distill/feature_weight", default.feature_weight)))
        return CompressionPlan(arch=arch, layers=layers, distill=distill).with_global_lead()

    def uniform_params(self, *, bits: int | None = None, ratio: float = 0.0,
                       base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Parameters for a baseline: every layer at ``bits`` / ``ratio``, others from ``base``
        (or the last choice / the middle of a range)."""
        out: dict[str, Any] = {}
        if bits is not None and bits != 32:         # layers no rule quantizes: these bits too
            out.update({f"quant/{f}": bits for f in self.quant_layers
                        if "quant.bits" not in self.layer_params.get(f, {})})
        for name, dist in self.dists.items():
            if isinstance(dist, Fixed):
                continue
            if name.startswith("quant/") and bits is not None:
                out[name] = bits
            elif name.startswith("prune/"):
                out[name] = ratio
            elif (knob := name.split("/")[0]) in LAYER_KNOBS and takes(
                    dist, LAYER_KNOBS[knob].get("default")):
                out[name] = LAYER_KNOBS[knob]["default"]   # other techniques off
            elif base is not None and name in base:
                out[name] = base[name]
            elif isinstance(dist, Choice):
                out[name] = dist.choices[-1]
            else:  # a range: its midpoint (e.g. a middling distillation temperature)
                mid = (dist.low + dist.high) / 2
                out[name] = round(mid) if dist.integer else mid
        return out


def resolve(space: SearchSpace, *, quant_layers: list[str], prune_leaders: list[str],
            num_stages: int = 0,
            layer_names: Callable[[Mapping[str, Any]], list[str]] | None = None,
            factorizable: list[str] | None = None,
            unprunable: Callable[[], Mapping[str, str]] | None = None) -> ResolvedSpace:
    """Bind ``space`` to a model's layers (names from the largest architecture).
    ``factorizable``: the layers low-rank applies to (not grouped or depthwise convs;
    default: every quantizable layer); ``unprunable()``: layers left out of pruning, with why
    (asked only where a prune rule matches no leader)."""
    dists: dict[str, Distribution] = {}
    for knob, ref in space.reference.items():
        if isinstance(ref, list) and len(ref) != num_stages:
            raise space.doc.error(("reference", knob), f"{len(ref)} values for {num_stages} "
                                  "stages", cls=SpaceError, hint="give one value per stage, or "
                                  "one value for all")
    for knob, dist in space.arch.items():
        if knob == "width_mult":
            dists["arch/width_mult"] = dist
        elif num_stages:
            for s in range(num_stages):
                dists[f"arch/{knob}/{s}"] = dist
    for knob, dist in space.distill.items():
        dists[f"distill/{knob}"] = dist
    on = {"leaders": prune_leaders, "factorizable": quant_layers if factorizable is None
          else factorizable}
    eligible = {k: on.get(spec.get("on", ""), quant_layers) for k, spec in LAYER_KNOBS.items()}
    skipped = {fqn for fqn in quant_layers + prune_leaders
               if any(r.skip and r.matches(fqn) for r in space.rules)}
    layer_params: dict[str, dict[str, str]] = {}
    for rule in space.rules:
        hits = [f for f in dict.fromkeys(quant_layers + prune_leaders) if rule.matches(f)]
        if not hits:
            near = glob_hint(rule.pattern) or did_you_mean(rule.pattern,
                                                             quant_layers + prune_leaders)
            raise space.doc.error(("rules", rule.index, "match"),
                                  f"'{rule.pattern}' matches no layer", cls=SpaceError,
                                  hint=near or f"layers are e.g. {', '.join(quant_layers[:4])}")
        for knob, dist in rule.knobs.items():
            targets = [f for f in eligible[knob] if rule.matches(f)]
            if not targets:
                why = LEADERS_WHY if LAYER_KNOBS[knob].get("on") == "leaders" else ""
                out = unprunable() if why and unprunable else {}
                if left := [f for f in out if rule.matches(f)]:
                    why = f"{left[0]} is left out of pruning: its group is {out[left[0]]}; "
                raise space.doc.error(("rules", rule.index, knob), f"'{rule.pattern}' matches "
                                      f"no layer {knob} applies to", cls=SpaceError,
                                      hint=f"{why}eligible: {', '.join(eligible[knob][:6])}")
            for fqn in targets:
                if fqn in skipped or knob in layer_params.get(fqn, {}):
                    continue
                if not rule.is_regex or not _exact_rule_sets(space, fqn, knob):
                    prefix = param_prefix(knob)
                    shared = rule.share or (knob.startswith("sparsity.") and  # one global
                                            rule.knobs.get("sparsity.scope") == Fixed(value="global"))
                    name = f"{prefix}/rule{rule.index}" if shared else f"{prefix}/{fqn}"
                    dists[name] = dist
                    layer_params.setdefault(fqn, {})[knob] = name
    return ResolvedSpace(space=space, dists=dists, layer_params=layer_params,
                         num_stages=num_stages, layer_names=layer_names,
                         quant_layers=tuple(f for f in quant_layers if f not in skipped))


def _exact_rule_sets(space: SearchSpace, fqn: str, knob: str) -> bool:
    return any(not r.is_regex and r.pattern == fqn and knob in r.knobs for r in space.rules)
