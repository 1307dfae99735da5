from __future__ import annotations

import pytest

from autocompress.compress.plan import SparsityConfig
from autocompress.errors import SpaceError
from autocompress.space import SearchSpace, resolve
from autocompress.space.distributions import Choice, Fixed, Range
from autocompress.yamlio import parse_yaml

LAYERS = ["stem.conv", "stages.0.0.expand.conv", "stages.0.0.dw.conv", "head.conv", "classifier"]
LEADERS = ["stem.conv", "stages.0.0.expand.conv", "head.conv"]

SPACE = """\
version: 1
arch:
  width_mult: [0.5, 1.0]
  depth: [1, 2]
distill:
  temperature: {low: 1.0, high: 8.0}
rules:
  - match: classifier
    quant.bits: 8
  - match: "re:.*"
    quant.bits: [2, 4, 8]
  - match: "re:.*expand\\\\.conv"
    prune.ratio: [0.0, 0.5]
  - match: head.conv
    skip: true
"""


def _space(text: str = SPACE) -> SearchSpace:
    return SearchSpace.parse(parse_yaml(text, "space.yaml"))


def test_resolve_names_and_precedence():
    rs = resolve(_space(), quant_layers=LAYERS, prune_leaders=LEADERS, num_stages=2)
    assert rs.dists["quant/classifier"] == Fixed(value=8)              # exact beats regex
    assert rs.dists["quant/stem.conv"] == Choice(choices=(2, 4, 8))
    assert "quant/head.conv" not in rs.dists                           # skipped
    assert set(rs.layer_params["stages.0.0.expand.conv"]) == {"quant.bits", "prune.ratio"}
    assert {"arch/depth/0", "arch/depth/1", "arch/width_mult"} <= set(rs.dists)
    assert isinstance(rs.dists["distill/temperature"], Range)
    assert "quant/classifier" not in rs.distributions()               # fixed: not searched


def test_params_to_plan_round_trip():
    rs = resolve(_space(), quant_layers=LAYERS, prune_leaders=LEADERS, num_stages=2)
    params = {"arch/width_mult": 0.5, "arch/depth/0": 2, "arch/depth/1": 1,
              "distill/temperature": 3.0, "quant/stem.conv": 4,
              "quant/stages.0.0.expand.conv": 2, "quant/stages.0.0.dw.conv": 8,
              "prune/stages.0.0.expand.conv": 0.5}
    plan = rs.to_plan(params)
    assert plan.arch["width_mult"] == 0.5 and plan.arch["depths"] == [2, 1]
    kinds = {f: [c.kind for c in cfgs] for f, cfgs in plan.layers.items()}
    assert kinds["stages.0.0.expand.conv"] == ["prune", "quant"]
    assert plan.layers["classifier"][0].bits == 8
    assert plan.distill is not None and plan.distill.temperature == 3.0
    assert rs.to_plan(params) == plan                                   # pure, deterministic
    with pytest.raises(SpaceError, match="missing"):
        rs.to_plan({"arch/width_mult": 0.5})


def test_shared_rule_makes_one_parameter():
    text = SPACE.replace('quant.bits: [2, 4, 8]', 'quant.bits: [2, 4, 8]\n    share: true')
    rs = resolve(_space(text), quant_layers=LAYERS, prune_leaders=LEADERS)
    assert [n for n in rs.dists if n.startswith("quant/rule")] == ["quant/rule1"]


