"""Technique knobs of the search space: parse, resolve, to_plan, cost-model formats."""
from __future__ import annotations

import pytest

from autocompress.compress import (
    ClusterConfig,
    LowRankConfig,
    PruneConfig,
    QuantConfig,
    SparsityConfig,
)
from autocompress.errors import SpaceError
from autocompress.space import SearchSpace, resolve
from autocompress.yamlio import parse_yaml

LAYERS = ["stem.conv", "stages.0.0.expand.conv", "stages.0.0.dw.conv", "head.conv", "classifier"]
LEADERS = ["stem.conv", "stages.0.0.expand.conv", "head.conv"]

SPACE = """\
version: 1
rules:
  - match: classifier
    quant.bits: 8
    quant.act_bits: 8
  - match: "re:.*"
    quant.bits: [4, 8]
    quant.act_bits: [4, 8, 32]
    quant.mode: [qat, ptq]
    quant.per_channel: [true, false]
    quant.symmetric: [true, false]
    sparsity.ratio: [0.0, 0.5, 0.8]
    cluster.k: {low: 0, high: 32}
  - match: head.conv
    lowrank.rank_ratio: [0.25, 1.0]
  - match: "re:.*expand\\\\.conv"
    prune.ratio: [0.0, 0.5]
    prune.criterion: [l1, l2, taylor]
"""


def _rs(text: str = SPACE):
    return resolve(SearchSpace.parse(parse_yaml(text, "space.yaml")), quant_layers=LAYERS,
                   prune_leaders=LEADERS)


def test_knob_parameter_names_do_not_collide_and_keep_v1_names():
    rs = _rs()
    assert {"quant/stem.conv", "quant.act_bits/stem.conv", "quant.mode/stem.conv",
            "sparsity.ratio/head.conv", "cluster.k/head.conv", "lowrank.rank_ratio/head.conv",
            "prune/stages.0.0.expand.conv",
            "prune.criterion/stages.0.0.expand.conv"} <= set(rs.dists)
    assert "prune.criterion/stem.conv" not in rs.dists      # only the rule's leaders


def test_to_plan_builds_configs_in_registry_order():
    rs = _rs()
    params = rs.uniform_params(bits=8)
    params.update({"lowrank.rank_ratio/head.conv": 0.25, "sparsity.ratio/head.conv": 0.5,
                   "cluster.k/head.conv": 16, "quant.act_bits/head.conv": 4,
                   "quant.mode/head.conv": "ptq", "quant.symmetric/head.conv": False,
                   "prune/stages.0.0.expand.conv": 0.5,
                   "prune.criterion/stages.0.0.expand.conv": "taylor"})
    plan = rs.to_plan(params)
    assert plan.layers["head.conv"] == (
        LowRankConfig(rank_ratio=0.25), SparsityConfig(ratio=0.5), ClusterConfig(k=16),
        QuantConfig(bits=8, act_bits=4, mode="ptq", symmetric=False))
    assert plan.layers["stages.0.0.expand.conv"][0] == PruneConfig(ratio=0.5, criterion="taylor")
    assert plan.layers["classifier"] == (QuantConfig(bits=8, act_bits=8),)


def test_baseline_params_switch_other_techniques_off():
    rs = _rs()
    plan = rs.to_plan(rs.uniform_params(bits=8))
    kinds = {c.kind for cfgs in plan.layers.values() for c in cfgs}
    assert kinds == {"quant"}
    assert plan.layers["stem.conv"] == (QuantConfig(bits=8),)    # act 32, qat, per-channel


def test_cheapest_params_take_each_knob_at_its_cheap_end():
    from autocompress.search.study import cheapest_params

    cheap = cheapest_params(_rs())
    assert cheap["quant/stem.conv"] == 4 and cheap["quant.act_bits/stem.conv"] == 4
    assert cheap["sparsity.ratio/head.conv"] == 0.8                 # most sparsity
    assert cheap["prune/stages.0.0.expand.conv"] == 0.5              # most pruning
    assert cheap["cluster.k/head.conv"] == 2                         # fewest that cluster
    assert cheap["lowrank.rank_ratio/head.conv"] == 0.25             # lowest rank
    assert "quant/classifier" not in cheap                           # fixed: not searched


def test_a_space_without_distill_still_distills_at_the_defaults():
    from autocompress.compress import DistillConfig

    rs = _rs()
    assert "distill:" not in SPACE
    assert rs.to_plan(rs.uniform_params(bits=8)).distill == DistillConfig()
    off = _rs(SPACE.replace("rules:", "distill: {alpha: 0.0}\nrules:"))
    assert off.to_plan(off.uniform_params(bits=8)).distill.alpha == 0.0


def test_old_plans_keep_their_ids():
    # optional fields at their default are left out of the JSON
    assert QuantConfig(bits=4).to_dict() == {"kind": "quant", "bits": 4, "per_channel": True,
                                             "symmetric": True}


