from __future__ import annotations

import pytest
import torch
from torch import nn

from autocompress.errors import ModelError
from autocompress.graph import inspect_model
from autocompress.models import StudentArch, build_student
from autocompress.models.student import student_layer_names


def test_conv_macs_and_fusion():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    g = inspect_model(net, torch.zeros(1, 1, 8, 8))
    assert [layer.op for layer in g.layers] == ["conv2d", "linear"]   # BN/ReLU fused
    assert g.layers[0].macs == 4 * 8 * 8 * 9
    assert g.layers[1].macs == 256 * 10
    assert g.params == (4 * 9 + 4) + (256 * 10 + 10) and g.layers[0].bias == 4


def test_residual_keeps_block_input_alive():
    g = inspect_model(build_student(StudentArch(), in_channels=1, num_classes=10),
                      torch.zeros(1, 1, 8, 8))
    add = g.layer("add")
    stem = next(t for t in g.tensors if t.name == "stem_conv")
    assert stem.last_used_at == g.layers.index(add)   # read again by the residual add
    assert add.inputs == ("stem_conv", "stages_0_0_project_conv")


@pytest.mark.parametrize("arch", [StudentArch(), StudentArch(depths=(1, 1, 2), expands=(1, 2, 4)),
                                  StudentArch(width_mult=0.5, kernels=(5, 3, 5))])
def test_student_layer_names_match_built_model(arch):
    g = inspect_model(build_student(arch, in_channels=1, num_classes=10), torch.zeros(1, 1, 8, 8))
    assert [layer.fqn for layer in g.compressible] == student_layer_names(arch)


def test_untraceable_model_is_a_model_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ModelError, match="trace"):
        inspect_model(Branchy(), torch.zeros(1, 1, 8, 8))


def test_wrong_input_shape_is_a_model_error():
    with pytest.raises(ModelError, match="input of shape"):
        inspect_model(nn.Linear(5, 2), torch.zeros(1, 3))


def test_bn_after_bias_free_conv_counts_the_folded_bias():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    g = inspect_model(net, torch.zeros(1, 1, 8, 8))
    assert g.layers[0].bias == 4          # int32 bias of the deployed conv+bn


def test_layers_the_cost_model_does_not_know_are_named_not_costed_as_zero_silently():
    """A Conv1d model was costed at 4x less latency and 6x less Flash than its ONNX twin, a
    GRU's weights vanished from the graph, a weight used in forward() was free: each now
    named, and the search refuses such a model (its budgets would be wrong)."""
    import torch.nn.functional as F

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv1d(1, 4, 3)
            self.gru = nn.GRU(7, 8, batch_first=True)
            self.w = nn.Parameter(torch.randn(2, 1, 3, 3))
            self.ln, self.fc = nn.LayerNorm(8), nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.c1(F.conv2d(x, self.w).flatten(2)[:, :1])
            out, _ = self.gru(y)
            return self.fc(self.ln(out[:, -1]))

    g = inspect_model(Mixed(), torch.zeros(1, 1, 5, 5))
    assert [(f, k) for f, k, _ in g.uncosted] == [("w", "parameter used in forward"),
                                                  ("c1", "Conv1d"), ("gru", "GRU")]
    n = 18 + 16 + 3 * (8 * 7 + 8 * 8 + 8 + 8)                  # w, c1, gru
    assert g.uncosted_note().startswith(f"{n} parameters in layers the cost model does not "
                                        "know count as no compute")
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(36, 2))
    assert inspect_model(plain, torch.zeros(1, 1, 5, 5)).uncosted_note() is None

    class LayerScale(nn.Module):           # a parameter in a costed mul/add: not refused
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.gamma = nn.Conv2d(4, 4, 3, padding=1), nn.Parameter(torch.ones(4, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.gamma * torch.relu(self.conv(x))

    assert inspect_model(LayerScale(), torch.zeros(1, 4, 5, 5)).uncosted == ()


@pytest.mark.parametrize("act", [nn.Hardswish(), nn.SiLU(), nn.Sigmoid()])
def test_hard_swish_silu_and_sigmoid_are_ops_of_their_own(act):
    """They were folded into the conv as free, while TFLite Micro and the int8 export run
    them as ops with an output of their own: peak SRAM was a third low."""
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), act, nn.ReLU())
    assert [x.op for x in inspect_model(net, torch.zeros(1, 1, 8, 8)).layers] == ["conv2d",
                                                                                  "other"]
