"""Test helpers: a tiny hand-made profile with a LUT, and a small residual graph."""
from __future__ import annotations

from pathlib import Path

from autocompress.graph import LayerInfo, ModelGraph, TensorInfo

# Line numbers matter to the validation tests: keep this text's layout stable.
TINY_PROFILE = """\
version: 1
name: tiny
device: {kind: mcu, soc: TEST, cpu: test core @ 100 MHz, sram_kb: 64, flash_kb: 256}
runtime: {name: test-rt, version: "1", threads: 1, batch: 1}
formats: {weights: [int8], activations: [int8], sparse_kernels: false}
align: {channels: 4}
measurement: {method: measured, tool: hand, iters: 10, statistic: median}
analytic:
  clock_mhz: 100
  macs_per_cycle: {int8: 1.0}
  depthwise_macs_per_cycle: {int8: 0.25}
  mem_bw_gbps: 1.0
  per_op_overhead_us: 0
entries:
  "conv2d|in=16x8x8|out=16x8x8|k=3|s=1|g=1|w=int8|a=int8": {mean_ms: 1.0, std_ms: 0.1, n: 10}
  "conv2d|in=16x8x8|out=32x8x8|k=3|s=1|g=1|w=int8|a=int8": {mean_ms: 2.0, std_ms: 0.2, n: 10}
  "linear|in=64|out=10|w=int8|a=int8": {mean_ms: 0.05, std_ms: 0.0, n: 10}
"""


def write_profile(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def conv(fqn: str, c_in: int, c_out: int, hw: int = 8, k: int = 3, groups: int = 1,
         inputs: tuple[str, ...] = (), output: str = "") -> LayerInfo:
    params = c_out * c_in // groups * k * k
    return LayerInfo(fqn=fqn, op="conv2d", in_shape=(c_in, hw, hw), out_shape=(c_out, hw, hw),
                     kernel=k, stride=1, groups=groups, params=params, bias=c_out,
                     macs=params * hw * hw, inputs=inputs, output=output or fqn)


def residual_graph() -> ModelGraph:
    """input(3x8x8) -> conv0 -> conv1 -> conv2 -> add(conv0, conv2) -> pool -> fc(10).

    conv0's output stays live from step 0 to the add at step 3 (the residual).
    """
    layers = (
        conv("conv0", 3, 8, inputs=("x",), output="t0"),
        conv("conv1", 8, 8, inputs=("t0",), output="t1"),
        conv("conv2", 8, 8, inputs=("t1",), output="t2"),
        LayerInfo(fqn="add", op="add", in_shape=(8, 8, 8), out_shape=(8, 8, 8), macs=512,
                  inputs=("t0", "t2"), output="t3"),
        LayerInfo(fqn="pool", op="avgpool", in_shape=(8, 8, 8), out_shape=(8,), kernel=8,
                  stride=8, macs=512, inputs=("t3",), output="t4"),
        LayerInfo(fqn="fc", op="linear", in_shape=(8,), out_shape=(10,), params=80, bias=10,
                  macs=80, inputs=("t4",), output="t5"),
    )
    tensors = (
        TensorInfo(name="x", numel=192, produced_at=-1, last_used_at=0),
        TensorInfo(name="t0", numel=512, produced_at=0, last_used_at=3),
        TensorInfo(name="t1", numel=512, produced_at=1, last_used_at=2),
        TensorInfo(name="t2", numel=512, produced_at=2, last_used_at=3),
        TensorInfo(name="t3", numel=512, produced_at=3, last_used_at=4),
        TensorInfo(name="t4", numel=8, produced_at=4, last_used_at=5),
        TensorInfo(name="t5", numel=10, produced_at=5, last_used_at=6),
    )
    return ModelGraph(input_shape=(3, 8, 8), layers=layers, tensors=tensors)