@pytest.mark.parametrize("bad,what", [
    ("quant.act_bits: [4, 8, 32]", "quant.act_bits: [2, 8]"),
    ("sparsity.ratio: [0.0, 0.5, 0.8]", "sparsity.ratio: [0.99]"),
    ("quant.mode: [qat, ptq]", "quant.mode: [qta]"),
])
def test_bad_knob_values_name_the_line(bad, what):
    with pytest.raises(SpaceError, match=r"space\.yaml:"):
        _rs(SPACE.replace(bad, what))


def test_plan_formats_see_act_bits_sparsity_clusters_and_factors():
    from autocompress.compress.formats import plan_formats

    rs = _rs()
    params = rs.uniform_params(bits=8)
    params.update({"lowrank.rank_ratio/head.conv": 0.25, "sparsity.ratio/head.conv": 0.5,
                   "cluster.k/head.conv": 16, "quant.act_bits/head.conv": 4,
                   "quant/stem.conv": 4})
    formats = plan_formats(rs.to_plan(params))
    head = formats["head.conv"]
    assert (head.weight_bits, head.act_bits, head.sparsity) == (4, 4, 0.5)   # 16 values: 4 b
    assert formats["head.conv.0"] == formats["head.conv.1"] == head
    assert (formats["stem.conv"].weight_bits, formats["stem.conv"].act_bits) == (4, 8)


def test_a_float_layer_runs_float_activations_in_plan_cost_and_export():
    """bits 32 with act_bits 8 was costed with int8 activations (peak SRAM a quarter of the
    exported file's, which keeps such a layer float, input included) and trained with them."""
    from autocompress.compress import CompressionPlan, QuantConfig
    from autocompress.compress.formats import plan_formats
    from autocompress.space.knobs import layer_configs

    [cfg] = layer_configs({"quant.bits": 32, "quant.act_bits": 8})
    assert (cfg.bits, cfg.act_bits) == (32, 32)
    [cfg] = layer_configs({"quant.bits": 8, "quant.act_bits": 6})
    assert (cfg.bits, cfg.act_bits) == (8, 6)
    by_hand = CompressionPlan(layers={"fc": (QuantConfig(bits=32, act_bits=8),)})
    assert plan_formats(by_hand)["fc"].act_bits == 32


def test_iterative_sparsity_and_feature_distillation_knobs_reach_the_plan():
    text = SPACE.replace("    sparsity.ratio: [0.0, 0.5, 0.8]\n",
                         "    sparsity.ratio: [0.0, 0.5, 0.8]\n    sparsity.steps: [1, 4]\n"
                         "    sparsity.schedule: [cubic, linear]\n")
    text = text.replace("version: 1\n", "version: 1\ndistill:\n  feature_weight: [0.0, 2.0]\n")
    space = SearchSpace.parse(parse_yaml(text, "space.yaml"))
    rs = resolve(space, quant_layers=LAYERS, prune_leaders=LEADERS)
    params = rs.uniform_params(bits=8)
    params.update({"sparsity.ratio/head.conv": 0.5, "sparsity.steps/head.conv": 4,
                   "sparsity.schedule/head.conv": "linear", "distill/feature_weight": 2.0})
    plan = rs.to_plan(params)
    sp = next(c for c in plan.layers["head.conv"] if isinstance(c, SparsityConfig))
    assert (sp.ratio, sp.steps, sp.schedule) == (0.5, 4, "linear")
    assert plan.distill is not None and plan.distill.feature_weight == 2.0


@pytest.mark.parametrize("rule, what", [("sparsity.steps: [0, 2]", "1..100"),
                                        ("sparsity.schedule: [exp]", "cubic")])
def test_iterative_sparsity_knob_errors_name_the_line(rule, what):
    text = SPACE.replace("    sparsity.ratio: [0.0, 0.5, 0.8]\n",
                         f"    sparsity.ratio: [0.0, 0.5, 0.8]\n    {rule}\n")
    with pytest.raises(SpaceError) as err:
        SearchSpace.parse(parse_yaml(text, "space.yaml"))
    assert "space.yaml:" in str(err.value) and what in str(err.value)


@pytest.mark.parametrize("rule", ["sparsity.steps: [2.5]", "cluster.k: {low: 2, high: 16.5}",
                                  "sparsity.steps: {low: 1.0, high: 4.0}"])
def test_whole_number_knobs_reject_fractions(rule):
    text = SPACE.replace("    cluster.k: {low: 0, high: 32}\n", f"    {rule}\n")
    with pytest.raises(SpaceError) as err:
        SearchSpace.parse(parse_yaml(text, "space.yaml"))
    assert "space.yaml:" in str(err.value) and "whole number" in str(err.value)


def test_whole_number_arch_knob_rejects_fraction():
    with pytest.raises(SpaceError) as err:
        SearchSpace.parse(parse_yaml("version: 1\narch:\n  expand: [2, 4.5]\n", "space.yaml"))
    assert "space.yaml:3" in str(err.value) and "whole number" in str(err.value)