def test_global_scope_sparsity_is_one_parameter_and_the_plan_says_the_ratio_applied():
    """Global-scope layers share one threshold at the first global layer's ratio, steps and
    schedule: a rule searched one ratio per layer of which only the first counted, and its
    plan (plan.json, the report's per-layer panel) showed ratios that were never applied."""
    text = SPACE.replace("""  - match: head.conv
    skip: true
""", """  - match: "re:stages.*conv"
    sparsity.ratio: [0.3, 0.6]
    sparsity.scope: global
    sparsity.steps: [1, 3]
  - match: classifier
    sparsity.ratio: [0.5, 0.9]
    sparsity.scope: global
""")
    rs = resolve(_space(text), quant_layers=LAYERS, prune_leaders=LEADERS)
    assert sorted(n for n in rs.distributions() if n.startswith("sparsity")) == \
        ["sparsity.ratio/rule3", "sparsity.ratio/rule4", "sparsity.steps/rule3"]
    params = {**rs.uniform_params(bits=8), "sparsity.ratio/rule3": 0.3, "sparsity.steps/rule3": 3,
              "sparsity.ratio/rule4": 0.9}
    sparse = rs.to_plan(params).configs(SparsityConfig)
    # classifier sorts first: its 0.9, one shot, is what every global layer gets
    assert {f: (c.ratio, c.steps) for f, c in sparse.items()} == {
        f: (0.9, 1) for f in ("classifier", "stages.0.0.dw.conv", "stages.0.0.expand.conv")}


@pytest.mark.parametrize("text,where,what", [
    (SPACE.replace("re:.*expand", "re:.*nothere"), "space.yaml:12", "matches no layer"),
    (SPACE.replace("[2, 4, 8]", "[2, 4, 16]"), "space.yaml:11", "16"),
    (SPACE.replace("width_mult", "widht_mult"), "space.yaml:3", "did you mean 'width_mult'"),
    (SPACE.replace("quant.bits: 8", "quant.bitz: 8"), "space.yaml:9", "unknown key"),
    (SPACE.replace("{low: 1.0, high: 8.0}", "{low: 9.0, high: 8.0}"), "space.yaml:6", "above"),
    (SPACE + "  - {quant.bits: 4}\n", "space.yaml:16", "'match'"),
    # ranges were checked at their two ends only; steps not at all (Optuna failed mid-search)
    (SPACE.replace("[2, 4, 8]", "{low: 4, high: 32}"), "space.yaml:11",
     "value 9 is not supported (the range 4..32 takes it; give a list instead)"),
    (SPACE.replace("[2, 4, 8]", "{low: 2.0, high: 8.0}"), "space.yaml:11",
     "a range of 2.0..8.0 takes fractional values; this knob takes a list"),
    (SPACE.replace("depth: [1, 2]", "depth: [1, 2]\n  kernel: {low: 3, high: 7}"),
     "space.yaml:5", "value 4 is not supported"),
    (SPACE.replace("width_mult: [0.5, 1.0]", "width_mult: {low: 0.5, high: 1.0, step: 0}"),
     "space.yaml:3", "range step must be a positive number, got 0"),
    (SPACE.replace("depth: [1, 2]", "depth: {low: 1, high: 3, step: 0.5}"),
     "space.yaml:4", "a range of whole numbers takes a whole step, got 0.5"),
    (SPACE.replace("width_mult: [0.5, 1.0]", "width_mult: {low: 0.5, high: 1.0, step: 0.3}"),
     "space.yaml:3", "step 0.3 does not divide the range 0.5..1.0"),
    (SPACE.replace("{low: 1.0, high: 8.0}", "{low: 1.0, high: 8.0, log: yes please}"),
     "space.yaml:6", "range log must be true or false"),
    (SPACE.replace("skip: true", "skip: 'no'"), "space.yaml:15",
     "skip: expected true or false, got 'no'"),
    (SPACE.replace("[2, 4, 8]", "[2, 4, 8]\n    share: 'false'"), "space.yaml:12",
     "share: expected true or false"),
])
def test_errors_name_file_line(text, where, what):
    with pytest.raises(SpaceError) as err:
        resolve(_space(text), quant_layers=LAYERS, prune_leaders=LEADERS, num_stages=2)
    assert where in str(err.value) and what in str(err.value)


