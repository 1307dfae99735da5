"""Per-layer compression knobs of the search space and how their values become configs.

A new technique knob is one entry in ``LAYER_KNOBS`` and a line in ``layer_configs``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from autocompress.compress.plan import (
    PRUNE_CRITERIA,
    QUANT_MODES,
    SPARSITY_SCHEDULES,
    WEIGHT_CALIB,
    ClusterConfig,
    LowRankConfig,
    PruneConfig,
    QuantConfig,
    SparsityConfig,
    TechniqueConfig,
)

# Per-layer knobs. ``param``: prefix of the Optuna parameter name, ``<param>/<fqn>``
# (prune.ratio and quant.bits keep their v1 names). ``on``: which layers a knob can address
# ("leaders" = prune-group leaders, else every conv/linear). ``default``: the value meaning
# "technique off / config default", used by baselines. ``cheap``: where the knob's cheapest
# value lies when it is not the lowest ("high": most pruning; "clusters": the fewest clusters
# that still cluster, k >= 2), used for the cheapest candidate (budget checks).
LAYER_KNOBS: dict[str, dict[str, Any]] = {
    "prune.ratio": {"bounds": (0.0, 0.9), "expect": "ratios in 0..0.9", "param": "prune",
                    "on": "leaders", "default": 0.0, "cheap": "high"},
    "prune.criterion": {"allowed": PRUNE_CRITERIA, "expect": f"one of {PRUNE_CRITERIA}",
                        "on": "leaders", "default": "l1"},
    "quant.bits": {"allowed": (2, 3, 4, 5, 6, 7, 8, 32), "expect": "bit-widths in 2..8 or 32",
                   "param": "quant"},
    "quant.act_bits": {"allowed": (4, 5, 6, 7, 8, 32), "expect": "bit-widths in 4..8 or 32",
                       "default": 32},
    "quant.mode": {"allowed": QUANT_MODES, "expect": f"one of {QUANT_MODES}", "default": "qat"},
    "quant.per_channel": {"allowed": (True, False), "expect": "true or false", "default": True},
    "quant.symmetric": {"allowed": (True, False), "expect": "true or false", "default": True},
    "quant.calib": {"allowed": WEIGHT_CALIB, "expect": f"one of {WEIGHT_CALIB}",
                    "default": "minmax"},
    "sparsity.ratio": {"bounds": (0.0, 0.95), "expect": "ratios in 0..0.95 (0 = dense)",
                       "default": 0.0, "cheap": "high"},
    "sparsity.scope": {"allowed": ("layer", "global"), "expect": "layer or global",
                       "default": "layer"},
    "sparsity.steps": {"bounds": (1, 100), "integer": True,
                       "expect": "pruning steps in 1..100 (1 = one shot)", "default": 1},
    "sparsity.schedule": {"allowed": SPARSITY_SCHEDULES,
                          "expect": f"one of {SPARSITY_SCHEDULES}", "default": "cubic"},
    "lowrank.rank_ratio": {"bounds": (0.01, 1.0), "expect": "ratios in 0.01..1 (1 = keep)",
                           "on": "factorizable",
                           "default": 1.0},
    "cluster.k": {"bounds": (0, 256), "integer": True,
                  "expect": "shared values in 2..256 (0 = off)", "default": 0,
                  "cheap": "clusters"},
}
ARCH_KNOBS: dict[str, dict[str, Any]] = {
    "width_mult": {"bounds": (0.05, 4.0), "expect": "multipliers in 0.05..4.0"},
    "depth": {"bounds": (1, 8), "integer": True, "expect": "block counts in 1..8"},
    "kernel": {"allowed": (1, 3, 5, 7), "expect": "odd kernel sizes 1, 3, 5 or 7"},
    "expand": {"bounds": (1, 8), "integer": True, "expect": "expansion ratios in 1..8"},
}
DISTILL_KNOBS: dict[str, dict[str, Any]] = {
    "temperature": {"bounds": (0.5, 32.0), "expect": "temperatures in 0.5..32"},
    "alpha": {"bounds": (0.0, 1.0), "expect": "weights in 0..1"},
    "feature_weight": {"bounds": (0.0, 100.0), "expect": "weights in 0..100 (0 = logits only)"},
}
SPEC_KEYS = ("allowed", "bounds", "integer", "expect")


def param_prefix(knob: str) -> str:
    return str(LAYER_KNOBS[knob].get("param", knob))


def cheap_end(param: str) -> str:
    """Where the cheapest value of the Optuna parameter ``<prefix>/<fqn>`` lies: "low"
    (arch knobs and most technique knobs), "high" or "clusters" (see ``LAYER_KNOBS``)."""
    prefix = param.split("/")[0]
    for knob, spec in LAYER_KNOBS.items():
        if param_prefix(knob) == prefix:
            return str(spec.get("cheap", "low"))
    return "low"


def layer_configs(v: Mapping[str, Any]) -> list[TechniqueConfig]:
    """Configs of one layer from its knob values (knob -> value), in registry order."""
    out: list[TechniqueConfig] = []
    if float(v.get("prune.ratio", 0.0)) > 0:
        out.append(PruneConfig(ratio=float(v["prune.ratio"]),
                               criterion=str(v.get("prune.criterion", "l1"))))
    if float(v.get("lowrank.rank_ratio", 1.0)) < 1.0:
        out.append(LowRankConfig(rank_ratio=float(v["lowrank.rank_ratio"])))
    if float(v.get("sparsity.ratio", 0.0)) > 0:
        out.append(SparsityConfig(ratio=float(v["sparsity.ratio"]),
                                  scope=str(v.get("sparsity.scope", "layer")),
                                  steps=int(v.get("sparsity.steps", 1)),
                                  schedule=str(v.get("sparsity.schedule", "cubic"))))
    if int(v.get("cluster.k", 0)) >= 2:
        out.append(ClusterConfig(k=int(v["cluster.k"])))
    if any(k.startswith("quant.") for k in v):
        bits = int(v.get("quant.bits", 32))      # a float layer runs float activations
        out.append(QuantConfig(bits=bits,
                               act_bits=int(v.get("quant.act_bits", 32)) if bits < 32 else 32,
                               mode=str(v.get("quant.mode", "qat")),
                               per_channel=bool(v.get("quant.per_channel", True)),
                               symmetric=bool(v.get("quant.symmetric", True)),
                               calib=str(v.get("quant.calib", "minmax"))))
    return out

# Arch knobs each student family understands. Mirrors ``models/families.py`` (kept here so
# parsing a space needs no model code); ``tests/space/test_families.py`` checks they agree.
FAMILY_ARCH_KNOBS: dict[str, tuple[str, ...]] = {
    "mobilenet_v2": ("width_mult", "depth", "kernel", "expand"),
    "resnet": ("width_mult", "depth", "kernel"),
}


def glob_hint(pattern: str) -> str | None:
    r"""For a shell-style pattern (``blocks.*.pw.conv``): the ``re:`` form it meant.

    >>> print(glob_hint("blocks.*.pw.conv"))
    a match is a layer name or 're:<regex>': did you mean 're:blocks\..*\.pw\.conv'?
    """
    if pattern.startswith("re:") or not any(c in pattern for c in "*?["):
        return None
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return f"a match is a layer name or 're:<regex>': did you mean 're:{regex}'?"
