"""Read an ONNX file (fp32, or int8 QDQ) into a ModelGraph + per-layer formats.

Shapes come from ``onnx.shape_inference``. Like ``inspect_model``, activations, BatchNorm,
reshapes and Q/DQ pairs fold into the layer before them (they add no layer and no tensor);
a conv/Gemm whose weight is ``DequantizeLinear`` of an int8 initializer runs int8, and its
activation format is int8 when its input comes out of a ``DequantizeLinear``.

>>> graph, formats = onnx_to_graph("runs/demo/export/6/model.int8.onnx")  # doctest: +SKIP
>>> formats[graph.compressible[0].fqn].weight_bits                        # doctest: +SKIP
8
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from autocompress.errors import ModelError
from autocompress.graph import LayerInfo, ModelGraph, TensorInfo
from autocompress.hardware.formats import LayerFormat

# Ops that pass their (first) input through as far as cost is concerned (fused or free).
# folded into the op before them (ReLU and ReLU6 = Clip fuse into a conv); hard-swish,
# sigmoid, tanh and leaky ReLU are ops of their own, as in the PyTorch trace (``_trace.py``)
ALIAS_OPS = frozenset({"Relu", "Clip", "BatchNormalization", "Identity", "Dropout", "Flatten",
                       "Reshape", "Squeeze", "Unsqueeze", "QuantizeLinear", "DequantizeLinear",
                       "Cast"})
QOPERATOR_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})
INT_TYPES = {3: 8, 2: 8}       # onnx TensorProto INT8, UINT8 -> bits


def _load(path: Path, input_shape: tuple[int, ...] | None) -> Any:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"cannot read ONNX file: {exc}", loc=str(path)) from None
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f"expected one model input, got {[i.name for i in inputs]}",
                         loc=str(path))
    dims = inputs[0].type.tensor_type.shape.dim
    if input_shape is not None:
        if len(input_shape) != len(dims) - 1:
            raise ModelError(f"--input-shape has {len(input_shape)} dims, the model input has "
                             f"{len(dims) - 1} (batch excluded)", loc=str(path))
        fixed = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[1:])
        if any(f is not None and f != v for f, v in zip(fixed, input_shape, strict=True)):
            raise ModelError(f"--input-shape {','.join(map(str, input_shape))} does not fit the "
                             f"model input {','.join(str(f or '?') for f in fixed)}",
                             loc=str(path), hint="leave --input-shape out for a fixed-shape "
                             "model, or give its own shape")
        for dim, value in zip(dims[1:], input_shape, strict=True):
            dim.ClearField("dim_param")
            dim.dim_value = value
    dims[0].ClearField("dim_param")
    dims[0].dim_value = 1
    if any(d.dim_value <= 0 for d in dims):
        raise ModelError("the model input has symbolic dimensions", loc=str(path),
                         hint="give --input-shape C,H,W")
    return onnx.shape_inference.infer_shapes(model)


def onnx_to_graph(path: str | Path, input_shape: tuple[int, ...] | None = None,
                  ) -> tuple[ModelGraph, dict[str, LayerFormat]]:
    """(ModelGraph, fqn -> LayerFormat) of the ONNX model at ``path`` (batch 1)."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    if not path.is_file():
        raise ModelError("ONNX file not found", loc=str(path))
    model = _load(path, input_shape)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if all(d.dim_value > 0 for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims[1:])
    x_name = next(i.name for i in g.input if i.name not in inits)
    alias: dict[str, str] = {x_name: x_name}
    quantized: set[str] = set()               # activation names that come out of a DQ
    weights: dict[str, tuple[tuple[int, ...], int]] = {}   # name -> (shape, bits)
    for t in g.initializer:
        weights[t.name] = (tuple(t.dims), INT_TYPES.get(t.data_type, 32))
    layers: list[LayerInfo] = []
    formats: dict[str, LayerFormat] = {}
    uncosted: dict[str, tuple[str, int]] = {}
    for i, node in enumerate(g.node):
        if node.op_type in QOPERATOR_OPS:
            raise ModelError(f"QOperator node {node.op_type} is not supported", loc=str(path),
                             hint="quantize in QDQ format (quant_format=QuantFormat.QDQ)")
        if node.op_type == "Constant":
            weights[node.output[0]] = (tuple(numpy_helper.to_array(node.attribute[0].t).shape),
                                       32)
            continue
        acts = [alias[n] for n in node.input if n in alias]
        if not acts and node.input and node.input[0] in weights:
            # a weight computed from a weight: DQ of an int8 initializer, or the Identity
            # torch.onnx.export puts before an initializer it shares between layers; a float
            # weight quantized in the graph (Q then DQ, as QAT exports write) is int8
            shape, bits = weights[node.input[0]]
            weights[node.output[0]] = (shape, 8 if node.op_type == "QuantizeLinear" else bits)
            continue
        if node.op_type in ALIAS_OPS or not acts:
            if acts:
                alias[node.output[0]] = acts[0]
                if node.op_type == "DequantizeLinear":
                    quantized.add(node.output[0])
            continue
        src = acts[0]
        in_shape = shapes.get(src) or shapes.get(node.input[0], ())
        out_shape = shapes.get(node.output[0], ())
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        name = node.name or f"{node.op_type.lower()}_{i}"
        fields: dict[str, Any] = {}
        w = weights.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "Conv" and w is not None and len(w[0]) == 4:   # not 1-D, 3-D
            k = int(attrs.get("kernel_shape", w[0][2:])[0])
            groups = int(attrs.get("group", 1))
            bias = _numel(weights, node.input[2:])
            square = len(set(attrs.get("kernel_shape", w[0][2:]))) <= 1 and \
                len(set(attrs.get("strides", [1]))) <= 1
            fields = {"op": "conv2d", "kernel": k, "stride": int(attrs.get("strides", [1])[0]),
                      "square": square,
                      "groups": groups, "params": math.prod(w[0]), "bias": bias,
                      "macs": math.prod(out_shape) * math.prod(w[0][1:])}
        elif node.op_type in ("Gemm", "MatMul") and w is not None:
            bias = _numel(weights, node.input[2:])
            fields = {"op": "linear", "params": math.prod(w[0]), "bias": bias,
                      "macs": math.prod(w[0])}
        elif node.op_type in ("Add", "Sum", "Mul") and len(acts) >= 2:
            fields = {"op": node.op_type.lower().replace("sum", "add"),
                      "macs": math.prod(out_shape)}
        elif node.op_type in ("Add", "Mul", "Sub", "Div"):   # bias / scale by a constant
            alias[node.output[0]] = src
            continue
        elif node.op_type == "GlobalAveragePool":
            out_shape = out_shape[:1]
            fields = {"op": "avgpool", "kernel": in_shape[-1], "stride": in_shape[-1],
                      "macs": math.prod(in_shape)}
        elif node.op_type in ("AveragePool", "MaxPool"):
            k = int(attrs.get("kernel_shape", [1])[0])
            fields = {"op": "avgpool" if node.op_type == "AveragePool" else "maxpool",
                      "kernel": k, "stride": int(attrs.get("strides", [1])[0]),
                      "macs": math.prod(out_shape) * k * k}
        else:
            n = sum(math.prod(weights[x][0]) for x in node.input   # matrices, not shapes
                    if x in weights and len(weights[x][0]) >= 2) * (node.op_type != "PRelu")
            if n:     # a ConvTranspose, Conv1d, an RNN: weights the cost model does not know
                uncosted[name] = (node.op_type, n)
            if not (in_shape and out_shape):      # an RNN's sequence outputs, a Shape
                alias[node.output[0]] = src
                continue
            fields = {"op": node.op_type.lower(), "macs": 0}
        if fields["op"] in ("conv2d", "linear") and not (in_shape and out_shape):
            raise ModelError(f"the shapes around {name} are unknown (a Reshape whose size "
                             "is computed at run time?)", loc=str(path),
                             hint="export the model with a fixed batch size, or predict the "
                                  "PyTorch model (module:callable) instead")
        layer = LayerInfo(fqn=name, in_shape=in_shape, out_shape=out_shape,
                          inputs=tuple(dict.fromkeys(acts)), output=node.output[0], **fields)
        layers.append(layer)
        alias[node.output[0]] = node.output[0]
        shapes[node.output[0]] = out_shape
        w_bits = w[1] if w is not None and layer.compressible else 32
        # int8 activations only where every activation input is dequantized and the weights
        # (if any) are integer: a float layer, or an add with one float input, runs float
        # (as the cost model runs a plan; the int8 file's float layers read a DQ'd tensor)
        ins = [n for n in node.input if n in alias]
        all_dq = bool(ins) and all(n in quantized for n in ins)
        a_bits = 8 if all_dq and (w_bits < 32 or not layer.compressible) else 32
        formats[name] = LayerFormat(weight_bits=w_bits, act_bits=a_bits)
    if not layers:
        raise ModelError("no costable layer found in the ONNX graph", loc=str(path))
    return ModelGraph(input_shape=shapes[x_name], layers=tuple(layers),
                      tensors=_tensors(layers, shapes, x_name),
                      uncosted=tuple((f, k, c) for f, (k, c) in uncosted.items())), formats


def _numel(weights: dict[str, tuple[tuple[int, ...], int]], names: Any) -> int:
    """Elements of the optional weight input named first in ``names`` (0 when it is absent)."""
    return math.prod(weights[names[0]][0]) if names and names[0] in weights else 0


def _tensors(layers: list[LayerInfo], shapes: dict[str, tuple[int, ...]],
             x_name: str) -> tuple[TensorInfo, ...]:
    produced = {x_name: -1} | {layer.output: i for i, layer in enumerate(layers)}
    last = dict.fromkeys(produced, -1)
    for i, layer in enumerate(layers):
        for name in layer.inputs:
            last[name] = i
    last[layers[-1].output] = len(layers)
    return tuple(TensorInfo(name=n, numel=math.prod(shapes.get(n, (0,))), produced_at=p,
                            last_used_at=max(last[n], p)) for n, p in produced.items())
