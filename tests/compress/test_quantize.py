from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from autocompress.compress import CompressionPlan, QuantConfig, apply_plan, bake, fake_quantize
from autocompress.compress.quantize import FakeQuant, weight_bits


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_at_most_2_pow_bits_values_per_channel(bits, symmetric):
    w = torch.randn(16, 8, 3, 3)
    q = fake_quantize(w, bits, per_channel=True, symmetric=symmetric)
    for row in q:
        assert len(torch.unique(row)) <= 2 ** bits
    assert (q - w).abs().max() <= (w.abs().max() * 2 / (2 ** bits - 2) + 1e-6)


def test_qat_straight_through_gradient_and_bake():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 3))
    plan = CompressionPlan(layers={"0": (QuantConfig(bits=4),), "2": (QuantConfig(bits=2),)})
    q = apply_plan(net, plan, torch.zeros(1, 1, 8, 8))
    assert weight_bits(q) == {"0": 4, "2": 2}
    assert weight_bits(net) == {}                                  # the original is untouched
    q(torch.randn(2, 1, 8, 8)).sum().backward()
    grad = q[0].parametrizations.weight.original.grad
    assert grad is not None and grad.abs().sum() > 0               # STE lets gradients through
    x = torch.randn(3, 1, 8, 8)
    before = q(x)
    bake(q)
    assert weight_bits(q) == {}
    torch.testing.assert_close(q(x), before)
    for row in q[2].weight:
        assert len(torch.unique(row)) <= 3                         # 2-bit restricted range


def test_32_bits_means_float():
    net = nn.Sequential(nn.Linear(4, 4))
    q = apply_plan(net, CompressionPlan(layers={"0": (QuantConfig(bits=32),)}), torch.zeros(1, 4))
    assert weight_bits(q) == {}


def test_bad_bits_rejected():
    with pytest.raises(ValueError, match="bits"):
        QuantConfig(bits=16)


def test_bake_on_a_copy_leaves_the_original_intact():
    conv = nn.Conv2d(2, 3, 1)
    parametrize.register_parametrization(conv, "weight", FakeQuant(bits=2))
    baked = bake(copy.deepcopy(conv))
    assert not parametrize.is_parametrized(baked) and type(baked) is nn.Conv2d
    assert torch.equal(baked.weight, conv.weight)          # the quantized value, frozen
    assert parametrize.is_parametrized(conv, "weight")
    assert conv(torch.randn(1, 2, 4, 4)).shape[1] == 3      # the original still runs


def test_activation_fake_quant_passes_gradients_inside_its_range_only():
    from autocompress.compress.actquant import ActQuant

    quant = ActQuant(4)
    quant.observe(torch.tensor([0.0, 1.0]))
    x = torch.tensor([-0.5, 0.2, 0.5, 0.99, 1.5], requires_grad=True)
    y = quant.eval()(x)
    y.sum().backward()
    assert y[0] == 0.0 and y[-1] == 1.0                       # clamped to the range
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_a_float_layer_trains_float_activations_and_old_weights_load_without_its_ranges():
    """QuantConfig(bits=32, act_bits=4) is costed and exported float; it trained 4-bit
    inputs (0.01 off the float net here). Older weights of such a layer carry act_quant
    ranges: ``unused_ranges`` names exactly those for the export to drop."""
    from autocompress.compress.actquant import act_bits, attach_act_quant, unused_ranges

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10)).eval()
    x = torch.rand(16, 3, 8, 8)
    plan = CompressionPlan(layers={"0": (QuantConfig(bits=32, act_bits=4),),
                                   "3": (QuantConfig(bits=8, act_bits=8),)})
    m = apply_plan(net, plan, x[:1], calibration=x)
    assert act_bits(m) == {"3": 8}
    old = copy.deepcopy(net)                          # weights trained before: 0 had ranges
    attach_act_quant(old, {"0": (4, "minmax", "qat"), "3": (8, "minmax", "qat")})
    state, model = old.state_dict(), bake(copy.deepcopy(m))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        model.load_state_dict(state)
    assert unused_ranges(state, model) == ["0.act_quant.lo", "0.act_quant.hi"]
    for key in unused_ranges(state, model):           # as the export loads a trial's weights
        del state[key]
    model.load_state_dict(state)
