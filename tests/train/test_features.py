"""Intermediate-feature distillation through a 1x1 adapter."""
from __future__ import annotations

import pytest
import torch

from autocompress.compress import CompressionPlan, DistillConfig
from autocompress.data import Split
from autocompress.models import StudentArch, build_student
from autocompress.models.teacher import TeacherCNN
from autocompress.train import TrainSettings, fit
from autocompress.train.features import FeatureDistiller, feature_source

GEN = torch.Generator().manual_seed(0)
TRAIN = Split(torch.randn(64, 1, 8, 8, generator=GEN), torch.randint(0, 10, (64,), generator=GEN))


def _nets():
    torch.manual_seed(0)
    student = build_student(StudentArch(), in_channels=1, num_classes=10)
    teacher = TeacherCNN(1, 10, (16, 32, 64)).eval()
    return student, teacher


def test_feature_weight_is_left_out_of_plans_at_zero():
    plan = CompressionPlan(distill=DistillConfig(temperature=3.0, alpha=0.7))
    assert "feature_weight" not in plan.to_dict()["distill"]
    with_features = CompressionPlan(distill=DistillConfig(feature_weight=0.5))
    again = CompressionPlan.from_dict(with_features.to_dict())
    assert again == with_features and again.plan_id != CompressionPlan(
        distill=DistillConfig()).plan_id
    with pytest.raises(ValueError, match="feature_weight"):
        DistillConfig(feature_weight=-1.0)


def test_adapter_maps_student_features_onto_the_teacher_and_trains_the_student():
    student, teacher = _nets()
    fd = FeatureDistiller(student, teacher, TRAIN.x[:1])
    assert fd.adapter.in_channels == student.head.conv.out_channels      # the head's map
    assert fd.adapter.out_channels == 64                                  # the teacher's last
    student(TRAIN.x[:8])
    loss = fd.loss(TRAIN.x[:8])
    loss.backward()
    assert loss > 0 and fd.adapter.weight.grad is not None
    assert student.head.conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    fd.close()


def test_a_resnet_student_distills_its_last_block_output_not_its_shortcut():
    """In a ResNet block the shortcut conv runs after conv2: the last conv to run is a
    projection of the block's input. The map distilled is what the pool reads."""
    from autocompress.models import ResNetArch, build_resnet

    torch.manual_seed(0)
    net = build_resnet(ResNetArch(), in_channels=1, num_classes=10).eval()
    module, on_input, channels = feature_source(net, TRAIN.x[:1])
    assert on_input and isinstance(module, torch.nn.AdaptiveAvgPool2d) and channels == 64
    pooled = []
    module.register_forward_hook(lambda _m, i, _o: pooled.append(i[0]))
    fd = FeatureDistiller(net, TeacherCNN(1, 10, (16, 32, 64)).eval(), TRAIN.x[:1])
    net(TRAIN.x[:4])
    assert torch.equal(fd._maps["student"], pooled[-1])
    fd.close()


def test_fit_with_feature_distillation_needs_the_teacher_and_removes_its_hooks():
    student, teacher = _nets()
    distill = DistillConfig(alpha=0.5, feature_weight=1.0)
    settings = TrainSettings(epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="teacher"):
        fit(student, TRAIN, settings, seed=0, distill=distill)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    plain, _ = _nets()
    fit(plain, TRAIN, settings, seed=0, distill=DistillConfig(alpha=0.5))
    loss = fit(student, TRAIN, settings, seed=0, distill=distill, teacher=teacher)
    assert loss == loss                                     # finite
    hooked = [feature_source(m, TRAIN.x[:1])[0] for m in (student, teacher)]
    assert not any(m._forward_hooks for m in hooked)
    changed = student.state_dict()
    assert any(not torch.equal(before[k], changed[k]) for k in before)
    assert any(not torch.equal(plain.state_dict()[k], changed[k]) for k in before
               if changed[k].is_floating_point())           # the feature term changed training


def test_a_model_without_convs_is_a_model_error():
    from autocompress.errors import ModelError

    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    _, teacher = _nets()
    with pytest.raises(ModelError, match="no Conv2d") as err:
        fit(mlp, TRAIN, TrainSettings(epochs=1, batch_size=32), seed=0,
            distill=DistillConfig(feature_weight=1.0), teacher=teacher)
    assert err.value.loc == "distill.feature_weight"
