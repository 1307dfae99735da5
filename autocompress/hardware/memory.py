"""Flash (stored weights) and peak SRAM (live activations), in bytes; KB = 1024 bytes.

Flash counts what a deployment stores per layer: packed weights at the chosen bit-width
(sparse weights as values + the cheaper of a bitmask or CSR indices), biases, and the
per-channel (or one per-tensor) scales of integer formats. A clustered layer (``LayerFormat.codebook`` > 0)
stores its weights as indices plus the codebook (k entries at ``codebook_bits``) and one
per-tensor scale, as ``autocompress.compress.size`` counts it. Peak SRAM follows MCUNet: at
each step of execution order, every tensor that is being read, being written or held for a later consumer (a
residual input) is live; the peak is the largest such sum.

>>> from autocompress.graph import LayerInfo
>>> fc = LayerInfo(fqn="fc", op="linear", in_shape=(64,), out_shape=(10,), params=640, bias=10)
>>> layer_flash_bytes(fc, LayerFormat(weight_bits=8))   # 640 + 10*4 bias + 10*4 scales
720.0
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from autocompress.graph import LayerInfo, ModelGraph
from autocompress.hardware.formats import LayerFormat, format_for_bits, is_float
from autocompress.hardware.keys import WEIGHTED_OPS, channels

KB = 1024                 # bytes per KB, as MCU datasheets and MCUNet count
INT_BIAS_BYTES = 4        # B per bias element for integer formats: int32 (TFLite/CMSIS-NN)
SCALE_BYTES = 4           # B per output channel: fp32 requantisation scale (per-channel int)
ZERO_POINT_BYTES = 1      # B per scale of asymmetric weights: a zero point in the code range
CSR_INDEX_BYTES = 2       # B per non-zero: uint16 column index (rows < 65536 elements)
CSR_ROWPTR_BYTES = 4      # B per output row + 1: int32 row pointer


def weight_bytes(params: int, bits: int, sparsity: float = 0.0, rows: int = 1, *,
                 dense_bits: float | None = None) -> float:
    """Stored bytes of ``params`` weights at ``bits``, packed; sparse if that is smaller.

    Sparse storage = non-zero values + min(bitmask of all positions, CSR indices). Dense
    storage of sparse weights takes ``dense_bits`` per value when zero needs a code of its
    own (codebook indices: ceil(log2(k + 1)) bits for k non-zero entries).

    >>> weight_bytes(1000, 8), weight_bytes(1000, 4), weight_bytes(1000, 8, sparsity=0.9)
    (1000.0, 500.0, 225.0)
    """
    dense = params * (bits if dense_bits is None or sparsity <= 0.0 else dense_bits) / 8
    if sparsity <= 0.0 or params == 0:
        return float(dense)
    nonzero = round(params * (1.0 - sparsity))
    bitmask = params / 8
    csr = nonzero * CSR_INDEX_BYTES + (rows + 1) * CSR_ROWPTR_BYTES
    return float(min(dense, nonzero * bits / 8 + min(bitmask, csr)))


def layer_flash_bytes(layer: LayerInfo, fmt: LayerFormat) -> float:
    """Bytes this layer adds to Flash (0 for weightless ops).

    >>> fc = LayerInfo(fqn="fc", op="linear", in_shape=(64,), out_shape=(10,), params=640,
    ...                bias=10)
    >>> layer_flash_bytes(fc, LayerFormat(weight_bits=4, codebook=16, codebook_bits=8))
    380.0
    """
    if layer.op not in WEIGHTED_OPS or (layer.params == 0 and layer.bias == 0):
        return 0.0
    bits, values = fmt.weight_bits, fmt.value_bits
    out_channels = channels(layer.out_shape)
    zero_code = max(1, math.ceil(math.log2(fmt.codebook + 1))) if fmt.codebook else None
    total = weight_bytes(layer.params, bits, fmt.sparsity, rows=out_channels,
                         dense_bits=zero_code)
    if fmt.codebook:      # shared values; one scale for the whole codebook
        total += fmt.codebook * values / 8
    if is_float(format_for_bits(values)):
        total += layer.bias * values / 8
    else:
        scales = out_channels if fmt.per_channel and not fmt.codebook else 1
        zero_point = 0 if fmt.symmetric else ZERO_POINT_BYTES
        total += layer.bias * INT_BIAS_BYTES + scales * (SCALE_BYTES + zero_point)
    return total


def stored_dense(fmt: LayerFormat) -> LayerFormat:
    """``fmt`` as a runtime without packed storage keeps the weights (``packed_weights:
    false``): as ``model.int8.onnx`` writes them, dense, integer values at 8 bits, symmetric
    per channel (a clustered, asymmetric or per-tensor layer is re-rounded so), float ones
    at their width.

    >>> stored_dense(LayerFormat(weight_bits=4, sparsity=0.5)).weight_bits
    8
    """
    bits = fmt.value_bits
    return replace(fmt, weight_bits=bits if is_float(format_for_bits(bits)) else max(bits, 8),
                   sparsity=0.0, codebook=0, codebook_bits=0, per_channel=True,
                   symmetric=True)


@dataclass(frozen=True, kw_only=True)
class PeakSram:
    peak_bytes: float
    step: int                     # index into ModelGraph.layers where the peak occurs
    fqn: str                      # that layer's name
    live_bytes: tuple[float, ...]  # live bytes at every step


def peak_sram(graph: ModelGraph, act_bits: Mapping[str, int] | None = None,
              default_bits: int = 8) -> PeakSram:
    """Peak live activation memory over execution steps.

    ``act_bits`` maps layer fqn to the bit-width of the activations it runs in (the
    executed format); a tensor is held at the widest of its writer's and its readers'
    (an fp32 layer reading an int8 layer's output holds it as fp32), the model input at
    its readers'. A graph without ``tensors`` is treated as a chain (each step holds its
    input + output).

    >>> from autocompress.graph import LayerInfo, ModelGraph
    >>> g = ModelGraph(input_shape=(4,), layers=(
    ...     LayerInfo(fqn="a", op="linear", in_shape=(4,), out_shape=(8,)),))
    >>> peak_sram(g).peak_bytes
    12.0
    """
    bits = dict(act_bits or {})
    per_layer = [bits.get(layer.fqn, default_bits) / 8 for layer in graph.layers]
    if not graph.layers:
        return PeakSram(peak_bytes=0.0, step=-1, fqn="", live_bytes=())
    if not graph.tensors:
        live = [(math.prod(layer.in_shape) + math.prod(layer.out_shape)) * per_layer[i]
                for i, layer in enumerate(graph.layers)]
    else:
        readers: dict[str, list[int]] = {}
        for i, layer in enumerate(graph.layers):
            for name in layer.inputs:
                readers.setdefault(name, []).append(i)
        live = [0.0] * len(graph.layers)
        for tensor in graph.tensors:
            users = [*([tensor.produced_at] if tensor.produced_at >= 0 else []),
                     *readers.get(tensor.name, [])] or [0]
            size = tensor.numel * max(per_layer[min(u, len(per_layer) - 1)] for u in users)
            for step in range(max(0, tensor.produced_at),
                              min(tensor.last_used_at, len(live) - 1) + 1):
                live[step] += size
    step = max(range(len(live)), key=live.__getitem__)
    return PeakSram(peak_bytes=float(live[step]), step=step, fqn=graph.layers[step].fqn,
                    live_bytes=tuple(float(v) for v in live))

