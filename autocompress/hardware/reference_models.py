"""The four MLPerf Tiny reference models as hand-built ModelGraphs (no torch).

Shapes follow the reference Keras definitions in ``mlcommons/tiny`` (benchmark/training/*);
Conv/linear MAC totals match the MLPerf Tiny paper (Banbury et al. 2021): ResNet-8 12.50 M,
DS-CNN 2.66 M, MobileNetV1-0.25 7.49 M, FC autoencoder 0.264 M. BatchNorm and activations
are folded into the preceding conv/linear, as every MCU runtime does, so every conv/linear
carries one bias per output channel.

>>> def conv_mmacs(g): return round(sum(layer.macs for layer in g.compressible) / 1e6, 3)
>>> [conv_mmacs(build()) for build in REFERENCE_MODELS.values()]
[12.502, 2.657, 7.49, 0.264]
"""
from __future__ import annotations

import math

from autocompress.graph import LayerInfo, ModelGraph, TensorInfo


class GraphBuilder:
    """Builds a ModelGraph op by op, tracking tensor lifetimes ('same' padding)."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = input_shape
        self.layers: list[LayerInfo] = []
        self.shapes: dict[str, tuple[int, ...]] = {"input": input_shape}
        self.produced: dict[str, int] = {"input": -1}
        self.last_use: dict[str, int] = {"input": -1}

    def _add(self, op: str, inputs: tuple[str, ...], out_shape: tuple[int, ...],
             **fields: int) -> str:
        step = len(self.layers)
        name = f"{op}_{step}"
        for tensor in inputs:
            self.last_use[tensor] = step
        self.layers.append(LayerInfo(fqn=name, op=op, in_shape=self.shapes[inputs[0]],
                                     out_shape=out_shape, inputs=inputs, output=name, **fields))
        self.shapes[name], self.produced[name], self.last_use[name] = out_shape, step, step
        return name

    def conv(self, x: str, out_c: int, k: int | tuple[int, int] = 3, s: int = 1,
             groups: int = 1) -> str:
        c, h, w = self.shapes[x]
        kh, kw = (k, k) if isinstance(k, int) else k
        out = (out_c, math.ceil(h / s), math.ceil(w / s))
        return self._add("conv2d", (x,), out, kernel=kh, stride=s, groups=groups,
                         params=out_c * c // groups * kh * kw, bias=out_c,
                         macs=math.prod(out) * c // groups * kh * kw)

    def dwconv(self, x: str, k: int = 3, s: int = 1) -> str:
        c = self.shapes[x][0]
        return self.conv(x, c, k, s, groups=c)

    def linear(self, x: str, out_f: int) -> str:
        in_f = math.prod(self.shapes[x])
        return self._add("linear", (x,), (out_f,), params=in_f * out_f, bias=out_f,
                         macs=in_f * out_f)

    def add(self, a: str, b: str) -> str:
        shape = self.shapes[a]
        return self._add("add", (a, b), shape, macs=math.prod(shape))

    def global_avgpool(self, x: str) -> str:
        c, h, w = self.shapes[x]
        return self._add("avgpool", (x,), (c,), kernel=h, stride=h, macs=c * h * w)

    def build(self) -> ModelGraph:
        last = self.layers[-1].output
        self.last_use[last] = len(self.layers)
        tensors = tuple(TensorInfo(name=n, numel=math.prod(self.shapes[n]),
                                   produced_at=self.produced[n], last_used_at=self.last_use[n])
                        for n in self.shapes)
        return ModelGraph(input_shape=self.input_shape, layers=tuple(self.layers),
                          tensors=tensors)


def resnet8() -> ModelGraph:
    """MLPerf Tiny IC: ResNet-8 (16/32/64 filters), CIFAR-10 32x32x3, 10 classes."""
    b = GraphBuilder((3, 32, 32))
    x = b.conv("input", 16)
    y = b.conv(b.conv(x, 16), 16)
    x = b.add(x, y)
    for width in (32, 64):
        y = b.conv(b.conv(x, width, s=2), width)
        x = b.add(b.conv(x, width, k=1, s=2), y)
    b.linear(b.global_avgpool(x), 10)
    return b.build()


def ds_cnn() -> ModelGraph:
    """MLPerf Tiny KWS: DS-CNN, 49x10 MFCC, 64 filters, 4 DW-separable blocks, 12 classes."""
    b = GraphBuilder((1, 49, 10))
    x = b.conv("input", 64, k=(10, 4), s=2)
    for _ in range(4):
        x = b.conv(b.dwconv(x), 64, k=1)
    b.linear(b.global_avgpool(x), 12)
    return b.build()


def mobilenet_v1_025() -> ModelGraph:
    """MLPerf Tiny VWW: MobileNetV1 alpha=0.25, 96x96x3, 2 classes."""
    b = GraphBuilder((3, 96, 96))
    x = b.conv("input", 8, s=2)
    blocks = [(1, 16), (2, 32), (1, 32), (2, 64), (1, 64), (2, 128)] + [(1, 128)] * 5 \
        + [(2, 256), (1, 256)]
    for stride, width in blocks:
        x = b.conv(b.dwconv(x, s=stride), width, k=1)
    b.linear(b.global_avgpool(x), 2)
    return b.build()


def fc_autoencoder() -> ModelGraph:
    """MLPerf Tiny AD: dense autoencoder 640-128x4-8-128x4-640."""
    b = GraphBuilder((640,))
    x = "input"
    for width in (128, 128, 128, 128, 8, 128, 128, 128, 128, 640):
        x = b.linear(x, width)
    return b.build()


REFERENCE_MODELS = {"resnet8-ic": resnet8, "ds-cnn-kws": ds_cnn,
                    "mobilenetv1-0.25-vww": mobilenet_v1_025, "fc-autoencoder-ad": fc_autoencoder}
