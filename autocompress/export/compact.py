"""Shrink an ONNX file without changing what it computes.

Measured on the 3x32x32 student of ``benchmarks/techniques.py`` (63.5k weights): the int8
QDQ file of ``onnxruntime.quantization.quantize_static`` is 129 KB, of which 63.5 KB int8
weights and 20 KB what an int8 runtime needs (per-channel weight scales, int32 biases and
their scales, 4 B each per channel). The rest: int32 bias zero points that are all zero
(4 B per channel, 6.7 KB), shape annotations (``value_info``, 2.5 KB) and long generated
tensor and Q/DQ node names (``/stages/stages.0/stages.0.0/expand/act/Clip_output_0_Quantize
Linear_Output``: 27 KB of nodes, 15 KB of initializer framing). ``compact_onnx``:

- drops initializers left unused and ``value_info`` (onnxruntime infers shapes at load);
- renames every tensor but the graph's input and output to a short id, and clears the
  names of Quantize/DequantizeLinear nodes (compute nodes keep theirs, so
  ``autocompress predict`` still shows layer names).

Zero points stay, the int32 biases' all-zero ones included: without them the file runs, but
onnxruntime's conversion for ORT Mobile (``convert_onnx_models_to_ort``, which saves its QDQ
fusions) refuses it ("the sum of input arg count is not equal to size of input defs"), and
int8 weights without zero points are no longer fused from Gemm into QGemm.

Measured: 129 KB -> 95 KB (int8, when it also dropped the bias zero points; they are 6.7 KB),
269 KB -> 263 KB (fp32); outputs identical, the same fused operators in onnxruntime's
optimized graph (17 QLinearConv, 2 QLinearAdd, 1 QGemm), latency within noise.

>>> compact_onnx(Path("model.int8.onnx"))    # doctest: +SKIP
{'bytes_before': 129376, 'bytes_after': 95301}
"""
from __future__ import annotations

from pathlib import Path

from autocompress.export.onnx_io import _require, stored_arrays

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _short(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = digits[r] + out
        if i == 0:
            return "t" + out


def compact_onnx(path: Path) -> dict[str, int]:
    """Rewrite the ONNX file at ``path`` in place, smaller; returns its size before/after."""
    onnx = _require("onnx")

    path = Path(path)
    before = path.stat().st_size
    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    used = {n for node in g.node for n in node.input} | {o.name for o in g.output}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    del g.value_info[:]
    fixed = {i.name for i in g.input if i.name not in inits} | {o.name for o in g.output}
    rename: dict[str, str] = {}

    def new(name: str) -> str:
        if not name or name in fixed:
            return name
        if name not in rename:
            rename[name] = _short(len(rename))
        return rename[name]

    for t in g.initializer:
        t.name = new(t.name)
        t.doc_string = ""
    for node in g.node:
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]
        node.doc_string = ""
        if node.op_type in QDQ_OPS:
            node.name = ""
    kept_inputs = [i for i in g.input if i.name in fixed]
    del g.input[:]
    g.input.extend(kept_inputs)
    onnx.save_model(model, str(path))
    return {"bytes_before": before, "bytes_after": path.stat().st_size}


def onnx_size_breakdown(path: Path) -> dict[str, int]:
    """Bytes of an ONNX file by role: ``weights`` (int8 weights, or float weights of a float
    file), ``weight_scales_zero_points`` (per-channel float32 scales and int8 zero points of
    weights, float32 scales of int32 biases), ``bias`` (int32 or float32 vectors),
    ``activation_qparams`` (scalar scales/zero points), ``graph`` (the rest: nodes,
    names, protobuf framing).

    >>> onnx_size_breakdown(Path("model.int8.onnx"))    # doctest: +SKIP
    {'weights': 64528, 'weight_scales_zero_points': 15000, 'bias': 6664, ...}
    """
    arrays = list(stored_arrays(_require("onnx").load(str(path))).values())
    bias_scales = {id(a) for a in arrays if a.ndim == 1 and a.dtype.name == "float32"} \
        if any(a.dtype.name == "int32" for a in arrays) else set()
    out = {"weights": 0, "weight_scales_zero_points": 0, "bias": 0, "activation_qparams": 0}
    for a in arrays:
        if a.ndim >= 2:
            out["weights"] += a.nbytes
        elif a.ndim == 0 or a.size == 1:
            out["activation_qparams"] += a.nbytes
        elif a.dtype.name in ("int8", "uint8") or id(a) in bias_scales:
            out["weight_scales_zero_points"] += a.nbytes
        else:
            out["bias"] += a.nbytes
    out["graph"] = Path(path).stat().st_size - sum(out.values())
    return out
