"""torch.fx tracing behind ``autocompress.graph.inspect_model``."""
from __future__ import annotations

import dataclasses
import math
import operator

import torch
from torch import nn

from autocompress.errors import ModelError, user_frame
from autocompress.graph import LayerInfo, ModelGraph, TensorInfo

# Ops whose cost is folded into the preceding conv/linear by every runtime we model
# (conv+bn+relu fusion in TFLite, CMSIS-NN, TensorRT and ORT). Hard-swish, SiLU and sigmoid
# are not: TFLite Micro runs HARD_SWISH and LOGISTIC (+ MUL) as ops of their own, with an
# output tensor of their own (the int8 export has HardSigmoid + Mul, Sigmoid + Mul), so they
# are costed as elementwise ops (a model with them under-stated its peak SRAM by a third).
_FUSABLE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Identity, nn.Dropout,
            nn.Flatten)
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_MUL_FUNCS = {operator.mul, operator.imul, torch.mul}
_ALIAS_FUNCS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.relu,
                torch.nn.functional.relu, torch.nn.functional.relu6, operator.getitem}
_ALIAS_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "relu",
                  "relu_", "size", "dim", "float"}
# per-channel affine weights, folded into a conv or costed as an elementwise op
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d,
          nn.PReLU)
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
                         square=len(set(module.kernel_size)) == len(set(module.stride)) == 1,
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
            return _pool_layer(name, op, module, in_shape, out_shape)
    return None


def _pool_layer(name: str, op: str, module: nn.Module, in_shape: tuple[int, ...],
                out_shape: tuple[int, ...]) -> LayerInfo:
    """A pool keyed as the ONNX reader and ``autocompress profile`` key it (so that measured
    LUT entries match): a global pool (one output pixel) has kernel = stride = the input's
    width and output (C,); another has its kernel and stride (an adaptive one, the input
    over the output size) and reads kernel x kernel inputs per output."""
    if len(in_shape) == 3 and out_shape[1:] == (1, 1):
        return LayerInfo(fqn=name, op=op, in_shape=in_shape, out_shape=out_shape[:1],
                         kernel=in_shape[-1], stride=in_shape[-1], macs=math.prod(in_shape))
    if isinstance(module, nn.AvgPool2d | nn.MaxPool2d):
        k = module.kernel_size
        s = module.stride or k
        kernel, stride = (int(v if isinstance(v, int) else v[0]) for v in (k, s))
    else:                                   # adaptive, several output pixels
        kernel = stride = max(1, in_shape[-1] // max(1, out_shape[-1]))
    return LayerInfo(fqn=name, op=op, in_shape=in_shape, out_shape=out_shape, kernel=kernel,
                     stride=stride, macs=math.prod(out_shape) * kernel * kernel)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _one_input(model: nn.Module) -> None:
    """A forward that needs more than the one batch of images the tools feed it."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):          # a builtin or C forward: let the call say
        return
    needed = [p.name for p in params if p.default is p.empty and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if len(needed) > 1:
        raise ModelError(f"the model's forward takes {len(needed)} inputs ({', '.join(needed)}); "
                         "it is fed one batch of images, shape (N, C, H, W)",
                         hint=f"wrap it in a module whose forward({needed[0]}) calls it with the "
                         "others fixed, or give them defaults")


def trace_model(model: nn.Module, example: torch.Tensor) -> ModelGraph:
    """See :func:`autocompress.graph.inspect_model`."""
    from torch.fx.passes.shape_prop import ShapeProp

    _one_input(model)
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable control flow
        raise ModelError(f"cannot trace the model with torch.fx: {_first_line(exc)}"
                         f"{user_frame(exc)}", hint="avoid data-dependent Python control flow "
                         "in forward()" if "control flow" in str(exc) else None) from exc
    was_training = model.training
    gm.eval()
    model.eval()
    try:
        with torch.no_grad():
            model(example)    # a plain forward first: a clean error, at a line of your forward
            ShapeProp(gm).propagate(example)
    except Exception as exc:
        raise ModelError(f"forward pass failed on an input of shape {tuple(example.shape)}: "
                         f"{_first_line(exc)}{user_frame(exc)}", hint="check that the samples "
                         "of `data:` have the shape the model expects; the built-in students "
                         "take C x H x W images") from exc
    finally:
        model.train(was_training)

    layers: list[LayerInfo] = []
    alias: dict[str, str] = {}           # fx node name -> tensor name
    numel: dict[str, int] = {}
    produced: dict[str, int] = {}
    last_use: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    uncosted: dict[str, tuple[str, int]] = {}

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
            n = sum(p.numel() for p in module.parameters())
            if n and not isinstance(module, (nn.Conv2d, nn.Linear, *_NORMS)):
                uncosted[str(node.target)] = (type(module).__name__, n)
            if isinstance(module, _FUSABLE) and inputs:
                alias[node.name] = inputs[0]
                if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and inputs[0] in produced:
                    step = produced[inputs[0]]
                    if step >= 0 and layers[step].compressible and not layers[step].bias:
                        layers[step] = dataclasses.replace(layers[step], bias=module.num_features)
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
            value = gm
            for part in str(node.target).split("."):
                value = getattr(value, part)
            elementwise = all(u.target in _ADD_FUNCS | _MUL_FUNCS or u.target in ("add", "mul")
                              for u in node.users)         # a layer scale: a costed add/mul
            if isinstance(value, nn.Parameter) and not elementwise:   # F.conv2d(x, self.w)
                uncosted[str(node.target)] = ("parameter used in forward", value.numel())
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
                      layers=tuple(layers), tensors=tensors,
                      uncosted=tuple((f, k, c) for f, (k, c) in uncosted.items()))


@torch.no_grad()
def forward_calls(model: nn.Module, example: torch.Tensor, types: tuple[type, ...]
                  ) -> list[tuple[nn.Module, tuple[object, ...], object]]:
    """(module, inputs, output) of every call of a module of ``types``, in the order one
    forward pass on ``example`` runs them (eval mode, no grad; the model's mode restored)."""
    calls: list[tuple[nn.Module, tuple[object, ...], object]] = []
    handles = [m.register_forward_hook(lambda mod, i, o: calls.append((mod, i, o)))
               for m in model.modules() if isinstance(m, types)]
    was = model.training
    try:
        model.eval()
        model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return calls

