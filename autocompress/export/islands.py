"""Float islands of ``model.int8.onnx``: the compute nodes that run in float.

A layer the plan keeps at 32 bits stays float in the int8 file, and so do the weightless ops
it feeds (its activation, a residual add, pooling, flatten) up to the next int8 layer's
QuantizeLinear. ONNX Runtime runs such a hybrid file as it is; an integer-only runtime
(CMSIS-NN, TFLite Micro built for int8) has no kernels for those nodes. ``float_islands``
finds them in the file as written; ``island_report`` is what export records and prints.

A node is an island when an activation input does not come from a DequantizeLinear, a
weight or bias is a float initializer not behind a DequantizeLinear, or its output is read
by something other than a QuantizeLinear (the graph output included). In the
``int8-symmetric`` (TensorRT) form float biases are the form itself (``float_bias``).

>>> module_of("/stages/stages.1/stages.1.0/conv2/conv/Conv"), module_of("/pool/GlobalAveragePool")
('stages.1.0.conv2.conv', 'pool')
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autocompress.export.onnx_io import _require, stored_arrays

QDQ = ("QuantizeLinear", "DequantizeLinear")
# inputs that are parameters, not activations: Clip's min/max, Reshape's shape, ...
PARAM_INPUTS = {"Clip": (1, 2), "Reshape": (1,), "Pad": (1, 2), "Resize": (1, 2, 3)}
WEIGHTED = ("Conv", "Gemm", "MatMul")

# what the islands mean where the export is headed (its profile's ``device.kind``)
RUNS_THEM = {
    "mcu": "an MCU's int8 runtime (CMSIS-NN, TFLite Micro built for int8) has no kernels "
           "for them: they need float reference kernels and (de)quantize steps, slower and "
           "with 4-byte activations",
    "phone": "TFLite and ONNX Runtime Mobile run them with float kernels, with (de)quantize "
             "steps around them",
    "jetson": "TensorRT runs them in fp16/fp32, with reformatting around them",
}
RUNS_THEM_ELSEWHERE = ("ONNX Runtime runs them with float kernels, with (de)quantize steps "
                       "around them")
# the fix, on an integer-only target, where the islands start at layers the plan keeps float
# (an island the quantizer left, e.g. a ReduceMean before a Flatten, has no such fix)
QUANTIZE_THEM = {"mcu": "quantize those layers for an integer-only build"}
SHOWN = 8       # ops named on the summary line; the manifest lists them all


def float_islands(proto: Any, *, float_bias: bool = False) -> list[dict[str, Any]]:
    """One entry per compute node that is not integer-only: name, op and the reasons.
    ``float_bias``: a float bias of a Conv/Gemm/MatMul is no reason (TensorRT's form)."""
    g = proto.graph
    consts = stored_arrays(proto)
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    found = []
    for n in g.node:
        if n.op_type in QDQ or n.op_type == "Constant":
            continue
        why = []
        for k, i in enumerate(n.input):
            if not i or k in PARAM_INPUTS.get(n.op_type, ()):
                continue
            if i in consts:
                if not (float_bias and k == 2 and n.op_type in WEIGHTED):
                    why.append(f"float initializer input {k} {list(consts[i].shape)}")
                continue
            src = producer.get(i)
            if src is None or src.op_type != "DequantizeLinear":
                why.append(f"input {k} from {src.op_type if src else 'graph input'} (float)")
        for o in n.output:
            rs = readers.get(o, [])
            if o in outputs:
                why.append("output is a graph output (float)")
            if any(r.op_type != "QuantizeLinear" for r in rs):
                why.append("output read in float by " + ", ".join(
                    sorted({r.op_type for r in rs if r.op_type != "QuantizeLinear"})))
        if why:
            found.append({"name": n.name, "op": n.op_type, "why": why})
    return found


def module_of(node: str) -> str:
    """The torch module a node of torch's ONNX export belongs to, from its scoped name
    (``/stages/stages.1/stages.1.0/Add`` -> ``stages.1.0``); '' for an unscoped name."""
    path = ""
    for part in node.split("/")[1:-1]:
        if path and part.startswith(path + "."):     # a container's child: its full name
            path = part
        elif part:
            path = f"{path}.{part}" if path else part
    return path


def island_report(int8: Path, form: str, kind: str, *, float_layers: bool) -> dict[str, Any]:
    """The manifest's ``int8_onnx_float_islands`` for the int8 file at ``int8``, written in
    activation ``form`` for a device of ``kind``: ``ops`` (node, op, module), ``device_kind``
    and ``note`` (what running them in float means there, and the fix where the plan keeps
    layers at 32 bits: ``float_layers``)."""
    proto = _require("onnx").load(str(int8))
    ops = [{"node": i["name"], "op": i["op"], "module": module_of(i["name"])}
           for i in float_islands(proto, float_bias=form == "int8-symmetric")]
    fix = QUANTIZE_THEM.get(kind) if float_layers else None
    note = RUNS_THEM.get(kind, RUNS_THEM_ELSEWHERE) + (f"; {fix}" if fix else "")
    return {"ops": ops, "device_kind": kind, "note": note if ops else ""}


def island_line(islands: dict[str, Any] | None, float_layers: bool) -> list[str]:
    """The export summary's line on the float islands (a warning for an MCU target);
    ``float_layers``: whether the plan keeps layers at 32 bits (the usual cause)."""
    ops = (islands or {}).get("ops") or []
    if not islands or not ops:
        return []
    names = [f"{o['module'] or o['node'] or '?'} ({o['op']})" for o in ops]
    more = f", +{len(names) - SHOWN} more (manifest: int8_onnx_float_islands)" \
        if len(names) > SHOWN else ""
    label = "warning" if islands.get("device_kind") == "mcu" else "float ops"
    why = " (the layers the plan keeps at 32 bits and the ops they feed)" if float_layers else ""
    return [f"  {label:<10} model.int8.onnx runs {len(ops)} op{'s' * (len(ops) != 1)} in "
            f"float{why}: {', '.join(names[:SHOWN])}{more}; {islands['note']}"]
