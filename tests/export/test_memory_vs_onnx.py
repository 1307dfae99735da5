"""The memory model against the exported int8 QDQ ONNX file of compressed students.

Four students (MobileNetV2-like family, 1x12x12 input: pruned, int8, mixed int4/int8,
sparse) are compressed with ``apply_plan``, exported with ``export_onnx`` and quantized with
``quantize_int8`` (the export path). Then, computed from the ONNX file alone:

- **Flash**, per conv/Gemm in execution order: int8 weight initializer bytes + int32 bias
  bytes + fp32 weight-scale bytes. What the accounting leaves out on purpose: the weight
  zero points (symmetric: all zero, not stored by an MCU runtime), the bias scale (it is
  the weight scale x the input scale, derived) and activation scales / zero points.
  Expected **exactly** equal to ``memory.layer_flash_bytes`` for int8 layers; for 4-bit
  layers (the ONNX stores them as int8) the model's weight bytes are exactly half the
  initializer's; for sparse layers the model's sparse encoding is exactly the encoding of
  the non-zeros that the ONNX initializer holds (magnitude pruning keeps only weights far
  above the int8 rounding step, so quantization adds no zeros; the test checks that too).
- **Peak SRAM**: the int8 activation tensors are the outputs of ``QuantizeLinear`` nodes
  (uint8, 1 byte per element, shapes from ONNX shape inference); a Q of a view
  (DequantizeLinear, Flatten, Reshape, Relu) is the same tensor. In execution order of the
  compute nodes (Conv, Gemm, Add, pools), a tensor is live from the step that writes it (the
  model input from step 0) to the last step that reads it (graph outputs to the end); the
  peak is the largest live sum. Expected **exactly** equal to the cost model's
  ``peak_sram_kb`` on stm32f746 (int8 activations) for the traced torch student, and the
  live bytes at every step equal to ``memory.peak_sram``'s.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from autocompress.compress import (
    CompressionPlan,
    PruneConfig,
    QuantConfig,
    SparsityConfig,
    TechniqueConfig,
    apply_plan,
)
from autocompress.compress.formats import plan_formats
from autocompress.graph import inspect_model
from autocompress.hardware import CostModel, LayerFormat, layer_flash_bytes
from autocompress.hardware.memory import CSR_INDEX_BYTES, CSR_ROWPTR_BYTES, INT_BIAS_BYTES, KB
from autocompress.models.student import StudentArch, build_student, student_layer_names

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

ARCH = StudentArch(depths=(1, 2, 2), expands=(2, 4, 4), stage_channels=(12, 20, 32))
SHAPE = (1, 12, 12)
COMPUTE_OPS = {"Conv", "Gemm", "MatMul", "Add", "GlobalAveragePool", "AveragePool",
               "MaxPool", "Mul", "Concat"}
VIEW_OPS = {"DequantizeLinear", "Flatten", "Reshape", "Relu", "Clip", "Identity", "Squeeze",
            "Unsqueeze"}


def _plans() -> dict[str, CompressionPlan]:
    names = student_layer_names(ARCH)

    def every(*cfgs: TechniqueConfig, where: Any = lambda n: True
              ) -> dict[str, tuple[TechniqueConfig, ...]]:
        return {n: cfgs for n in names if where(n)}

    int8 = every(QuantConfig(bits=8))
    return {
        "pruned": CompressionPlan(layers={**int8, **every(
            PruneConfig(ratio=0.5), QuantConfig(bits=8),
            where=lambda n: n.endswith("expand.conv"))}),
        "int8": CompressionPlan(layers=int8),
        "int4": CompressionPlan(layers={**int8, **every(
            QuantConfig(bits=4), where=lambda n: n.endswith(("expand.conv", "project.conv")))}),
        "sparse": CompressionPlan(layers={**int8, **every(
            SparsityConfig(ratio=0.6), QuantConfig(bits=8),
            where=lambda n: n.endswith(("expand.conv", "project.conv", "head.conv")))}),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path, Any]]:
    """name -> (traced graph of the compressed student, int8 ONNX path, plan)."""
    from autocompress.export.onnx_io import export_onnx
    from autocompress.export.quant_ort import quantize_int8

    out: dict[str, tuple[Any, Path, Any]] = {}
    tmp = tmp_path_factory.mktemp("memory_vs_onnx")
    rng = np.random.default_rng(0)
    calib = rng.uniform(0, 1, (32, *SHAPE)).astype(np.float32)
    for name, plan in _plans().items():
        torch.manual_seed(0)
        student = build_student(ARCH, in_channels=SHAPE[0], num_classes=10).eval()
        example = torch.from_numpy(calib[:1])
        model = apply_plan(student, plan, example, round_to=4, ignored=("classifier",))
        fp32 = export_onnx(model, example, tmp / f"{name}.onnx")
        int8 = quantize_int8(fp32, tmp / f"{name}.int8.onnx", calib)
        out[name] = (inspect_model(model.eval(), example), int8, plan)
    return out


def _onnx_weighted_layers(path: Path) -> list[dict[str, Any]]:
    """Per Conv/Gemm in node order: int8 weight array, bias int32 count, weight-scale count."""
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dq = {n.output[0]: [inits.get(i) for i in n.input] for n in model.graph.node
          if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    rows = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        weight, scale = dq[node.input[1]][0], dq[node.input[1]][1]
        bias = dq[node.input[2]][0] if len(node.input) > 2 else np.zeros(0, np.int32)
        assert weight.dtype == np.int8 and bias.dtype == np.int32 and scale.dtype == np.float32
        rows.append({"weight": weight, "bias": bias.size, "scales": scale.size})
    return rows


def _onnx_live_bytes(path: Path) -> list[float]:
    """Live uint8 activation bytes at every compute node, in order (see the module doc)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = model.graph
    dims = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
            for vi in [*g.input, *g.value_info, *g.output]}
    inits = {t.name for t in g.initializer}
    storage: dict[str, str] = {}      # tensor name -> stored uint8 tensor it views
    size: dict[str, int] = {}         # stored tensor -> bytes
    produced: dict[str, int] = {}     # stored tensor -> step
    last: dict[str, int] = {}
    steps = 0
    source_step: dict[str, int] = {g.input[0].name: -1}   # float tensor -> writing step
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:   # a weight
            inits.add(node.output[0])
            continue
        acts = [i for i in node.input if i and i not in inits]
        if node.op_type == "QuantizeLinear":
            x, q = node.input[0], node.output[0]
            if x in storage:                                # requantized view: same tensor
                storage[q] = storage[x]
            else:
                storage[q] = q
                size[q] = math.prod(max(1, d) for d in dims[q][1:])   # batch 1, uint8
                produced[q] = source_step[x]
        elif node.op_type in VIEW_OPS:
            if acts and acts[0] in storage:
                storage[node.output[0]] = storage[acts[0]]
        elif node.op_type in COMPUTE_OPS:
            for name in acts:
                last[storage[name]] = steps
            source_step[node.output[0]] = steps
            steps += 1
        else:
            raise AssertionError(f"unexpected op {node.op_type} in the exported graph")
    for out in g.output:
        last[storage[out.name]] = steps
    live = [0.0] * steps
    for tensor, nbytes in size.items():
        for step in range(max(0, produced[tensor]), min(last[tensor], steps - 1) + 1):
            live[step] += nbytes
    return live