def test_ranges_that_every_value_of_passes():
    text = (SPACE.replace("depth: [1, 2]", "depth: [1, 2]\n  kernel: {low: 3, high: 7, step: 2}")
            .replace("[2, 4, 8]", "{low: 2, high: 8}")
            .replace("width_mult: [0.5, 1.0]", "width_mult: {low: 0.5, high: 1.0, step: 0.25}"))
    rs = resolve(_space(text), quant_layers=LAYERS, prune_leaders=LEADERS, num_stages=2)
    assert rs.dists["arch/kernel/0"] == Range(low=3, high=7, step=2, integer=True)
    assert rs.dists["quant/stem.conv"] == Range(low=2, high=8, integer=True)



def test_low_rank_applies_to_ungrouped_layers_only():
    """Low-rank on a depthwise or grouped conv was accepted and did nothing (searched
    parameters with no effect); like pruning on a non-leader, it is refused there."""
    plain = [f for f in LAYERS if ".dw." not in f]
    text = SPACE + '  - match: "re:.*"\n    lowrank.rank_ratio: [0.25, 1.0]\n'
    rs = resolve(_space(text), quant_layers=LAYERS, prune_leaders=LEADERS, factorizable=plain)
    assert {n for n in rs.dists if n.startswith("lowrank.rank_ratio/")} == \
        {f"lowrank.rank_ratio/{f}" for f in plain if f != "head.conv"}   # head: skipped
    only_dw = SPACE + '  - match: "re:.*dw\\\\.conv"\n    lowrank.rank_ratio: [0.25, 1.0]\n'
    with pytest.raises(SpaceError) as err:
        resolve(_space(only_dw), quant_layers=LAYERS, prune_leaders=LEADERS, factorizable=plain)
    assert str(err.value).startswith("space.yaml:17 rules[4].lowrank.rank_ratio: 're:.*dw\\.conv' "
                                     "matches no layer lowrank.rank_ratio applies to")


BASE = """\
version: 1
family: mobilenet_v2
base: {stem_channels: 16, stage_channels: [16, 24, 32], strides: [1, 2, 2], head_channels: 64}
rules:
  - match: "re:.*"
    quant.bits: [4, 8]
"""


@pytest.mark.parametrize("old, new, what", [
    ("head_channels: 64", "head_channels: big", "base.head_channels: expected a positive whole "
     "number, got 'big' (e.g. head_channels: 64)"),                      # was a TypeError
    ("stem_channels: 16", "stem_channels: -16", "base.stem_channels: expected a positive "
     "whole number, got -16"),                                           # was accepted
    ("stem_channels: 16", "stem_chanels: 16", "base.stem_chanels: unknown field"),
    ("strides: [1, 2, 2]", "strides: [1, 2]", "base.strides: strides has 2 entries for 3 stages"),
    ("stage_channels: [16, 24, 32]", "stage_channels: [16, 24, 32, 64]",
     "base.stage_channels: depths has 3 entries for 4 stages (give depths with 4 entries in "
     "base (the defaults are for 3 stages))"),
])
def test_base_fields_are_checked_at_their_line(old, new, what):
    assert old in BASE
    with pytest.raises(SpaceError) as err:
        _space(BASE.replace(old, new))
    assert str(err.value).startswith("space.yaml:3 ") and what in str(err.value), str(err.value)


def test_a_four_stage_base_with_its_per_stage_lists():
    text = BASE.replace("stage_channels: [16, 24, 32], strides: [1, 2, 2]",
                        "stage_channels: [16, 24, 32, 64], strides: [1, 2, 2, 2], "
                        "depths: [1, 1, 1, 1], kernels: [3, 3, 3, 3], expands: [2, 2, 2, 2]")
    assert _space(text).base["stage_channels"] == [16, 24, 32, 64]


@pytest.mark.parametrize("text", ["", "version: 1\n", "version: 1\nrules: []\n"])
def test_a_space_that_searches_nothing_is_refused(text):
    """An empty space (or one with only version: 1) ran a whole search of 0 parameters."""
    with pytest.raises(SpaceError, match="the search space searches nothing"):
        _space(text)

