"""ImageNet reference models (MobileNetV1/V2, ResNet, VGG, SqueezeNet) as ModelGraphs, no torch.

They calibrate and check the phone and Jetson profiles against published whole-model latency
(``shared/data/published-model-latency``). Shapes follow the torchvision / TF-slim
definitions at 224x224; BatchNorm and activations are folded into the preceding conv (one
bias per output channel), as TFLite and TensorRT fuse them.

>>> round(ZOO["mobilenet_v1_1.0_224"]().macs / 1e6)      # 569 M in the MobileNet paper
569
>>> round(ZOO["resnet50"]().macs / 1e9, 2)              # torchvision: 4.09 GMAC (conv+fc)
4.1
"""
from __future__ import annotations

import math
from collections.abc import Callable

from autocompress.graph import ModelGraph
from autocompress.hardware.reference_models import GraphBuilder


class ZooBuilder(GraphBuilder):
    """GraphBuilder with explicit padding, max-pooling and channel concatenation."""

    def conv_p(self, x: str, out_c: int, k: int, s: int = 1, pad: int = 0) -> str:
        """A conv with explicit zero padding ``pad`` (torchvision style)."""
        c, h, w = self.shapes[x]
        out = (out_c, (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1)
        return self._add("conv2d", (x,), out, kernel=k, stride=s, groups=1,
                         params=out_c * c * k * k, bias=out_c, macs=math.prod(out) * c * k * k)

    def maxpool(self, x: str, k: int = 3, s: int = 2, pad: int = 0, ceil: bool = False) -> str:
        c, h, w = self.shapes[x]
        rnd = math.ceil if ceil else math.floor
        oh, ow = (rnd((d + 2 * pad - k) / s) + 1 for d in (h, w))
        return self._add("maxpool", (x,), (c, oh, ow), kernel=k, stride=s,
                         macs=c * oh * ow * k * k)

    def concat(self, *xs: str) -> str:
        _, h, w = self.shapes[xs[0]]
        c = sum(self.shapes[x][0] for x in xs)
        return self._add("concat", tuple(xs), (c, h, w))


def mobilenet_v1(alpha: float = 1.0, res: int = 224, classes: int = 1000) -> ModelGraph:
    """MobileNetV1 (Howard et al. 2017), TF-slim layout."""
    b = ZooBuilder((3, res, res))
    x = b.conv("input", int(32 * alpha), s=2)
    plan = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 \
        + [(2, 1024), (1, 1024)]
    for stride, width in plan:
        x = b.conv(b.dwconv(x, s=stride), int(width * alpha), k=1)
    b.linear(b.global_avgpool(x), classes)
    return b.build()


def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v2(alpha: float = 1.0, res: int = 224, classes: int = 1000,
                 scale_last: bool = False) -> ModelGraph:
    """MobileNetV2 (Sandler et al. 2018), torchvision/TF-slim layout.

    ``scale_last``: the final 1x1 conv scales with ``alpha`` below 1 too, as in the MCUNet
    zoo's ``mbv2-w0.35`` (0.75 M params, not the 1.7 M that a fixed 1280 gives).
    """
    b = ZooBuilder((3, res, res))
    x = b.conv("input", _make_divisible(32 * alpha), s=2)
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        out_c = _make_divisible(c * alpha)
        for i in range(n):
            stride, in_c = (s if i == 0 else 1), b.shapes[x][0]
            y = b.conv(x, in_c * t, k=1) if t != 1 else x
            y = b.conv(b.dwconv(y, s=stride), out_c, k=1)
            x = b.add(x, y) if stride == 1 and in_c == out_c else y
    x = b.conv(x, _make_divisible(1280 * (alpha if scale_last else max(1.0, alpha))), k=1)
    b.linear(b.global_avgpool(x), classes)
    return b.build()


# ProxylessNAS-Mobile (Cai et al. 2019) per stage: (out channels, kernel, expand) per block;
# each stage's first block has stride 2; a None kernel is a skipped (identity-only) block.
_PROXYLESS_MOBILE = (
    ((32, 5, 3), (32, 3, 3), (32, None, 0), (32, None, 0)),
    ((40, 7, 3), (40, 3, 3), (40, 5, 3), (40, 5, 3)),
    ((80, 7, 6), (80, 5, 3), (80, 5, 3), (80, 5, 3), (96, 5, 6), (96, 5, 3), (96, 5, 3),
     (96, 5, 3)),
    ((192, 7, 6), (192, 7, 6), (192, 7, 3), (192, 7, 3), (320, 7, 6)),
)


def proxyless_mobile(alpha: float = 1.0, res: int = 224, classes: int = 1000) -> ModelGraph:
    """ProxylessNAS-Mobile at width ``alpha`` (channels and the last conv scaled, rounded up
    to a multiple of 8), as the MCUNet zoo's ``proxyless-w0.3``: 38.3 M MACs, 0.75 M params
    at 176 published, 38.4 / 0.755 here (rounding 57.6 down to 56 instead gives 36.9 / 0.71).
    """
    def width(c: int) -> int:
        return max(8, math.ceil(c * alpha / 8) * 8)

    b = ZooBuilder((3, res, res))
    x = b.conv("input", width(32), s=2)
    x = b.conv(b.dwconv(x), width(16), k=1)        # MB1 3x3 block
    for stage in _PROXYLESS_MOBILE:
        for i, (c, k, t) in enumerate(stage):
            out_c, in_c = width(c), b.shapes[x][0]
            stride = 2 if i == 0 else 1
            if k is None:                       # zero op: the block is the identity
                continue
            y = b.conv(b.dwconv(b.conv(x, in_c * t, k=1), k=k, s=stride), out_c, k=1)
            x = b.add(x, y) if stride == 1 and in_c == out_c else y
    x = b.conv(x, width(1280), k=1)
    b.linear(b.global_avgpool(x), classes)
    return b.build()


def alexnet(classes: int = 1000) -> ModelGraph:
    """torchvision AlexNet (5 convs with ReLU, 3 max-pools, 3 linears; 6x6 adaptive pool is
    the identity at 224)."""
    b = ZooBuilder((3, 224, 224))
    x = b.maxpool(b.conv_p("input", 64, 11, 4, 2))
    x = b.maxpool(b.conv_p(x, 192, 5, 1, 2))
    x = b.conv_p(b.conv_p(b.conv_p(x, 384, 3, 1, 1), 256, 3, 1, 1), 256, 3, 1, 1)
    x = b.linear(b.linear(b.maxpool(x), 4096), 4096)
    b.linear(x, classes)
    return b.build()


def resnet(depth: int, classes: int = 1000) -> ModelGraph:
    """torchvision ResNet-18/34 (basic blocks) or -50/101/152 (bottlenecks)."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
              152: (3, 8, 36, 3)}[depth]
    bottleneck = depth >= 50
    b = ZooBuilder((3, 224, 224))
    x = b.maxpool(b.conv_p("input", 64, 7, 2, 3), 3, 2, pad=1)
    for stage, count in enumerate(blocks):
        width = 64 * 2 ** stage
        out_c = width * 4 if bottleneck else width
        for i in range(count):
            s = 2 if i == 0 and stage > 0 else 1
            if bottleneck:
                y = b.conv(b.conv(b.conv(x, width, k=1), width, s=s), out_c, k=1)
            else:
                y = b.conv(b.conv(x, width, s=s), width)
            short = b.conv(x, out_c, k=1, s=s) if s != 1 or b.shapes[x][0] != out_c else x
            x = b.add(short, y)
    b.linear(b.global_avgpool(x), classes)
    return b.build()


def vgg(depth: int, classes: int = 1000) -> ModelGraph:
    """torchvision VGG-11/13/16 (BN folded: the ``_bn`` variants cost the same)."""
    cfg = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3)}[depth]
    b = ZooBuilder((3, 224, 224))
    x = "input"
    for stage, count in enumerate(cfg):
        for _ in range(count):
            x = b.conv(x, min(64 * 2 ** stage, 512))
        x = b.maxpool(x, 2, 2)
    x = b.linear(b.linear(x, 4096), 4096)
    b.linear(x, classes)
    return b.build()


def squeezenet(version: str = "1_0", classes: int = 1000) -> ModelGraph:
    """torchvision SqueezeNet 1.0 / 1.1 (fire modules: squeeze 1x1, expand 1x1 | 3x3)."""
    b = ZooBuilder((3, 224, 224))

    def fire(x: str, squeeze: int, expand: int) -> str:
        s = b.conv(x, squeeze, k=1)
        return b.concat(b.conv(s, expand, k=1), b.conv(s, expand, k=3))

    def pool(t: str) -> str:
        return b.maxpool(t, 3, 2, ceil=True)

    if version == "1_0":
        x = pool(b.conv_p("input", 96, 7, 2))
        plan: list[tuple[int, int] | None] = [(16, 64), (16, 64), (32, 128), None, (32, 128),
                                              (48, 192), (48, 192), (64, 256), None, (64, 256)]
    else:
        x = pool(b.conv_p("input", 64, 3, 2))
        plan = [(16, 64), (16, 64), None, (32, 128), (32, 128), None, (48, 192), (48, 192),
                (64, 256), (64, 256)]
    for item in plan:
        x = pool(x) if item is None else fire(x, *item)
    b.global_avgpool(b.conv(x, classes, k=1))
    return b.build()


# name (as in published_model_latency.csv where one exists) -> builder
ZOO: dict[str, Callable[[], ModelGraph]] = {
    "mobilenet_v1_1.0_224": mobilenet_v1,
    "mobilenet_v2_1.0_224": mobilenet_v2,
    "resnet18": lambda: resnet(18), "resnet34": lambda: resnet(34),
    "resnet50": lambda: resnet(50), "resnet101": lambda: resnet(101),
    "resnet152": lambda: resnet(152),
    "vgg11": lambda: vgg(11), "vgg13": lambda: vgg(13), "vgg16": lambda: vgg(16),
    "alexnet": alexnet,
    "squeezenet1_0": lambda: squeezenet("1_0"), "squeezenet1_1": lambda: squeezenet("1_1"),
    # MCUNet zoo / TinyEngine ids (int8 on MCUs)
    "mbv2-w0.35-r144": lambda: mobilenet_v2(0.35, 144, scale_last=True),
    "mbv2-w0.3-r64": lambda: mobilenet_v2(0.3, 64, scale_last=True),
    "proxyless-w0.3-r64": lambda: proxyless_mobile(0.3, 64),
    "proxyless-w0.3-r176": lambda: proxyless_mobile(0.3, 176),
}