@pytest.mark.parametrize("name", ["pruned", "int8", "int4", "sparse"])
def test_flash_equals_the_onnx_initializer_bytes(exported: dict[str, Any], name: str) -> None:
    graph, path, plan = exported[name]
    formats = plan_formats(plan)
    layers = graph.compressible
    onnx_rows = _onnx_weighted_layers(path)
    assert len(onnx_rows) == len(layers)
    for layer, row in zip(layers, onnx_rows, strict=True):
        weight = row["weight"]
        assert weight.size == layer.params and row["bias"] == layer.bias, layer.fqn
        assert row["scales"] == weight.shape[0], layer.fqn          # per output channel
        fmt = formats.get(layer.fqn, LayerFormat())
        model_bytes = layer_flash_bytes(layer, fmt)
        side = row["bias"] * INT_BIAS_BYTES + row["scales"] * 4
        nonzero = int(np.count_nonzero(weight))
        if fmt.sparsity:
            # magnitude pruning left exactly these zeros; int8 rounding added none
            assert weight.size - nonzero == round(fmt.sparsity * weight.size), layer.fqn
            rows = weight.shape[0]
            index = min(weight.size / 8, nonzero * CSR_INDEX_BYTES + (rows + 1) * CSR_ROWPTR_BYTES)
            stored = min(float(weight.size), nonzero + index)
        else:
            stored = weight.size * fmt.weight_bits / 8     # int8: the bytes; int4: packed
        assert model_bytes == stored + side, (layer.fqn, fmt)
    # the same totals through the cost model
    est = CostModel("stm32f746").estimate(graph, formats)
    assert est.flash_kb * KB == pytest.approx(
        sum(layer_flash_bytes(layer, formats.get(layer.fqn, LayerFormat())) for layer in layers),
        rel=1e-12)


@pytest.mark.parametrize("name", ["pruned", "int8", "int4", "sparse"])
def test_peak_sram_equals_the_onnx_activation_liveness(exported: dict[str, Any],
                                                        name: str) -> None:
    """Not only the peak: the live bytes at every step agree (same step order)."""
    from autocompress.hardware.memory import peak_sram

    graph, path, plan = exported[name]
    direct = _onnx_live_bytes(path)
    est = CostModel("stm32f746").estimate(graph, plan_formats(plan))
    assert est.peak_sram_kb * KB == max(direct)
    act_bits = {layer.fqn: 8 for layer in graph.layers}
    assert list(peak_sram(graph, act_bits).live_bytes) == direct


def test_the_check_can_fail(exported: dict[str, Any]) -> None:
    """A memory model that forgot tensor lifetimes (each step = its input + output, the
    residual input dropped) disagrees with the direct computation at the residual steps."""
    from autocompress.graph import ModelGraph
    from autocompress.hardware.memory import peak_sram

    graph, path, _ = exported["int8"]
    chain = ModelGraph(input_shape=graph.input_shape, layers=graph.layers)   # no lifetimes
    direct = _onnx_live_bytes(path)
    wrong = peak_sram(chain).live_bytes
    assert len(wrong) == len(direct) and list(wrong) != direct
    adds = [i for i, layer in enumerate(graph.layers) if layer.op == "add"]
    assert adds and any(wrong[i] != direct[i] for i in adds)
