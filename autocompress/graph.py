"""Model inspection: one traced forward gives the layers in execution order, their shapes,
MACs and parameter counts, and the lifetimes of the activation tensors (for peak-SRAM).

``inspect_model`` is the only place that looks inside a model; the cost model, the search
space and the report all work on the :class:`ModelGraph` it returns.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
from torch import nn

from autocompress.errors import ModelError

# Ops whose cost is folded into the preceding conv/linear by every runtime we model
# (conv+bn+relu fusion in TFLite, CMSIS-NN, TensorRT and ORT).
_FUSABLE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU,
            nn.Identity, nn.Dropout, nn.Flatten)


@dataclass(frozen=True, kw_only=True)
class LayerInfo:
    """One executed op. Shapes exclude the batch dimension: (C, H, W) or (F,)."""

    fqn: str                     # module name ("stages.0.1.expand.conv") or fx node name ("add_1")
    op: str                      # conv2d | linear | add | avgpool | maxpool | mul | other
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    params: int = 0              # weight elements (bias excluded)
    bias: int = 0                # bias elements
    macs: int = 0                # multiply-accumulates for batch 1
    inputs: tuple[str, ...] = ()  # names of the tensors read (see ModelGraph.tensors)
    output: str = ""             # name of the tensor written

    @property
    def compressible(self) -> bool:
        """Conv and linear layers carry weights that the compression knobs act on."""
        return self.op in ("conv2d", "linear")


@dataclass(frozen=True, kw_only=True)
class TensorInfo:
    """An activation tensor: its element count and the layer steps where it is live."""

    name: str
    numel: int
    produced_at: int             # index into ModelGraph.layers (-1 for the model input)
    last_used_at: int            # index of the last layer that reads it (len(layers) for outputs)


@dataclass(frozen=True, kw_only=True)
class ModelGraph:
    input_shape: tuple[int, ...]
    layers: tuple[LayerInfo, ...]
    tensors: tuple[TensorInfo, ...] = field(default=())

    def layer(self, fqn: str) -> LayerInfo:
        for info in self.layers:
            if info.fqn == fqn:
                return info
        raise KeyError(fqn)

    @property
    def compressible(self) -> tuple[LayerInfo, ...]:
        return tuple(info for info in self.layers if info.compressible)

    @property
    def params(self) -> int:
        return sum(info.params + info.bias for info in self.layers)

    @property
    def macs(self) -> int:
        return sum(info.macs for info in self.layers)


_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_MUL_FUNCS = {operator.mul, operator.imul, torch.mul}
_ALIAS_FUNCS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.relu,
                torch.nn.functional.relu, torch.nn.functional.relu6, torch.sigmoid,
                operator.getitem}
_ALIAS_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "relu",
                  "relu_", "size", "dim", "float"}
_POOL_TYPES = {nn.AdaptiveAvgPool2d: "avgpool", nn.AvgPool2d: "avgpool",
               nn.MaxPool2d: "maxpool", nn.AdaptiveMaxPool2d: "maxpool"}


def _shape(node: torch.fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return None
    return tuple(int(d) for d in meta.shape[1:])


def _module_layer(name: str, module: nn.Module, in_shape: tuple[int, ...],
                  out_shape: tuple[int, ...]) -> LayerInfo | None:
    out_numel = math.prod(out_shape)
    if isinstance(module, nn.Conv2d):
        k = int(module.kernel_size[0])
        params = module.weight.numel()
        return LayerInfo(fqn=name, op="conv2d", in_shape=in_shape, out_shape=out_shape,
                         kernel=k, stride=int(module.stride[0]), groups=module.groups,
                         params=params, bias=0 if module.bias is None else module.bias.numel(),
                         macs=out_numel * (module.in_channels // module.groups) * k
                         * int(module.kernel_size[1]))
    if isinstance(module, nn.Linear):
        rows = math.prod(out_shape) // module.out_features
        return LayerInfo(fqn=name, op="linear", in_shape=in_shape, out_shape=out_shape,
                         params=module.weight.numel(),
                         bias=0 if module.bias is None else module.bias.numel(),
                         macs=rows * module.in_features * module.out_features)
    for cls, op in _POOL_TYPES.items():
        if isinstance(module, cls):
            return LayerInfo(fqn=name, op=op, in_shape=in_shape, out_shape=out_shape,
                             macs=math.prod(in_shape))
    return None


def inspect_model(model: nn.Module, example: torch.Tensor) -> ModelGraph:
    """Trace ``model`` once on ``example`` (batch first) and describe it.

    Conv/BN/activation chains count as one fused layer (BN and activations add no
    layer and no tensor), reshapes alias their input.

    >>> g = inspect_model(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1)), torch.zeros(1, 1, 8, 8))
    >>> g.layers[0].macs
    2304
    """
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable control flow
        raise ModelError(f"cannot trace the model with torch.fx: {exc}",
                         hint="avoid data-dependent Python control flow in forward()") from exc
    was_training = model.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as exc:
        raise ModelError(f"forward pass failed on an input of shape {tuple(example.shape)}: {exc}",
                         hint="check the input shape the model expects") from exc
    finally:
        model.train(was_training)

    layers: list[LayerInfo] = []
    alias: dict[str, str] = {}           # fx node name -> tensor name
    numel: dict[str, int] = {}
    produced: dict[str, int] = {}
    last_use: dict[str, int] = {}
    seen_names: dict[str, int] = {}

    def tensor_inputs(node: torch.fx.Node) -> tuple[str, ...]:
        names = [alias[a.name] for a in node.all_input_nodes if a.name in alias]
        return tuple(dict.fromkeys(names))

    for node in gm.graph.nodes:
        shape = _shape(node)
        if node.op == "placeholder":
            alias[node.name] = node.name
            numel[node.name] = math.prod(shape or (0,))
            produced[node.name] = -1
            continue
        if node.op == "output":
            for name in tensor_inputs(node):
                last_use[name] = len(layers)
            continue
        inputs = tensor_inputs(node)
        info: LayerInfo | None = None
        in_shape = _shape(node.all_input_nodes[0]) if node.all_input_nodes else None
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
            if isinstance(module, _FUSABLE) and inputs:
                alias[node.name] = inputs[0]
                continue
            if in_shape is not None and shape is not None:
                info = _module_layer(str(node.target), module, in_shape, shape)
        elif node.op == "call_function" and node.target in _ADD_FUNCS | _MUL_FUNCS:
            op = "add" if node.target in _ADD_FUNCS else "mul"
            if shape is not None and len(inputs) > 1:
                info = LayerInfo(fqn=node.name, op=op, in_shape=shape, out_shape=shape,
                                 macs=math.prod(shape))
        elif node.op in ("call_function", "call_method") and inputs and (
                node.target in _ALIAS_FUNCS or node.target in _ALIAS_METHODS):
            alias[node.name] = inputs[0]
            continue
        elif node.op == "get_attr":
            continue
        if info is None:
            if shape is None:
                if inputs:
                    alias[node.name] = inputs[0]
                continue
            info = LayerInfo(fqn=str(node.target) if node.op == "call_module" else node.name,
                             op="other", in_shape=in_shape or shape, out_shape=shape)
        count = seen_names.get(info.fqn, 0)
        seen_names[info.fqn] = count + 1
        fqn = info.fqn if count == 0 else f"{info.fqn}#{count}"
        step = len(layers)
        for name in inputs:
            last_use[name] = step
        alias[node.name] = node.name
        numel[node.name] = math.prod(info.out_shape)
        produced[node.name] = step
        layers.append(LayerInfo(**{**info.__dict__, "fqn": fqn, "inputs": inputs,
                                   "output": node.name}))
    tensors = tuple(TensorInfo(name=n, numel=numel[n], produced_at=produced[n],
                               last_used_at=last_use.get(n, produced[n])) for n in produced)
    return ModelGraph(input_shape=tuple(int(d) for d in example.shape[1:]),
                      layers=tuple(layers), tensors=tensors)
