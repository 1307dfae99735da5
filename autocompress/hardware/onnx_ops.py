"""One-op ONNX models (fp32, or int8 QDQ) for timing a LUT entry with onnxruntime.

Each model is the op as the exporter writes it in a whole network: conv (+ ReLU, which ORT
fuses), Gemm, Add, GlobalAveragePool + Flatten. The int8 version is static QDQ like
``autocompress.export.quant_ort`` writes: per-channel symmetric int8 weights, int32 bias,
uint8 activations; ORT fuses it into QLinearConv / QGemm / QLinearAdd / QLinearGlobalAvgPool.
Built with ``onnx.helper`` (no torch, no calibration run), so hundreds build in seconds.

>>> from autocompress.graph import LayerInfo
>>> layer = LayerInfo(fqn="c", op="conv2d", in_shape=(8, 8, 8), out_shape=(16, 8, 8), kernel=3)
>>> model, feeds = op_model(layer, int8=True)
>>> sorted(feeds), feeds["x"].shape
(['x'], (1, 8, 8, 8))
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from autocompress.graph import LayerInfo

OPSET = 17      # per-channel DequantizeLinear (axis) needs >= 13
IR_VERSION = 8  # accepted by every onnxruntime >= 1.10
ACT_SCALE = 0.05  # activation scale (uint8, zero point 0): values in [0, 12.75]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:   # pragma: no cover - onnx is a core dependency
        raise ImportError("install onnx: pip install onnx onnxruntime") from exc
    return onnx


class _Graph:
    """Collects nodes/initializers; ``q`` marks a tensor as QDQ-quantized when int8."""

    def __init__(self, int8: bool, rng: np.random.Generator, act_int8: bool | None = None,
                 ) -> None:
        self.onnx = _onnx()
        self.int8, self.rng = int8, rng
        self.act_int8 = int8 if act_int8 is None else act_int8
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def init(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], **attrs))
        return out

    def qdq(self, x: str) -> str:
        """Quantize + dequantize an activation (uint8) when int8; identity otherwise."""
        if not self.act_int8:
            return x
        scale = self.init("s", np.array(ACT_SCALE, np.float32))
        zero = self.init("z", np.array(0, np.uint8))
        return self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, scale, zero]),
                                              scale, zero])

    def weights(self, shape: tuple[int, ...], x_scale: float = ACT_SCALE) -> tuple[str, str]:
        """(weight, bias) tensor names: fp32 initializers, or DQ of int8 / int32 ones."""
        out_c = shape[0]
        w = self.rng.standard_normal(shape).astype(np.float32) * 0.1
        b = self.rng.standard_normal(out_c).astype(np.float32) * 0.1
        if not self.int8:
            return self.init("w", w), self.init("b", b)
        w_scale = (np.abs(w.reshape(out_c, -1)).max(axis=1) / 127).astype(np.float32)
        w_q = np.round(w / w_scale.reshape(-1, *([1] * (len(shape) - 1)))).astype(np.int8)
        w_dq = self.node("DequantizeLinear", [self.init("wq", w_q), self.init("ws", w_scale),
                                              self.init("wz", np.zeros(out_c, np.int8))],
                         axis=0)
        b_scale = (w_scale * x_scale).astype(np.float32)
        b_q = np.round(b / b_scale).astype(np.int32)
        b_dq = self.node("DequantizeLinear", [self.init("bq", b_q), self.init("bs", b_scale),
                                              self.init("bz", np.zeros(out_c, np.int32))],
                         axis=0)
        return w_dq, b_dq


def op_model(layer: LayerInfo, *, int8: bool, seed: int = 0, repeat: int = 1,
             act_int8: bool | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """(ModelProto, feeds) running ``layer`` alone at batch 1 (``repeat`` times in a chain:
    conv or add, and only when its output shape equals its input shape). ``int8`` quantizes
    weights and (unless ``act_int8`` is False: weight-only int8) activations.

    Supported ops: conv2d (ReLU fused; 'same' padding k//2), linear, add, avgpool (global).
    """
    if repeat > 1 and (layer.op not in ("conv2d", "add") or layer.in_shape != layer.out_shape):
        raise ValueError("only shape-preserving convs and adds can be chained")
    onnx = _onnx()
    helper = onnx.helper
    rng = np.random.default_rng(seed)
    g = _Graph(int8, rng, act_int8)
    in_shape = (1, *layer.in_shape)
    inputs = ["x"]
    if layer.op == "conv2d":
        c_in, c_out, k = layer.in_shape[0], layer.out_shape[0], layer.kernel
        y = "x"
        for _ in range(repeat):
            w, b = g.weights((c_out, c_in // layer.groups, k, k))
            y = g.node("Conv", [g.qdq(y), w, b], kernel_shape=[k, k],
                       strides=[layer.stride] * 2, pads=[k // 2] * 4, group=layer.groups)
            y = g.node("Relu", [y])
    elif layer.op == "linear":
        w, b = g.weights((layer.out_shape[0], math.prod(layer.in_shape)))
        y = g.node("Gemm", [g.qdq("x"), w, b], transB=1)
    elif layer.op == "add":
        inputs = ["x", "x2"]
        y, other = g.qdq("x"), g.qdq("x2")
        for i in range(repeat):            # a chain adds x2 again to the running sum
            y = g.node("Add", [y if i == 0 else g.qdq(y), other])
    elif layer.op == "avgpool":
        y = g.node("Flatten", [g.qdq(g.node("GlobalAveragePool", [g.qdq("x")]))])
    else:
        raise ValueError(f"no one-op ONNX model for op '{layer.op}'")
    y = g.qdq(y)
    out_shape = [1, *layer.out_shape]
    graph = helper.make_graph(
        g.nodes, "op", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(in_shape))
                        for n in inputs],
        [helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, out_shape)], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    # positive inputs: post-ReLU activations, inside the uint8 range
    feeds = {n: rng.uniform(0, 4, in_shape).astype(np.float32) for n in inputs}
    return model, feeds
