"""Compression plan: the JSON-serialisable description of one candidate.

A plan names layers by fully-qualified name, never by object, so it replays on a fresh
model: student architecture + per-layer technique configs + distillation settings.

>>> plan = CompressionPlan(layers={"stem.conv": (QuantConfig(bits=4),)})
>>> CompressionPlan.from_dict(plan.to_dict()) == plan
True
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

PLAN_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TechniqueConfig:
    """Base of per-layer technique configs. ``kind`` is the registry/JSON tag."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True, kw_only=True)
class PruneConfig(TechniqueConfig):
    """Structured channel pruning of the group led by this layer (channels really removed)."""

    kind: ClassVar[str] = "prune"
    ratio: float
    criterion: str = "l1"

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"prune ratio must be in [0, 1), got {self.ratio}")


@dataclass(frozen=True, kw_only=True)
class QuantConfig(TechniqueConfig):
    """Weight quantization (fake-quant + QAT via straight-through estimator)."""

    kind: ClassVar[str] = "quant"
    bits: int
    per_channel: bool = True
    symmetric: bool = True

    def __post_init__(self) -> None:
        if not (2 <= self.bits <= 8 or self.bits == 32):
            raise ValueError(f"quant bits must be in 2..8 or 32 (float), got {self.bits}")


CONFIG_TYPES: dict[str, type[TechniqueConfig]] = {c.kind: c for c in (PruneConfig, QuantConfig)}


def config_from_dict(data: Mapping[str, Any]) -> TechniqueConfig:
    kind = data.get("kind")
    cls = CONFIG_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown technique kind {kind!r}; known: {sorted(CONFIG_TYPES)}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Knowledge distillation: loss = alpha * T^2 * KL(soft) + (1 - alpha) * CE(hard)."""

    temperature: float = 4.0
    alpha: float = 0.5


@dataclass(frozen=True, kw_only=True)
class CompressionPlan:
    arch: Mapping[str, Any] = field(default_factory=dict)
    layers: Mapping[str, tuple[TechniqueConfig, ...]] = field(default_factory=dict)
    distill: DistillConfig | None = None
    version: int = PLAN_VERSION

    def configs(self, cls: type[TechniqueConfig]) -> dict[str, TechniqueConfig]:
        """fqn -> the config of type ``cls`` for every layer that has one."""
        out: dict[str, TechniqueConfig] = {}
        for fqn, cfgs in self.layers.items():
            for cfg in cfgs:
                if isinstance(cfg, cls):
                    out[fqn] = cfg
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "arch": dict(self.arch),
            "layers": {fqn: [c.to_dict() for c in cfgs] for fqn, cfgs in sorted(self.layers.items())},
            "distill": None if self.distill is None else asdict(self.distill),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompressionPlan:
        version = int(data.get("version", PLAN_VERSION))
        if version != PLAN_VERSION:
            raise ValueError(f"plan version {version} is not supported (expected {PLAN_VERSION})")
        distill = data.get("distill")
        return cls(
            arch=dict(data.get("arch", {})),
            layers={fqn: tuple(config_from_dict(c) for c in cfgs)
                    for fqn, cfgs in data.get("layers", {}).items()},
            distill=None if distill is None else DistillConfig(**distill),
            version=version,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @property
    def plan_id(self) -> str:
        """Content hash: equal plans have equal ids."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
