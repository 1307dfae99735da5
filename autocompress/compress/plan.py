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
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from autocompress.errors import did_you_mean

PLAN_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TechniqueConfig:
    """Base of per-layer technique configs. ``kind`` is the registry/JSON tag."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON dict with ``kind``. Fields marked ``_OPTIONAL`` are left out at their default,
        so adding an option never changes the ``plan_id`` of existing plans."""
        return {"kind": self.kind, **_json(self)}


_OPTIONAL: dict[str, Any] = {"optional": True}


def _opt(default: Any) -> Any:
    """A field added after v1 plans existed: omitted from JSON at its default."""
    return field(default=default, metadata=_OPTIONAL)


def _json(config: Any) -> dict[str, Any]:
    """``asdict(config)`` without the ``_opt`` fields that are at their default."""
    out = asdict(config)
    for f in fields(config):
        if f.metadata.get("optional") and f.default is not MISSING and out[f.name] == f.default:
            del out[f.name]
    return out


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


@dataclass(frozen=True, kw_only=True)
class PruneConfig(TechniqueConfig):
    """Structured channel pruning of the group led by this layer (channels really removed)."""

    kind: ClassVar[str] = "prune"
    ratio: float
    criterion: str = "l1"        # l1 | l2 (weight magnitude) | taylor (data-aware, |w * dL/dw|)

    def __post_init__(self) -> None:
        _check(0.0 <= self.ratio < 1.0, f"prune ratio must be in [0, 1), got {self.ratio}")
        _check(self.criterion in PRUNE_CRITERIA,
               f"prune criterion must be one of {PRUNE_CRITERIA}, got {self.criterion!r}")


PRUNE_CRITERIA = ("l1", "l2", "taylor")
QUANT_MODES = ("qat", "ptq")
WEIGHT_CALIB = ("minmax", "mse")          # weight range: full range, or MSE-optimal clipping
ACT_CALIB = ("minmax", "percentile")      # activation range over calibration data
SPARSITY_SCHEDULES = ("cubic", "linear")  # how iterative sparsity rises over its steps


@dataclass(frozen=True, kw_only=True)
class QuantConfig(TechniqueConfig):
    """Linear quantization of a layer's weights (``bits``) and input activations
    (``act_bits``, per-tensor, asymmetric); 32 means float. A float layer (``bits=32``) runs
    float activations whatever its ``act_bits``, in training, cost and export alike.

    ``mode="qat"``: fake quant with a straight-through estimator, weights keep training.
    ``mode="ptq"``: weights quantized once from calibrated ranges and frozen (no gradient).
    """

    kind: ClassVar[str] = "quant"
    bits: int
    per_channel: bool = True
    symmetric: bool = True
    act_bits: int = _opt(32)
    mode: str = _opt("qat")
    calib: str = _opt("minmax")
    act_calib: str = _opt("minmax")

    def __post_init__(self) -> None:
        _check(2 <= self.bits <= 8 or self.bits == 32,
               f"quant bits must be in 2..8 or 32 (float), got {self.bits}")
        _check(4 <= self.act_bits <= 8 or self.act_bits == 32,
               f"quant act_bits must be in 4..8 or 32 (float), got {self.act_bits}")
        _check(self.mode in QUANT_MODES, f"quant mode must be one of {QUANT_MODES}")
        _check(self.calib in WEIGHT_CALIB, f"quant calib must be one of {WEIGHT_CALIB}")
        _check(self.act_calib in ACT_CALIB, f"quant act_calib must be one of {ACT_CALIB}")


@dataclass(frozen=True, kw_only=True)
class SparsityConfig(TechniqueConfig):
    """Unstructured magnitude pruning: the smallest ``ratio`` of the weights become zero
    (a mask parametrization, folded in by ``bake``). ``scope="global"``: one magnitude
    threshold over every layer with a global config (the ratio, steps and schedule are
    those of the first such layer by name: ``global_lead``; a plan from a search space
    already carries them on every such layer, see ``CompressionPlan.with_global_lead``).

    ``steps=1``: one shot, at ``apply_plan``. ``steps=N > 1``: iterative; ``apply_plan``
    prunes to the schedule's first step and the fine-tune (``train.finetune``) raises the
    sparsity at epoch ends, ``schedule`` ``cubic`` (Zhu & Gupta 2017) or ``linear``, to
    ``ratio`` by the middle of the fine-tune (``sparsity.scheduled_ratio``)."""

    kind: ClassVar[str] = "sparsity"
    ratio: float
    scope: str = "layer"
    steps: int = _opt(1)
    schedule: str = _opt("cubic")

    def __post_init__(self) -> None:
        _check(0.0 <= self.ratio < 1.0, f"sparsity ratio must be in [0, 1), got {self.ratio}")
        _check(self.scope in ("layer", "global"), "sparsity scope must be 'layer' or 'global'")
        _check(isinstance(self.steps, int) and 1 <= self.steps <= 100,
               f"sparsity steps must be an int in 1..100, got {self.steps!r}")
        _check(self.schedule in SPARSITY_SCHEDULES,
               f"sparsity schedule must be one of {SPARSITY_SCHEDULES}, got {self.schedule!r}")


