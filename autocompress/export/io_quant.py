"""The int8 file's input and output quantization: what firmware needs to feed it int8 data.

``model.int8.onnx`` takes float input and returns float logits: its first ``QuantizeLinear``
turns the input into int8/uint8 codes and its last ``DequantizeLinear`` turns the logits back.
A runtime that takes integer tensors at its boundary (TFLite Micro, CMSIS-NN, STM32Cube.AI
with int8 I/O) leaves those two steps to the application, which then needs their parameters:
``q = clip(round(x / scale) + zero_point)`` for the input, ``x = (q - zero_point) * scale`` for
the output. ``float_range`` is the float interval the codes cover: inputs outside it clip.

>>> io_quantization(Path("runs/demo/export/17/model.int8.onnx"))      # doctest: +SKIP
{'input': {'name': 'input', 'shape': ['batch', 1, 8, 8], 'layout': 'NCHW', 'dtype': 'uint8',
 'scale': 0.0039, 'zero_point': 0, 'float_range': [0.0, 1.0]}, 'output': {...}}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autocompress.export.onnx_io import _require

_LAYOUTS = {4: "NCHW", 3: "NCW", 2: "NC"}


def _constant(name: str, inits: dict[str, Any], consts: dict[str, Any]) -> np.ndarray | None:
    """An initializer's or a Constant node's value, None for a computed tensor."""
    helper = _require("onnx").numpy_helper
    if name in inits:
        return np.asarray(helper.to_array(inits[name]))
    if name in consts:
        return np.asarray(helper.to_array(consts[name]))
    return None


def _params(node: Any, inits: dict[str, Any], consts: dict[str, Any]) -> dict[str, Any] | None:
    """A Q or DQ node's per-tensor scale, zero point, code type and float range."""
    scale = _constant(node.input[1], inits, consts)
    zero = _constant(node.input[2], inits, consts) if len(node.input) > 2 and node.input[2] \
        else np.zeros((), np.uint8)
    if scale is None or zero is None or scale.size != 1 or zero.size != 1:
        return None
    info = np.iinfo(zero.dtype)
    s, z = float(scale.reshape(())), int(zero.reshape(()))
    return {"dtype": str(zero.dtype), "scale": s, "zero_point": z,
            "float_range": [(info.min - z) * s, (info.max - z) * s]}


def _shape(value_info: Any) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def io_quantization(path: Path) -> dict[str, Any]:
    """``{"input": ..., "output": ...}`` of an int8 QDQ ONNX file with one input and one
    output: each its name and shape, and either its quantization (``dtype``, ``scale``,
    ``zero_point``, ``float_range``) or ``"float": True`` where no Q/DQ pair sits at that
    boundary (a first or last layer kept float)."""
    proto = _require("onnx").load(str(path))
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: a.t for n in graph.node if n.op_type == "Constant"
              for a in n.attribute if a.name == "value"}
    producer = {out: n for n in graph.node for out in n.output}
    out: dict[str, Any] = {}
    x = next(i for i in graph.input if i.name not in inits)
    quants = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == x.name]
    found = [p for n in quants if (p := _params(n, inits, consts)) is not None]
    shape = _shape(x)
    out["input"] = {"name": x.name, "shape": shape,
                    **({"layout": _LAYOUTS[len(shape)]} if len(shape) in _LAYOUTS else {}),
                    **(found[0] if found and all(f == found[0] for f in found)
                       else {"float": True})}
    y = graph.output[0]
    last = producer.get(y.name)
    params = _params(last, inits, consts) if last is not None \
        and last.op_type == "DequantizeLinear" else None
    out["output"] = {"name": y.name, "shape": _shape(y), **(params or {"float": True})}
    return out
