"""Static int8 quantization of an fp32 ONNX file with ``onnxruntime.quantization`` (QDQ).

Weights are QInt8 (per output channel by default, symmetric); activations (MinMax
calibration) are one of ``INT8_ACTIVATIONS``, the form the target runtime takes (a profile's
``formats.int8_activations``):

- ``uint8``: QUInt8, asymmetric. Measured side by side (ORT 1.32, 1 thread, 3x32x32
  MobileNetV2-like nets) it runs 1.3-1.9x faster than fp32 in ONNX Runtime on x86 with the
  same accuracy; signed activations run 1.5-1.9x *slower* than fp32 there (likely no fused
  s8s8 conv kernel);
- ``int8``: QInt8, asymmetric (a zero point per tensor), as TFLite, TFLite Micro and CMSIS-NN
  run int8;
- ``int8-symmetric``: QInt8 with zero point 0, weights stored float behind a
  QuantizeLinear/DequantizeLinear pair and biases left float, as TensorRT's ONNX parser takes
  explicit quantization (symmetric only, and no int8 or int32 initializers under
  DequantizeLinear before TensorRT 10; onnxruntime issues #11535 and #14229).

The file keeps the fp32 file's opset (``export_onnx`` writes ``DEPLOY_OPSET``, 17, which
TensorRT 8.5/8.6 parse).

``quant_pre_process`` (shape inference + ORT graph optimization) runs first as ORT
recommends; it changes latency by <1% and trims the file ~4%. The result is then compacted
(``compact.compact_onnx``: shape annotations and long names removed, the same fused
kernels). A weight trained on a symmetric grid (sub-8-bit included) keeps it
(``grid_overrides``): its int8 codes are the trained ones.

>>> quantize_int8(Path("model.onnx"), Path("model.int8.onnx"), x_calib[:256])
PosixPath('model.int8.onnx')
"""
from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autocompress.errors import ExportError
from autocompress.export.compact import compact_onnx
from autocompress.export.onnx_io import _require, quiet
from autocompress.hardware.formats import INT8_ACTIVATIONS, Int8Activations


def check_activations(form: str, loc: str = "activations") -> None:
    """Raise the user's error for an activation form not in ``INT8_ACTIVATIONS``."""
    if form not in INT8_ACTIVATIONS:
        raise ExportError(f"expected activations {', '.join(INT8_ACTIVATIONS)}, got {form!r}",
                          loc=loc)

CALIB_BATCH = 64  # rows per calibration feed; MinMax ranges do not depend on the chunking


def _input_name(path: Path) -> str:
    onnx = _require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    init = {t.name for t in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in init]
    if len(names) != 1:
        raise ExportError(f"int8 quantization expects a model with one input, got {names}", loc=str(path))
    return str(names[0])


def _data_reader(input_name: str, calibration: np.ndarray, batch: int) -> Any:
    """A ``CalibrationDataReader`` feeding ``calibration`` in chunks of ``batch`` rows."""
    quant = _require("onnxruntime.quantization")

    class _Reader(quant.CalibrationDataReader):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = self._chunks()

        def _chunks(self) -> Iterator[dict[str, np.ndarray]]:
            for i in range(0, len(calibration), batch):
                yield {input_name: calibration[i:i + batch]}

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = self._chunks()

    return _Reader()


InputRange = tuple[tuple[int, ...], float, float] | None


def weighted_nodes(proto: Any, order: Sequence[tuple[str, str, str]] | None = None
                   ) -> list[Any]:
    """The nodes of the torch conv/linear layers: Conv, Gemm, and MatMul by a weight
    initializer (a Linear without bias, e.g. a low-rank first factor), in graph order, which
    is torch's execution order in the exported file. ``order``: :func:`node_keys` of the
    exported file, for a graph that lists them otherwise (``quant_pre_process`` puts a ResNet
    block's shortcut conv before its convs, and renames a node it fuses): each node is found
    by name, else by first output, else by its weight (unique among those left)."""
    inits = {t.name for t in proto.graph.initializer}
    nodes = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")
             or (n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in inits)]
    if order is None:
        return nodes
    left, out = list(nodes), []
    for name, output, weight in order:
        for key, value in ((lambda n: n.name, name), (lambda n: n.output[0], output),
                           (lambda n: n.input[1], weight)):
            hits = [n for n in left if value and key(n) == value]
            if len(hits) == 1:
                break
        else:
            raise RuntimeError(f"the ONNX node of {name or output} is not in the graph "
                               "quant_pre_process wrote")
        out.append(hits[0])
        left.remove(hits[0])
    return out


