"""Student families selectable by the space's ``family:`` key (MobileNetV2-like, ResNet-like)."""
from __future__ import annotations

import pytest
import torch

from autocompress.compress import CompressionPlan, LowRankConfig, PruneConfig, apply_plan
from autocompress.compress.prune import prune_groups
from autocompress.errors import SpaceError
from autocompress.graph import inspect_model
from autocompress.models import FAMILIES
from autocompress.models.source import ModelSource
from autocompress.space import SearchSpace
from autocompress.space.knobs import FAMILY_ARCH_KNOBS
from autocompress.yamlio import parse_yaml

ARCHS = [{"width_mult": 0.5, "depths": [1, 2, 1], "kernels": [3, 5, 3]},
         {"width_mult": 1.0, "depths": [2, 1, 2], "kernels": [3, 3, 3], "expands": [4, 4, 4]}]


def test_space_and_model_registries_agree():
    assert set(FAMILY_ARCH_KNOBS) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
@pytest.mark.parametrize("arch", ARCHS)
def test_layer_names_are_pure_and_match_the_built_model(family, shape, arch):
    source = ModelSource(input_shape=shape, num_classes=10, family=family)
    model = source.build(arch, seed=0)
    example = torch.zeros(1, *shape)
    assert model(example).shape == (1, 10)
    graph = inspect_model(model, example)
    assert [layer.fqn for layer in graph.compressible] == source.layer_names(arch)


def test_resnet_prunes_through_residuals_and_factorizes():
    source = ModelSource(input_shape=(3, 32, 32), num_classes=10, family="resnet")
    model = source.build({}, seed=0)
    example = torch.zeros(1, 3, 32, 32)
    groups = prune_groups(model, example, ignored=("classifier",))
    assert "stages.0.0.conv2.conv" in groups["stem.conv"]          # identity shortcut couples
    plan = CompressionPlan(layers={"stem.conv": (PruneConfig(ratio=0.5),),
                                   "stages.2.0.conv1.conv": (LowRankConfig(rank_ratio=0.25),)})
    small = apply_plan(model, plan, example, round_to=4, ignored=("classifier",))
    assert small.stem.conv.out_channels == 8 and small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    names = [layer.fqn for layer in inspect_model(small, example).compressible]
    assert "stages.2.0.conv1.conv.0" in names and "stages.2.0.conv1.conv.1" in names


def test_family_key_is_checked_and_limits_arch_knobs():
    space = SearchSpace.parse(parse_yaml("version: 1\nfamily: resnet\narch:\n  depth: [1, 2]\n",
                                         "s.yaml"))
    assert space.family == "resnet"
    with pytest.raises(SpaceError, match=r"s\.yaml:2.*did you mean 'resnet'"):
        SearchSpace.parse(parse_yaml("version: 1\nfamily: resnt\n", "s.yaml"))
    with pytest.raises(SpaceError, match=r"s\.yaml:4.*expand"):
        SearchSpace.parse(parse_yaml("version: 1\nfamily: resnet\narch:\n  expand: [2, 4]\n",
                                     "s.yaml"))


def test_shipped_resnet_space_resolves_on_the_largest_resnet():
    from pathlib import Path

    from autocompress.space import resolve

    space = SearchSpace.load(Path(__file__).parents[2] / "search_spaces" / "resnet_digits.yaml")
    source = ModelSource(input_shape=(1, 8, 8), num_classes=10, base=space.base,
                         family=space.family or "mobilenet_v2")
    arch = {"depths": [2, 2, 2], "expands": [4, 4, 4]}     # as search/setup sizes it
    model = source.build(arch, seed=0)
    example = torch.zeros(1, 1, 8, 8)
    fqns = [layer.fqn for layer in inspect_model(model, example).compressible]
    leaders = [f for f in prune_groups(model, example, ("classifier",)) if f != "classifier"]
    rs = resolve(space, quant_layers=fqns, prune_leaders=leaders, num_stages=3,
                 layer_names=source.layer_names)
    params = rs.uniform_params(bits=8)
    params.update({"lowrank.rank_ratio/stages.1.0.conv1.conv": 0.25,
                   "sparsity.ratio/stages.1.0.conv2.conv": 0.5,
                   "cluster.k/stages.2.0.conv2.conv": 16,
                   "prune/stem.conv": 0.5, "prune.criterion/stem.conv": "taylor"})
    plan = rs.to_plan(params)
    assert {c.kind for cfgs in plan.layers.values() for c in cfgs} == {
        "prune", "lowrank", "sparsity", "cluster", "quant"}
    from autocompress.compress import apply_plan

    out = apply_plan(source.build(plan.arch, seed=0), plan, example, round_to=4,
                     ignored=("classifier",))
    assert out(example).shape == (1, 10)
