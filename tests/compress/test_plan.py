from __future__ import annotations

import json

import torch

from autocompress.compress import (
    CompressionPlan,
    DistillConfig,
    PruneConfig,
    QuantConfig,
    apply_plan,
    bake,
)
from autocompress.compress.prune import prune_groups
from autocompress.models import StudentArch, build_student

EX = torch.zeros(1, 1, 8, 8)
ARCH = StudentArch(width_mult=1.0, depths=(1, 2, 1))


def _plan() -> CompressionPlan:
    return CompressionPlan(
        arch=ARCH.to_dict(),
        layers={"stem.conv": (PruneConfig(ratio=0.5), QuantConfig(bits=4)),
                "stages.1.0.expand.conv": (PruneConfig(ratio=0.25), QuantConfig(bits=2)),
                "classifier": (QuantConfig(bits=8),)},
        distill=DistillConfig(temperature=3.0, alpha=0.7))


def test_plan_json_round_trip_and_id():
    plan = _plan()
    again = CompressionPlan.from_dict(json.loads(plan.to_json()))
    assert again == plan and again.plan_id == plan.plan_id
    other = CompressionPlan.from_dict({**plan.to_dict(), "distill": None})
    assert other.plan_id != plan.plan_id


def test_pruned_layers_really_lose_channels():
    torch.manual_seed(0)
    net = build_student(ARCH, in_channels=1, num_classes=10)
    small = apply_plan(net, _plan(), EX, round_to=4, ignored=("classifier",))
    assert net.stem.conv.out_channels == 16 and small.stem.conv.out_channels == 8
    # coupled layers follow: the residual partner and the next block's input
    assert small.stages[0][0].project.conv.out_channels == 8
    assert small.stages[1][0].expand.conv.in_channels == 8
    assert small.stages[1][0].expand.conv.out_channels == 48   # 64 * 0.75
    assert small.stages[1][0].dw.conv.groups == 48
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())
    assert small(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_plan_replays_on_a_fresh_model():
    torch.manual_seed(0)
    trained = bake(apply_plan(build_student(ARCH, in_channels=1, num_classes=10), _plan(), EX,
                              round_to=4, ignored=("classifier",)))
    state = trained.state_dict()
    torch.manual_seed(123)                                       # different init, same plan
    plan = CompressionPlan.from_dict(json.loads(_plan().to_json()))
    fresh = bake(apply_plan(build_student(StudentArch.from_dict(dict(plan.arch)), in_channels=1,
                                          num_classes=10), plan, EX, round_to=4,
                            ignored=("classifier",)))
    fresh.load_state_dict(state)                                 # shapes match exactly
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(fresh.eval()(x), trained.eval()(x))


def test_prune_group_leaders():
    net = build_student(ARCH, in_channels=1, num_classes=10)
    groups = prune_groups(net, EX, ignored=("classifier",))
    assert "stem.conv" in groups and "stages.1.0.expand.conv" in groups
    assert "stages.0.0.project.conv" in groups["stem.conv"]       # residual coupling
    assert "classifier" not in groups