@dataclass(frozen=True, kw_only=True)
class LowRankConfig(TechniqueConfig):
    """SVD factorization: a conv (k x k, C_in -> C_out) becomes k x k C_in -> r then
    1x1 r -> C_out, r = max(1, round(rank_ratio * min(C_out, C_in*k*k))); a linear becomes
    two linears. Grouped/depthwise convs are left as they are."""

    kind: ClassVar[str] = "lowrank"
    rank_ratio: float

    def __post_init__(self) -> None:
        _check(0.0 < self.rank_ratio < 1.0,
               f"lowrank rank_ratio must be in (0, 1), got {self.rank_ratio}")


@dataclass(frozen=True, kw_only=True)
class ClusterConfig(TechniqueConfig):
    """Weight clustering: ``k`` shared values per layer (a trainable codebook indexed by
    fixed assignments); zeros stay zero. ``init``: ``kmeans`` (quantile init + Lloyd)
    or ``uniform`` (linear between min and max, then Lloyd)."""

    kind: ClassVar[str] = "cluster"
    k: int
    init: str = "kmeans"

    def __post_init__(self) -> None:
        _check(2 <= self.k <= 256, f"cluster k must be in 2..256, got {self.k}")
        _check(self.init in ("kmeans", "uniform"), "cluster init must be 'kmeans' or 'uniform'")


CONFIG_TYPES: dict[str, type[TechniqueConfig]] = {
    c.kind: c for c in (PruneConfig, LowRankConfig, SparsityConfig, ClusterConfig, QuantConfig)}


def config_from_dict(data: Mapping[str, Any]) -> TechniqueConfig:
    kind = data.get("kind")
    cls = CONFIG_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown technique kind {kind!r}; known: {sorted(CONFIG_TYPES)}")
    names = {f.name for f in fields(cls)}
    for key in data:
        if key != "kind" and key not in names:
            near = did_you_mean(str(key), names)
            raise ValueError(f"unknown {kind} field {key!r}" + (f" ({near})" if near else
                                                                f"; known: {sorted(names)}"))
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Knowledge distillation: loss = alpha * T^2 * KL(soft) + (1 - alpha) * CE(hard)
    + feature_weight * MSE(adapter(student features), teacher features) (``train.features``;
    0 = off: the teacher then runs once per run, for its cached logits)."""

    temperature: float = 4.0
    alpha: float = 0.5
    feature_weight: float = _opt(0.0)

    def __post_init__(self) -> None:
        _check(self.feature_weight >= 0, f"distill feature_weight must be >= 0, "
                                         f"got {self.feature_weight}")

    def to_dict(self) -> dict[str, Any]:
        """JSON dict; ``feature_weight`` left out at 0, so older plans keep their ids."""
        return _json(self)


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

    def with_global_lead(self) -> CompressionPlan:
        """This plan with every global-scope sparsity config at the ratio, steps and schedule
        of :func:`global_lead`, which is what applying it does: the plan (``plan.json``, the
        report's per-layer panel) then says the sparsity each layer gets."""
        lead = global_lead(self.configs(SparsityConfig))
        if lead is None:
            return self
        layers = {fqn: tuple(lead if isinstance(c, SparsityConfig) and c.scope == "global"
                             and c.ratio > 0 else c for c in cfgs)     # 0: left dense
                  for fqn, cfgs in self.layers.items()}
        return replace(self, layers=layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "arch": dict(self.arch),
            "layers": {fqn: [c.to_dict() for c in cfgs] for fqn, cfgs in sorted(self.layers.items())},
            "distill": None if self.distill is None else self.distill.to_dict(),
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


def global_lead(configs: Mapping[str, TechniqueConfig]) -> SparsityConfig | None:
    """The config whose ratio, steps and schedule every global-scope layer shares: that of
    the first global layer by name (a plan's layers come in any order: a replayed
    ``plan.json`` has them sorted, a search in model order)."""
    glob = {f: c for f, c in configs.items()
            if isinstance(c, SparsityConfig) and c.scope == "global" and c.ratio > 0}
    return glob[min(glob)] if glob else None
