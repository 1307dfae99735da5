"""Flash and peak SRAM against hand-computed byte counts."""
from __future__ import annotations

import pytest

from autocompress.graph import ModelGraph
from autocompress.hardware import CostModel, LayerFormat, peak_sram
from autocompress.hardware.memory import KB, weight_bytes
from autocompress.hardware.spec import HardwareProfile
from tests.hardware.hw_helpers import residual_graph

# residual_graph(): conv0 3->8 (216 w, 8 b), conv1 8->8 (576 w, 8 b), conv2 8->8 (576 w,
# 8 b), add, pool, fc 8->10 (80 w, 10 b). 34 output channels in weighted layers.
INT8_FLASH = (216 + 576 + 576 + 80) + 4 * 34 + 4 * 34   # weights + int32 bias + fp32 scales


def test_peak_sram_keeps_residual_alive() -> None:
    peak = peak_sram(residual_graph())
    # step 0: x 192 + t0 512 = 704; step 1: t0 + t1 = 1024;
    # step 2: t0 (held for the add) + t1 + t2 = 1536  <- peak; step 3: t0 + t2 + t3 = 1536
    assert peak.live_bytes[:4] == (704.0, 1024.0, 1536.0, 1536.0)
    assert peak.peak_bytes == 1536.0 and peak.step == 2 and peak.fqn == "conv2"
    chain = ModelGraph(input_shape=(3, 8, 8), layers=residual_graph().layers)
    assert peak_sram(chain).peak_bytes == 1024.0            # without lifetimes: in + out only


def test_peak_sram_scales_with_activation_bytes(mcu: HardwareProfile) -> None:
    graph = residual_graph()
    int8 = CostModel(mcu).estimate(graph)
    fp32 = CostModel(mcu).estimate(graph, default=LayerFormat(weight_bits=32, act_bits=32))
    assert int8.peak_sram_kb == pytest.approx(1536 / KB) and int8.peak_at == "conv2"
    assert fp32.peak_sram_kb == pytest.approx(4 * 1536 / KB)
    # int4 activations are not native: they are stored as int8
    int4 = CostModel(mcu).estimate(graph, default=LayerFormat(act_bits=4))
    assert int4.peak_sram_kb == int8.peak_sram_kb


def test_flash_exact_bytes(mcu: HardwareProfile) -> None:
    model = CostModel(mcu)
    graph = residual_graph()
    assert model.estimate(graph).flash_kb * KB == pytest.approx(INT8_FLASH)
    fp32 = model.estimate(graph, default=LayerFormat(weight_bits=32, act_bits=32))
    assert fp32.flash_kb * KB == pytest.approx(1448 * 4 + 34 * 4)   # fp32 bias, no scales
    int4 = model.estimate(graph, {"conv1": LayerFormat(weight_bits=4)})
    assert int4.flash_kb * KB == pytest.approx(INT8_FLASH - 576 / 2)   # packed 2 per byte


def test_int4_halves_weight_flash_not_time(mcu: HardwareProfile) -> None:
    model = CostModel(mcu)
    graph = residual_graph()
    int8 = model.estimate(graph)
    int4 = model.estimate(graph, default=LayerFormat(weight_bits=4))
    weights = 216 + 576 + 576 + 80
    assert (int8.flash_kb - int4.flash_kb) * KB == pytest.approx(weights / 2)
    assert int4.latency_ms == int8.latency_ms


def test_sparsity_saves_flash_not_time(mcu: HardwareProfile) -> None:
    model = CostModel(mcu)
    graph = residual_graph()
    dense = model.estimate(graph)
    sparse = model.estimate(graph, {"conv1": LayerFormat(sparsity=0.5)})
    # 288 non-zeros: 288 B values + min(bitmask 72 B, CSR 288*2 + 9*4 B) = 360 B (was 576)
    assert (dense.flash_kb - sparse.flash_kb) * KB == pytest.approx(576 - 360)
    assert sparse.latency_ms == dense.latency_ms


def test_weight_bytes_storage_choices() -> None:
    assert weight_bytes(1000, 8) == 1000 and weight_bytes(1000, 2) == 250
    assert weight_bytes(1000, 8, sparsity=0.1) == 1000          # dense is smaller
    assert weight_bytes(1000, 8, 0.99, rows=10) == 10 + (10 * 2 + 11 * 4)   # CSR beats bitmask
    assert weight_bytes(1000, 8, 0.9) == 100 + 125                # bitmask beats CSR


def test_a_tensor_is_held_at_the_widest_format_of_its_writer_and_readers() -> None:
    """An fp32 classifier reading an int8 pool's output holds it as fp32."""
    graph = residual_graph()
    bits = {layer.fqn: 8 for layer in graph.layers}
    fc = [layer.fqn for layer in graph.layers].index("fc")
    assert peak_sram(graph, bits).live_bytes[fc] == 8 * 1 + 10 * 1
    assert peak_sram(graph, {**bits, "fc": 32}).live_bytes[fc] == 8 * 4 + 10 * 4
    assert peak_sram(graph, {**bits, "conv0": 32}).live_bytes[0] == 192 * 4 + 512 * 4
