"""Search space: arch, distillation and per-layer compression knobs from YAML.

Rules address layers by exact fqn or ``re:`` regex. For each (layer, knob), an exact rule
that sets the knob wins, else the first regex rule that sets it. ``skip: true`` removes every
knob of the layers it matches. ``share: true`` makes one parameter for
all the layers a rule matches (implied for the sparsity knobs of a rule that fixes
``sparsity.scope: global``: those layers share one threshold and the lead's ratio). A rule
that matches no eligible layer is an error at its line.

``ResolvedSpace.to_plan(params)`` is the only way sampled parameters become a plan.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.compress.plan import CompressionPlan, DistillConfig, TechniqueConfig
from autocompress.errors import SpaceError, did_you_mean
from autocompress.space.distributions import (
    Choice,
    Distribution,
    Fixed,
    parse_distribution,
    takes,
)
from autocompress.space.knobs import (
    ARCH_KNOBS,
    DISTILL_KNOBS,
    FAMILY_ARCH_KNOBS,
    LAYER_KNOBS,
    SPEC_KEYS,
    glob_hint,
    layer_configs,
    param_prefix,
)
from autocompress.space.reference import parse_reference
from autocompress.yamlio import Located, load_yaml

RULE_KEYS = ("match", "skip", "share", *LAYER_KNOBS)
TOP_KEYS = ("version", "family", "base", "arch", "reference", "distill", "rules")
LEADERS_WHY = ("it applies to prune-group leaders (the layer writing the model's output is "
               "never pruned, a layer coupled to a leader is pruned with it); ")


@dataclass(frozen=True, kw_only=True)
class Rule:
    index: int
    pattern: str
    knobs: Mapping[str, Distribution]
    skip: bool = False
    share: bool = False

    @property
    def is_regex(self) -> bool:
        return self.pattern.startswith("re:")

    def matches(self, fqn: str) -> bool:
        if self.is_regex:
            return re.fullmatch(self.pattern[3:], fqn) is not None
        return self.pattern == fqn


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    doc: Located
    family: str | None
    base: Mapping[str, Any]
    arch: Mapping[str, Distribution]
    distill: Mapping[str, Distribution]
    rules: tuple[Rule, ...]
    reference: Mapping[str, Any] = field(default_factory=dict)   # the baselines' student

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        return cls.parse(load_yaml(path, what="search space", cls=SpaceError))

    @classmethod
    def parse(cls, doc: Located) -> SearchSpace:
        data = doc.data or {}
        if not isinstance(data, dict):
            raise doc.error((), "a search space must be a mapping", cls=SpaceError)
        _check_keys(doc, (), data, TOP_KEYS)
        if data.get("version", 1) != 1:
            raise doc.error(("version",), f"unsupported version {data['version']!r}",
                            hint="expected 1", cls=SpaceError)
        family = data.get("family")
        if family is not None and family not in FAMILY_ARCH_KNOBS:
            raise doc.error(("family",), f"unknown student family {family!r}", cls=SpaceError,
                            hint=did_you_mean(str(family), FAMILY_ARCH_KNOBS)
                            or f"families: {', '.join(FAMILY_ARCH_KNOBS)}")
        if not any(data.get(k) for k in ("arch", "rules", "distill")):
            raise doc.error((), "the search space searches nothing: it needs rules (per-layer "
                            "knobs), arch or distill", cls=SpaceError,
                            hint="see search_spaces/mobilenet_digits.yaml")
        knobs = FAMILY_ARCH_KNOBS[family or "mobilenet_v2"]
        base = data.get("base") or {}
        from autocompress.models.families import check_base  # torch: on use

        check_base(doc, family, base)
        arch = _parse_section(doc, "arch", data.get("arch") or {},
                              {k: v for k, v in ARCH_KNOBS.items() if k in knobs})
        distill = _parse_section(doc, "distill", data.get("distill") or {}, DISTILL_KNOBS)
        rules = []
        for i, raw in enumerate(data.get("rules") or []):
            path = ("rules", i)
            if not isinstance(raw, dict) or "match" not in raw:
                raise doc.error(path, "each rule needs a 'match' key", cls=SpaceError,
                                hint="e.g. match: 're:stages\\..*\\.expand\\.conv'")
            _check_keys(doc, path, raw, RULE_KEYS)
            for flag in ("skip", "share"):
                if flag in raw and not isinstance(raw[flag], bool):
                    raise doc.error((*path, flag), f"expected true or false, got "
                                    f"{raw[flag]!r}", cls=SpaceError,
                                    hint=f"{flag}: true (a quoted 'no' or 'false' is a string)")
            pattern = str(raw["match"])
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise doc.error((*path, "match"), f"bad regex: {exc}", cls=SpaceError) from None
            knobs = {k: parse_distribution(doc, (*path, k), raw[k],
                                           **{s: LAYER_KNOBS[k][s] for s in SPEC_KEYS
                                              if s in LAYER_KNOBS[k]})
                     for k in LAYER_KNOBS if k in raw}
            rules.append(Rule(index=i, pattern=pattern, knobs=knobs, skip=bool(raw.get("skip")),
                              share=bool(raw.get("share"))))
        return cls(doc=doc, family=data.get("family"), base=base, arch=arch,
                   distill=distill, rules=tuple(rules),
                   reference=parse_reference(doc, data.get("reference") or {}, arch))

    def max_arch(self) -> dict[str, int]:     # layer names are resolved on the largest
        return {k: max(self.arch[k].values()) for k in ("depth", "expand") if k in self.arch}


def _check_keys(doc: Located, path: tuple, data: dict, known: tuple[str, ...]) -> None:
    for key in data:
        if key not in known:
            hint = did_you_mean(key, known) or f"known keys: {', '.join(known)}"
            raise doc.error((*path, key), f"unknown key '{key}'", hint=hint, cls=SpaceError)


def _parse_section(doc: Located, name: str, raw: Any, knobs: dict[str, dict[str, Any]]
                   ) -> dict[str, Distribution]:
    if not isinstance(raw, dict):
        raise doc.error((name,), f"'{name}' must be a mapping", cls=SpaceError)
    _check_keys(doc, (name,), raw, tuple(knobs))
    return {k: parse_distribution(doc, (name, k), v, **knobs[k]) for k, v in raw.items()}


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
            factorizable: list[str] | None = None) -> ResolvedSpace:
    """Bind ``space`` to a model's layers (names from the largest architecture).
    ``factorizable``: the layers low-rank applies to (not grouped or depthwise convs;
    default: every quantizable layer)."""
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

