"""Compression changes the exported artifact for real: channels gone from the ONNX graph,
low-rank layers exported as two convs, sparse/clustered weights baked into the values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autocompress.compress import (
    ClusterConfig,
    CompressionPlan,
    LowRankConfig,
    PruneConfig,
    QuantConfig,
    SparsityConfig,
    apply_plan,
)
from autocompress.compress.actquant import remove_act_quant
from autocompress.models import StudentArch, build_student

onnx = pytest.importorskip("onnx")
from autocompress.export.onnx_io import export_onnx, parity  # noqa: E402

EX = torch.zeros(1, 1, 8, 8)


def _export(plan: CompressionPlan, tmp_path, name: str):
    torch.manual_seed(0)
    net = build_student(StudentArch(), in_channels=1, num_classes=10)
    model = remove_act_quant(apply_plan(net, plan, EX, round_to=4, ignored=("classifier",)))
    path = export_onnx(model, EX, tmp_path / f"{name}.onnx")
    assert parity(model, path, torch.randn(4, 1, 8, 8)) < 1e-4
    proto = onnx.load(str(path))
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    return proto, convs, weights


def test_onnx_graph_really_shrinks(tmp_path):
    _, dense_convs, dense_w = _export(CompressionPlan(), tmp_path, "dense")
    plan = CompressionPlan(layers={
        "stem.conv": (PruneConfig(ratio=0.5),),
        "head.conv": (LowRankConfig(rank_ratio=0.25), QuantConfig(bits=4, act_bits=8)),
        "stages.1.0.expand.conv": (SparsityConfig(ratio=0.75), ClusterConfig(k=4))})
    _, convs, weights = _export(plan, tmp_path, "small")
    assert len(convs) == len(dense_convs) + 1                      # head.conv -> two convs
    first_out = lambda ws: min(w.shape[0] for w in ws.values() if w.ndim == 4)  # noqa: E731
    assert first_out(weights) < first_out(dense_w)                 # stem channels removed
    assert sum(w.size for w in weights.values()) < sum(w.size for w in dense_w.values())
    sparse = [w for w in weights.values() if w.ndim == 4 and np.mean(w == 0) >= 0.74]
    assert sparse
    for row in sparse[0]:   # BatchNorm folding scales each output channel: k values per row
        assert len(np.unique(row[row != 0])) <= 4


def test_activation_quant_is_left_out_of_the_onnx_graph(tmp_path):
    import copy

    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    plan = CompressionPlan(layers={"head.conv": (QuantConfig(bits=4, act_bits=6),),
                                   "stem.conv": (QuantConfig(bits=8, act_bits=8),)})
    net = build_student(StudentArch(), in_channels=1, num_classes=10)
    model = apply_plan(net, plan, EX, calibration=x).eval()
    path = export_onnx(model, EX, tmp_path / "aq.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Round" not in ops                      # (Clip is ReLU6)
    assert parity(remove_act_quant(copy.deepcopy(model)), path, x) < 1e-5