def node_keys(proto: Any) -> list[tuple[str, str, str]]:
    """(name, first output, weight) of each of ``proto``'s :func:`weighted_nodes`: what
    finds a node again in the graph ``quant_pre_process`` writes."""
    return [(str(n.name), str(n.output[0]), str(n.input[1])) for n in weighted_nodes(proto)]


def _weight_shape(node: Any, dims: dict[str, tuple[int, ...]]) -> tuple[int, ...] | None:
    """The weight's shape as torch has it: MatMul, and Gemm without transB (a fused
    MatMul + Add), hold it transposed, (in, out)."""
    shape = dims.get(node.input[1])
    return tuple(reversed(shape)) if shape and _transposed(node) else shape


def _transposed(node: Any) -> bool:
    """Whether the node holds its weight as (in, out): MatMul, and Gemm without transB."""
    trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
    return node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b)


def range_overrides(proto: Any, ranges: Sequence[InputRange], loc: str = "model",
                    order: Sequence[tuple[str, str, str]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """onnxruntime ``TensorQuantOverrides`` giving the input of the i-th ``weighted_nodes``
    node of the ONNX ``proto`` the range ``ranges[i]`` = (weight shape, lo, hi), or nothing
    for None. The torch layers and the ONNX nodes are matched by order and checked by weight
    shape; ``loc`` names the file in the error when they do not match; ``order``: see
    :func:`weighted_nodes`."""
    dims = {t.name: tuple(int(d) for d in t.dims) for t in proto.graph.initializer}
    nodes = weighted_nodes(proto, order)
    shapes = [_weight_shape(n, dims) for n in nodes]
    wanted = [r[0] if r else None for r in ranges]
    if len(nodes) != len(ranges) or any(w is not None and w != s for w, s in
                                        zip(wanted, shapes, strict=True)):
        raise ExportError("cannot match the torch layers with activation ranges to the ONNX "
                          f"Conv/Gemm/MatMul nodes (torch {wanted}, onnx {shapes})", loc=loc)
    return {n.input[0]: [{"rmin": np.float32(r[1]), "rmax": np.float32(r[2])}]
            for n, r in zip(nodes, ranges, strict=True) if r is not None}


def grid_overrides(proto: Any) -> dict[str, list[dict[str, Any]]]:
    """onnxruntime ``TensorQuantOverrides`` keeping each trained weight grid: a Conv, Gemm or
    MatMul (a bias-free Linear; its weight is (in, out)) weight whose every output channel
    lies on a symmetric b-bit grid (b <= 8; w = k * s, s = max|w| / (2**(b-1) - 1)) is
    quantized with that s, so the int8 codes are the trained ones. onnxruntime alone
    re-rounds onto max|w| / 127, off the grid of a sub-8-bit layer. Other weights (float,
    asymmetric) are left to onnxruntime.
    ``proto``: the ONNX ModelProto to be quantized."""
    _require("onnx")
    from onnx import numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    out: dict[str, list[dict[str, Any]]] = {}
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2 \
                or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        axis = 1 if _transposed(node) else 0
        if axis == 1 and w.ndim != 2:         # a batched MatMul weight: left to onnxruntime
            continue
        rows = w.T if axis == 1 else w.reshape(w.shape[0], -1)   # one row per output channel
        scales = _grid_scales(rows)
        if scales is not None:
            out[node.input[1]] = [{"axis": axis, "scale": np.float32(sc),
                                   "zero_point": np.int8(0)} for sc in scales]
    return out


def _grid_scales(w: np.ndarray, tol: float = 1e-3) -> np.ndarray | None:
    """Per-row step of the coarsest symmetric grid (2..8 bits) every row lies on, or None."""
    peak = np.abs(w).max(axis=1)
    for bits in range(2, 9):
        step = np.where(peak > 0, peak / (2 ** (bits - 1) - 1), 1.0)
        codes = w / step[:, None]
        if np.abs(codes - np.round(codes)).max() <= tol:
            return step
    return None


def float_nodes(proto: Any, keep_float: Sequence[bool], loc: str = "model",
                order: Sequence[tuple[str, str, str]] | None = None) -> list[str]:
    """Names of the nodes to leave float in the int8 file (``nodes_to_exclude``): the weighted
    nodes (execution order, see :func:`weighted_nodes`) whose ``keep_float`` entry is True,
    the layers the plan keeps float, and the weightless ops any of them feeds."""
    nodes = weighted_nodes(proto, order)
    if len(nodes) != len(keep_float):
        raise ExportError(f"cannot match {len(keep_float)} torch layers to {len(nodes)} ONNX "
                          "Conv/Gemm/MatMul nodes", loc=loc)
    def key(node: Any) -> str:          # a node's first output names it (SSA)
        return str(node.output[0])

    floats = {key(n) for n, keep in zip(nodes, keep_float, strict=True) if keep}
    weighted = {key(n) for n in nodes}
    producer = {out: n for n in proto.graph.node for out in n.output}

    def fed_by_float(node: Any) -> bool:
        """A weightless op (add, pool, ...) runs in the widest format of the layers feeding
        it, as the cost model has it: float when any of them is."""
        stack, seen = list(node.input), set()
        while stack:
            src = producer.get(stack.pop())
            if src is None or key(src) in seen:
                continue
            seen.add(key(src))
            if key(src) in weighted:
                if key(src) in floats:
                    return True
            else:
                stack.extend(src.input)
        return False

    names = [n.name for n in proto.graph.node if key(n) in floats
             or (key(n) not in weighted and floats and fed_by_float(n))]
    if not all(names):
        raise ExportError("a node to keep float has no name", loc=loc)
    return names


def quantize_int8(fp32_path: Path, out_path: Path, calibration: np.ndarray, *,
                  per_channel: bool = True, activations: Int8Activations = "uint8",
                  preprocess: bool = True, input_ranges: Sequence[InputRange] | None = None,
                  keep_float: Sequence[bool] | None = None) -> Path:
    """Write a static int8 QDQ copy of ``fp32_path`` to ``out_path`` and return ``out_path``.

    ``calibration``: representative inputs (N, ...) float32; a few hundred rows are plenty.
    ``activations``: one of ``INT8_ACTIVATIONS`` (see the module's docstring).
    ``input_ranges``: per weighted node in graph order, (weight shape, lo, hi) of its input as
    calibrated in torch (``actquant.input_ranges``), or None; those inputs are quantized
    over the torch range instead of onnxruntime's own calibration (all None: none is).
    ``keep_float``: per weighted node in graph order, True to leave it float (a layer the plan
    keeps at 32 bits).

    >>> quantize_int8(Path("m.onnx"), Path("m.int8.onnx"), x_train[:256], per_channel=True)
    PosixPath('m.int8.onnx')
    """
    quant = _require("onnxruntime.quantization")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise ExportError("fp32 ONNX file not found", loc=str(fp32_path))
    calib = np.ascontiguousarray(calibration, dtype=np.float32)
    if calib.ndim < 2 or len(calib) == 0:
        raise ExportError(f"calibration needs a non-empty batch (N, ...), got shape {calib.shape}",
                          loc="quantize_int8.calibration")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    name = _input_name(fp32_path)
    check_activations(activations)
    act = quant.QuantType.QUInt8 if activations == "uint8" else quant.QuantType.QInt8
    tensorrt = activations == "int8-symmetric"
    log = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="autocompress-q-") as tmp:
        src, dst = fp32_path, Path(tmp) / "int8.onnx"
        try:
            with quiet() as log:
                order = node_keys(_require("onnx").load(str(fp32_path)))  # torch's order
                if preprocess:
                    src = Path(tmp) / "pre.onnx"
                    quant.quant_pre_process(str(fp32_path), str(src), skip_symbolic_shape=True)
                proto = _require("onnx").load(str(src))
                overrides = range_overrides(proto, input_ranges, str(fp32_path), order) \
                    if input_ranges and any(input_ranges) else {}
                if per_channel:                      # the overrides are per channel
                    overrides.update(grid_overrides(proto))
                exclude = float_nodes(proto, keep_float, str(fp32_path), order) \
                    if keep_float and any(keep_float) else []
                quant.quantize_static(
                    str(src), str(dst),
                    calibration_data_reader=_data_reader(name, calib, CALIB_BATCH),
                    quant_format=quant.QuantFormat.QDQ,
                    per_channel=per_channel,
                    weight_type=quant.QuantType.QInt8,
                    activation_type=act,
                    calibrate_method=quant.CalibrationMethod.MinMax,
                    nodes_to_exclude=exclude,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": tensorrt,
                                   "AddQDQPairToWeight": tensorrt, "DedicatedQDQPair": tensorrt,
                                   "QuantizeBias": not tensorrt,
                                   "TensorQuantOverrides": overrides},
                )
        except Exception as exc:  # re-raised with the quantizer's own output
            raise ExportError(f"int8 quantization failed: {type(exc).__name__}: {exc}",
                              loc=str(fp32_path), hint=log.getvalue()[-2000:] or None) from exc
        out_path.write_bytes(dst.read_bytes())
    compact_onnx(out_path)
    return out_path
