"""compact_onnx: a smaller file that computes the same thing; onnx_size_breakdown."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from autocompress.models import StudentArch, build_student

onnx = pytest.importorskip("onnx")
from autocompress.export import quant_ort  # noqa: E402
from autocompress.export.compact import compact_onnx, onnx_size_breakdown  # noqa: E402
from autocompress.export.onnx_io import export_onnx, onnx_predict  # noqa: E402


@pytest.fixture(scope="module")
def raw_int8(tmp_path_factory):
    """An int8 QDQ file as onnxruntime writes it (compaction switched off)."""
    tmp = tmp_path_factory.mktemp("compact")
    torch.manual_seed(0)
    net = build_student(StudentArch(), in_channels=1, num_classes=10).eval()
    x = torch.rand(32, 1, 8, 8)
    fp32 = export_onnx(net, x[:1], tmp / "m.onnx")
    patch = pytest.MonkeyPatch()
    patch.setattr(quant_ort, "compact_onnx", lambda path: None)
    try:
        path = quant_ort.quantize_int8(fp32, tmp / "raw.int8.onnx", x.numpy())
    finally:
        patch.undo()
    return path, x.numpy()


def _zero_point_inputs_of_int32_dq(proto) -> int:
    inits = {t.name: t for t in proto.graph.initializer}
    return sum(1 for n in proto.graph.node if n.op_type == "DequantizeLinear"
               and len(n.input) == 3 and n.input[0] in inits
               and inits[n.input[0]].data_type == onnx.TensorProto.INT32)


def test_compaction_keeps_the_outputs_and_drops_what_it_says(raw_int8, tmp_path):
    raw, x = raw_int8
    small = tmp_path / "small.onnx"
    shutil.copy(raw, small)
    before = onnx.load(str(raw))
    sizes = compact_onnx(small)
    after = onnx.load(str(small))
    assert sizes == {"bytes_before": raw.stat().st_size, "bytes_after": small.stat().st_size}
    assert sizes["bytes_after"] < sizes["bytes_before"]
    # the int32 biases keep their zero points: ORT Mobile's conversion needs them
    assert _zero_point_inputs_of_int32_dq(after) == _zero_point_inputs_of_int32_dq(before) > 0
    assert not after.graph.value_info
    assert [i.name for i in after.graph.input] == ["input"]
    assert [o.name for o in after.graph.output] == ["logits"]
    assert all(not n.name for n in after.graph.node
               if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    assert [n.op_type for n in after.graph.node] == [n.op_type for n in before.graph.node]
    np.testing.assert_array_equal(onnx_predict(small, x), onnx_predict(raw, x))


def test_size_breakdown_adds_up_to_the_file(raw_int8):
    raw, _ = raw_int8
    parts = onnx_size_breakdown(raw)
    assert sum(parts.values()) == raw.stat().st_size
    proto = onnx.load(str(raw))
    int8_weights = sum(onnx.numpy_helper.to_array(t).nbytes for t in proto.graph.initializer
                       if t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2)
    assert parts["weights"] == int8_weights > 0


def test_the_compacted_int8_file_converts_for_ort_mobile(raw_int8, tmp_path):
    """What `python -m onnxruntime.tools.convert_onnx_models_to_ort` does: an ORT-format
    model with its QDQ fusions saved as runtime optimizations."""
    import onnxruntime as ort

    small = tmp_path / "small.onnx"
    shutil.copy(raw_int8[0], small)
    compact_onnx(small)
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "small.ort")
    so.add_session_config_entry("session.save_model_format", "ORT")
    so.add_session_config_entry("optimization.minimal_build_optimizations", "save")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(str(small), so, providers=["CPUExecutionProvider"])
    assert (tmp_path / "small.ort").stat().st_size > 0
