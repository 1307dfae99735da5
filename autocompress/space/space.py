"""Search space: arch, distillation and per-layer compression knobs from YAML.

Rules address layers by exact fqn or ``re:`` regex. For each (layer, knob), an exact rule
that sets the knob wins, else the first regex rule that sets it. ``skip: true`` removes every
knob of the layers it matches. ``share: true`` makes one parameter for
all the layers a rule matches (implied for the sparsity knobs of a rule that fixes
``sparsity.scope: global``: those layers share one threshold and the lead's ratio). A rule
that matches no eligible layer is an error at its line (found when the space is bound to a
model's layers: ``resolved.resolve``).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.errors import SpaceError, did_you_mean
from autocompress.space.distributions import Distribution, parse_distribution
from autocompress.space.knobs import (
    ARCH_KNOBS,
    DISTILL_KNOBS,
    FAMILY_ARCH_KNOBS,
    LAYER_KNOBS,
    SPEC_KEYS,
)
from autocompress.space.reference import parse_reference
from autocompress.yamlio import Located, load_yaml

RULE_KEYS = ("match", "skip", "share", *LAYER_KNOBS)
TOP_KEYS = ("version", "family", "base", "arch", "reference", "distill", "rules")


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
