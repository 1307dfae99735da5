"""The manifest's ``mcu_memory``: what an MCU flow (TFLite Micro, STM32Cube.AI) sizes from
the int8 file, said as such.

The cost model's peak SRAM counts live activations only (MCUNet-style). TFLite Micro's tensor
arena holds more: every int8 conv and depthwise conv allocates an int32 output multiplier and
an int32 shift per output channel in the arena's persistent part (``conv.cc``,
``depthwise_conv.cc``: ``AllocatePersistentBuffer(num_channels * sizeof(int32_t))`` twice),
plus tensor metadata and kernel scratch, which depend on the runtime's version and build. The
first is counted here from the file; the rest is left to the runtime's own report
(``RecordingMicroInterpreter``, ``arena_used_bytes()``; ``stm32ai analyze``). On MLPerf
Tiny's DS-CNN the multipliers alone are 4.5 KB beside 15.6 KB of activations, so sizing
``kTensorArenaSize`` from the activations alone fails ``AllocateTensors()``.

>>> mcu_memory(None, {"f": {"flash_kb": 18.0, "peak_sram_kb": 15.625}}, "f", "phone") is None
True
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

PARAM_BYTES = 8      # int32 multiplier + int32 shift per output channel of an int8 conv

NOTE = ("weights_flash_kb: the int8 file's weights, int32 biases and per-channel scales as an "
        "int8 runtime stores them (its flatbuffer, graph and code come on top); "
        "activations_peak_kb: the largest sum of live activations (STM32Cube.AI's "
        "activations buffer); tensor_arena_min_kb adds the per-channel requantization "
        "parameters TFLite Micro keeps in the arena (8 bytes per output channel of every int8 "
        "conv): size kTensorArenaSize above it, since tensor metadata and kernel scratch come "
        "on top (read them from the runtime: RecordingMicroInterpreter, arena_used_bytes())")


def per_channel_param_bytes(int8: Path) -> int:
    """Bytes of per-channel requantization parameters (multiplier + shift) TFLite Micro keeps
    for the int8 convs of the QDQ file at ``int8``: a Conv whose weight is an int8 initializer
    behind a DequantizeLinear; a float file has none."""
    import onnx

    graph = onnx.load(str(int8)).graph
    shapes = {t.name: (list(t.dims), t.data_type) for t in graph.initializer}
    weights = {n.output[0]: shapes[n.input[0]][0] for n in graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in shapes
               and shapes[n.input[0]][1] == onnx.TensorProto.INT8}
    return sum(weights[n.input[1]][0] * PARAM_BYTES for n in graph.node
               if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in weights)


def mcu_memory(int8: Path | None, as_int8: dict[str, dict[str, Any]], device: str,
               kind: str) -> dict[str, Any] | None:
    """The memory an MCU flow sizes for the int8 file on ``device`` (``as_int8``: its cost as
    written, per profile); None off an MCU or where the file could not be costed."""
    cost = as_int8.get(device) or {}
    if kind != "mcu" or "flash_kb" not in cost or int8 is None:
        return None
    params_kb = per_channel_param_bytes(int8) / 1024
    return {"weights_flash_kb": cost["flash_kb"], "activations_peak_kb": cost["peak_sram_kb"],
            "per_channel_params_kb": params_kb,
            "tensor_arena_min_kb": cost["peak_sram_kb"] + params_kb, "note": NOTE}


def mcu_line(m: dict[str, Any]) -> list[str]:
    """The export summary's line for ``mcu_memory`` (none off an MCU)."""
    mem = m.get("mcu_memory")
    if not mem:
        return []
    return [f"  mcu memory weights {mem['weights_flash_kb']:.1f} KB Flash (int8 file); tensor "
            f"arena >= {mem['tensor_arena_min_kb']:.1f} KB ({mem['activations_peak_kb']:.1f} "
            f"KB activations + {mem['per_channel_params_kb']:.1f} KB per-channel requant "
            "params; TFLM metadata and scratch on top: manifest mcu_memory)"]
