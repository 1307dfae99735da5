"""Audit of model.int8.onnx for its target runtimes (``qdq_audit``, ``islands``): integer-only
executability of the ``int8``/``uint8`` forms, a pure-numpy integer reference against ONNX
Runtime, TensorRT's explicit-quantization rules for ``int8-symmetric``. Untrained tiny nets,
CPU, a few seconds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autocompress.export.islands import float_islands
from autocompress.export.onnx_io import DEPLOY_OPSET, export_onnx
from autocompress.export.quant_ort import quantize_int8
from tests.conftest import tiny_resnet
from tests.export.qdq_audit import integer_reference, tensorrt_violations
from tests.export.test_onnx_export import net8


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    torch.manual_seed(0)
    model = net8().eval()
    path = tmp_path_factory.mktemp("audit") / "m.onnx"
    return export_onnx(model, torch.rand(1, 1, 8, 8), path)


def _calib(n: int = 128) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, 8, 8), dtype=np.float32)


def _opset(proto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def test_the_files_are_at_an_opset_tensorrt_8_parses(fp32, tmp_path):
    """TensorRT 8.5/8.6 (JetPack 5, the Jetson profiles' runtime) document ONNX operators up
    to opset 17, and the symmetric form exists for their parser. Both files were written at
    torch's default opset 20 (IR 9), which only TensorRT 10 documents."""
    import onnx
    import onnxruntime as ort

    assert _opset(onnx.load(str(fp32))) == DEPLOY_OPSET == 17
    for form in ("int8-symmetric", "int8", "uint8"):
        path = quantize_int8(fp32, tmp_path / f"{form}.onnx", _calib(), activations=form)
        proto = onnx.load(str(path))
        assert _opset(proto) == DEPLOY_OPSET and proto.ir_version <= 8, form
        onnx.checker.check_model(proto)
    assert tensorrt_violations(onnx.load(str(tmp_path / "int8-symmetric.onnx"))) == []
    run = ort.InferenceSession(str(tmp_path / "int8-symmetric.onnx"),
                               providers=["CPUExecutionProvider"])
    assert np.isfinite(run.run(None, {"input": _calib(16)})[0]).all()


@pytest.mark.parametrize("form", ["int8", "uint8"])
def test_the_zero_point_forms_are_integer_only_and_match_an_integer_reference(fp32, tmp_path,
                                                                              form):
    """Every compute node between DequantizeLinear inputs and a QuantizeLinear output (no
    float island: residual Add, pooling, flatten and logits included); an integer runtime
    (int32 accumulation, requantization by the file's scales and zero points) gives ONNX
    Runtime's (unoptimized QDQ) argmax."""
    import onnx
    import onnxruntime as ort

    path = quantize_int8(fp32, tmp_path / f"{form}.onnx", _calib(), activations=form)
    proto = onnx.load(str(path))
    assert float_islands(proto) == []
    x = _calib(64)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    ours = integer_reference(proto, x)
    assert np.mean(ours.argmax(1) == ref.argmax(1)) >= 0.98
    step = float(np.min(np.diff(np.unique(ours))))
    assert np.abs(ours - ref).max() <= 2 * step + 1e-6       # a rounding or two, no more


@pytest.mark.parametrize("form", ["int8", "uint8", "int8-symmetric"])
def test_the_float_islands_of_a_layer_kept_float_are_named_with_their_modules(tmp_path, form):
    """A layer the plan keeps at 32 bits runs float in model.int8.onnx, and so do the residual
    add, activation, pooling and flatten after it, up to the next int8 layer: an integer-only
    MCU runtime cannot run them, and export said nothing."""
    from autocompress.compress.actquant import layer_order
    from autocompress.export.islands import QUANTIZE_THEM, RUNS_THEM, island_report

    net, x = tiny_resnet()
    fp32 = export_onnx(net, x[:1], tmp_path / "m.onnx")
    order = layer_order(net, x[:1])
    kept = "stages.1.0.conv2.conv"
    hybrid = quantize_int8(fp32, tmp_path / "h.onnx", x.numpy(), activations=form,
                           keep_float=[f == kept for f in order])
    report = island_report(hybrid, form, "mcu", float_layers=True)
    assert [(o["module"], o["op"]) for o in report["ops"]] == [
        (kept, "Conv"), ("stages.1.0", "Add"), ("stages.1.0.act", "Relu"),
        ("pool", "GlobalAveragePool"), ("flatten", "Flatten")]      # the classifier: int8
    assert report["device_kind"] == "mcu"
    assert report["note"] == f"{RUNS_THEM['mcu']}; {QUANTIZE_THEM['mcu']}"
    whole = quantize_int8(fp32, tmp_path / "q.onnx", x.numpy(), activations=form)
    assert island_report(whole, form, "mcu", float_layers=False) == {
        "ops": [], "device_kind": "mcu", "note": ""}


class _MeanFlatten(torch.nn.Module):
    """A head written ``x.mean((2, 3))`` then flattened: ONNX Runtime's quantizer leaves the
    ReduceMean and the Flatten between a DequantizeLinear and a QuantizeLinear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)).mean((2, 3)), 1))


def test_islands_the_quantizer_left_are_not_told_to_quantize_layers(tmp_path):
    """Every layer quantized, yet ORT left a ReduceMean + Flatten float: the warning said
    "quantize those layers for an integer-only build", which the user cannot do (the plan
    keeps no layer float); the fix is said only where the plan keeps layers at 32 bits."""
    from autocompress.export.islands import RUNS_THEM, island_line, island_report

    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    fp32 = export_onnx(_MeanFlatten().eval(), x[:1], tmp_path / "m.onnx")
    whole = quantize_int8(fp32, tmp_path / "q.onnx", x.numpy(), activations="int8")
    report = island_report(whole, "int8", "mcu", float_layers=False)
    assert {o["op"] for o in report["ops"]} == {"ReduceMean", "Flatten"}
    assert report["note"] == RUNS_THEM["mcu"]
    (line,) = island_line(report, False)
    assert line.startswith("  warning    model.int8.onnx runs 2 ops in float: ")
    assert "quantize those layers" not in line
