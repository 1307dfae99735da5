"""The manifest's ``mcu_memory``: the int8 file's weights Flash and a tensor-arena lower bound
that counts TFLite Micro's per-channel requantization parameters beside the activations
(15.6 KB of activations was all an MCU user was told for MLPerf Tiny's DS-CNN, whose arena also
holds 4.5 KB of them)."""
from __future__ import annotations

import torch
from torch import nn

from autocompress.export.mcu_memory import mcu_memory, per_channel_param_bytes
from autocompress.export.summary import NO_HOST, print_summary


def _files(tmp_path):
    from autocompress.export.onnx_io import export_onnx
    from autocompress.export.quant_ort import quantize_int8

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, (10, 4), stride=2, padding=(5, 1)), nn.ReLU(),
                        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
                        nn.Conv2d(16, 24, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(24, 12)).eval()
    x = torch.randn(16, 1, 49, 10)
    fp32 = export_onnx(net, x[:1], tmp_path / "m.onnx")
    return fp32, quantize_int8(fp32, tmp_path / "m.int8.onnx", x.numpy(), activations="int8")


def test_the_arena_bound_adds_8_bytes_per_output_channel_of_every_int8_conv(tmp_path):
    fp32, int8 = _files(tmp_path)
    assert per_channel_param_bytes(int8) == 8 * (16 + 16 + 24)     # stem, depthwise, 1x1
    assert per_channel_param_bytes(fp32) == 0
    cost = {"stm32f746": {"latency_ms": 3.0, "flash_kb": 2.5, "peak_sram_kb": 3.0}}
    mem = mcu_memory(int8, cost, "stm32f746", "mcu")
    assert mem["weights_flash_kb"] == 2.5 and mem["activations_peak_kb"] == 3.0
    assert mem["per_channel_params_kb"] == 8 * 56 / 1024
    assert mem["tensor_arena_min_kb"] == 3.0 + 8 * 56 / 1024
    assert "kTensorArenaSize" in mem["note"]
    assert mcu_memory(int8, cost, "stm32f746", "phone") is None
    assert mcu_memory(int8, {"stm32f746": {"error": "x"}}, "stm32f746", "mcu") is None


def test_the_summary_says_the_arena_bound_on_an_mcu_only(tmp_path, capsys):
    cost = {"latency_ms": 1.0, "flash_kb": 1.0, "peak_sram_kb": 1.0}
    m = {"trial": 5, "plan_id": "abc", "baseline": None, "over_budget": [],
         "accuracy": {"val_trial": 0.9, "test_torch": 0.9, "test_onnx_fp32": 0.9,
                      "test_onnx_int8": 0.9},
         "predicted": {"stm32f746": cost},
         "host_latency_ms": {"fp32": {"median_ms": 0.02}, "int8": {"median_ms": 0.03}},
         "files": {"model.onnx": 1024, "model.int8.onnx": 512}, "params": 10,
         "parity_max_abs_diff": 0.0, "host_predicted_vs_measured": {"note": NO_HOST}}
    print_summary(tmp_path, m, "stm32f746")
    assert "mcu memory" not in capsys.readouterr().out
    m["mcu_memory"] = {"weights_flash_kb": 26.09375, "activations_peak_kb": 15.625,
                       "per_channel_params_kb": 4.5, "tensor_arena_min_kb": 20.125}
    print_summary(tmp_path, m, "stm32f746")
    line = next(x for x in capsys.readouterr().out.splitlines() if "mcu memory" in x)
    assert "weights 26.1 KB Flash" in line and "tensor arena >= 20.1 KB" in line
    assert "15.6 KB activations + 4.5 KB per-channel" in line
