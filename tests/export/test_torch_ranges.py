"""The int8 QDQ export reuses activation ranges calibrated in torch (actquant)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from autocompress.compress import CompressionPlan, QuantConfig, apply_plan, bake
from autocompress.compress.actquant import input_ranges, remove_act_quant
from autocompress.errors import ExportError
from autocompress.models import StudentArch, build_student

onnx = pytest.importorskip("onnx")
from autocompress.export.onnx_io import export_onnx, onnx_predict  # noqa: E402
from autocompress.export.quant_ort import quantize_int8  # noqa: E402


def _input_scale(path) -> float:
    proto = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    node = next(n for n in proto.graph.node
                if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    return float(inits[node.input[1]])


def test_int8_export_uses_the_torch_calibrated_ranges(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8) * 3 - 1
    net = build_student(StudentArch(), in_channels=1, num_classes=10)
    plan = CompressionPlan(layers={"stem.conv": (QuantConfig(bits=8, act_bits=8,
                                                             act_calib="percentile"),),
                                   "head.conv": (QuantConfig(bits=8, act_bits=6),)})
    model = bake(apply_plan(net, plan, x[:1], calibration=x)).eval()
    ranges = input_ranges(model, x[:1])
    assert sum(r is not None for r in ranges) == 2 and ranges[0] is not None
    _, lo, hi = ranges[0]
    assert lo > float(x.min()) and hi < float(x.max())      # percentile: inside min-max
    fp32 = export_onnx(remove_act_quant(copy.deepcopy(model)), x[:1], tmp_path / "m.onnx")
    own = quantize_int8(fp32, tmp_path / "own.int8.onnx", x.numpy())
    torch_ranges = quantize_int8(fp32, tmp_path / "t.int8.onnx", x.numpy(), input_ranges=ranges)
    assert _input_scale(own) == pytest.approx((float(x.max()) - float(x.min())) / 255, rel=1e-5)
    assert _input_scale(torch_ranges) == pytest.approx((hi - lo) / 255, rel=1e-5)
    out = onnx_predict(torch_ranges, x.numpy())
    assert out.shape == (64, 10) and np.isfinite(out).all()


def test_ranges_that_do_not_match_the_graph_are_an_error(tmp_path):
    torch.manual_seed(0)
    net = build_student(StudentArch(), in_channels=1, num_classes=10).eval()
    fp32 = export_onnx(net, torch.zeros(1, 1, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="cannot match"):
        quantize_int8(fp32, tmp_path / "q.onnx", np.zeros((4, 1, 8, 8), np.float32),
                      input_ranges=[((3, 3, 3, 3), -1.0, 1.0)])


def test_ranges_that_are_all_none_leave_the_calibration_to_onnxruntime(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8)
    net = build_student(StudentArch(), in_channels=1, num_classes=10).eval()
    fp32 = export_onnx(net, x[:1], tmp_path / "m.onnx")
    own = quantize_int8(fp32, tmp_path / "own.onnx", x.numpy())
    none = quantize_int8(fp32, tmp_path / "none.onnx", x.numpy(), input_ranges=[None])
    assert own.read_bytes() == none.read_bytes()
