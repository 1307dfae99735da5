"""CostModel.estimate, the estimate record, budgets, speed and inspect_model integration."""
from __future__ import annotations

import json
import time

import pytest

from autocompress.errors import ConfigError
from autocompress.graph import ModelGraph
from autocompress.hardware import CostEstimate, CostModel, LayerFormat, check_budget
from autocompress.hardware.spec import HardwareProfile
from tests.hardware.hw_helpers import conv, residual_graph


def test_estimate_sums_layers_and_counts_provenance(tiny_profile: HardwareProfile) -> None:
    graph = ModelGraph(input_shape=(16, 8, 8), layers=(
        conv("a", 16, 16), conv("b", 16, 24), conv("c", 24, 24, hw=4)))
    est = CostModel(tiny_profile).estimate(graph)
    assert [layer.provenance for layer in est.layers] == ["lut", "interp", "analytic"]
    assert est.provenance == {"lut": 1, "interp": 1, "analytic": 1}
    assert est.latency_ms == pytest.approx(sum(layer.latency_ms for layer in est.layers))
    assert est.flash_kb == pytest.approx(sum(layer.flash_kb for layer in est.layers))
    assert set(est.summary()) == {"latency_ms", "flash_kb", "peak_sram_kb"}
    # measurement noise adds in quadrature, analytic error linearly
    analytic_std = est.layers[2].std_ms
    assert est.std_ms == pytest.approx((0.1 ** 2 + 0.15 ** 2) ** 0.5 + analytic_std)


def test_default_format_is_profile_native(mcu: HardwareProfile) -> None:
    model = CostModel(mcu)
    graph = residual_graph()
    assert model.estimate(graph) == model.estimate(graph, default=LayerFormat())
    assert all("w=int8" in c.key or "w=none" in c.key for c in model.estimate(graph).layers)
    fp32 = model.estimate(graph, {"conv1": LayerFormat(weight_bits=32, act_bits=32)})
    assert fp32.layers[1].key.endswith("w=fp32|a=fp32") and fp32.layers[2].key.endswith("int8")


def test_unknown_layer_in_formats(mcu: HardwareProfile) -> None:
    model, graph = CostModel(mcu), residual_graph()
    # a plan may name layers that a shallower candidate does not have: ignored by default
    assert model.estimate(graph, {"conv9": LayerFormat(weight_bits=4)}) == model.estimate(graph)
    with pytest.raises(ValueError, match=r"conv9.*did you mean 'conv\d'"):
        model.estimate(graph, {"conv9": LayerFormat()}, strict=True)


def test_to_dict_round_trip(mcu: HardwareProfile) -> None:
    est = CostModel(mcu).estimate(residual_graph())
    data = json.loads(json.dumps(est.to_dict()))
    assert data["version"] == 1 and len(data["layers"]) == 6
    assert data["layers"][0]["fqn"] == "conv0" and data["profile"] == "stm32f746"
    assert CostEstimate.from_dict(data) == est


def test_check_budget_uses_optuna_sign(mcu: HardwareProfile) -> None:
    est = CostModel(mcu).estimate(residual_graph())
    out = check_budget(est, {"max_latency_ms": est.latency_ms + 1, "max_flash_kb": 1.0,
                             "max_peak_sram_kb": 320})
    assert out["max_latency_ms"] == pytest.approx(-1.0)
    assert out["max_flash_kb"] == pytest.approx(est.flash_kb - 1.0) and out["max_flash_kb"] > 0
    assert out["max_peak_sram_kb"] < 0
    with pytest.raises(ConfigError, match="did you mean 'max_flash_kb'"):
        check_budget(est, {"max_flash": 1.0})


def test_estimate_is_cheap(mcu: HardwareProfile) -> None:
    layers = tuple(conv(f"l{i}", 16 + i, 16 + i + 1, hw=16) for i in range(50))
    graph = ModelGraph(input_shape=(16, 16, 16), layers=layers)
    model = CostModel(mcu)
    model.estimate(graph)
    start = time.perf_counter()
    for _ in range(20):
        model.estimate(graph, default=LayerFormat(weight_bits=4))
    per_call_ms = (time.perf_counter() - start) / 20 * 1e3
    assert per_call_ms < 20, per_call_ms        # typically well under 1 ms


def test_works_on_inspect_model_output(mcu: HardwareProfile) -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    from autocompress.graph import inspect_model

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            x = x + self.body(x)
            return self.fc(torch.flatten(self.pool(x), 1))

    graph = inspect_model(Block(), torch.zeros(1, 3, 16, 16))
    est = CostModel(mcu).estimate(graph, {"body.0": LayerFormat(weight_bits=4)})
    assert est.latency_ms > 0 and est.provenance == {"analytic": len(graph.layers)}
    assert est.peak_at in {layer.fqn for layer in graph.layers}
    # the stem output (8x16x16 int8 = 2 KB) stays live across the body: peak >= 3 tensors
    assert est.peak_sram_kb >= 3 * 2048 / 1024


@pytest.mark.parametrize(("profile", "bits"), [("pixel4", 8), ("stm32f746", 32)])
def test_weightless_layers_run_in_the_format_of_their_inputs(profile: str, bits: int) -> None:
    """An add or pool is not in the plan's formats: it runs as the layers feeding it do, not
    in the device's default (pixel4: fp32, stm32f746: int8)."""
    graph = residual_graph()
    fmt = LayerFormat(weight_bits=bits, act_bits=8 if bits == 8 else 32)
    formats = {layer.fqn: fmt for layer in graph.layers if layer.compressible}
    est = CostModel(profile).estimate(graph, formats)
    act = "int8" if bits == 8 else "fp32"
    assert {c.key.rsplit("|a=", 1)[1] for c in est.layers} == {act}
    # peak SRAM: conv0's output (live until the add) + the add's, at the run format's width
    assert est.peak_sram_kb * 1024 >= 2 * 512 * bits // 8
    mixed = {**formats, "conv0": LayerFormat(weight_bits=32, act_bits=32)}
    add = next(c for c in CostModel(profile).estimate(graph, mixed).layers if c.fqn == "add")
    assert add.key.endswith("a=fp32")                   # the wider of its two inputs
