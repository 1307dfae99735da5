"""ResNet-like student family: a 3x3 stem, stages of basic blocks (two k x k convs, a
residual add; a 1x1 conv shortcut where the shape changes), global pool, linear. Small by
default (ResNet-8-like, as MLPerf Tiny), for 8x8 and 32x32 inputs.

Searchable: width multiplier, blocks per stage, kernel per stage (no expansion ratio: a
basic block has none). Layer names: ``stem.conv``, ``stages.<s>.<b>.conv1.conv``,
``stages.<s>.<b>.conv2.conv``, ``stages.<s>.<b>.shortcut.conv``, ``classifier``.

>>> net = build_resnet(ResNetArch(width_mult=0.5), in_channels=3, num_classes=10)
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor, nn

from autocompress.models.student import ConvBNAct, StagedArch, build_stages


@dataclass(frozen=True, kw_only=True)
class ResNetArch(StagedArch):
    width_mult: float = 1.0
    depths: tuple[int, ...] = (1, 1, 1)
    kernels: tuple[int, ...] = (3, 3, 3)
    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (16, 32, 64)
    strides: tuple[int, ...] = (1, 2, 2)
    channel_divisor: int = 4

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetArch:
        # ``expands`` is accepted and ignored: callers size "the largest architecture" of any
        # family with it, and a basic block has no expansion.
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"expands"}
        if unknown:
            raise TypeError(f"unknown ResNetArch fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in data.items() if k in known})


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(cin, cout, kernel, stride)
        self.conv2 = ConvBNAct(cout, cout, kernel, act=False)
        self.shortcut = ConvBNAct(cin, cout, 1, stride, act=False) \
            if stride != 1 or cin != cout else None
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return self.act(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNetStudent(nn.Module):
    def __init__(self, arch: ResNetArch, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.arch = arch
        cin = arch.channels(arch.stem_channels)
        self.stem = ConvBNAct(in_channels, cin, 3, 1)
        self.stages, cin = build_stages(arch, cin, lambda c_in, c_out, stride, s: BasicBlock(
            c_in, c_out, stride, arch.kernels[s]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.stages(self.stem(x)))))


def build_resnet(arch: ResNetArch, *, in_channels: int, num_classes: int) -> ResNetStudent:
    return ResNetStudent(arch, in_channels, num_classes)


def resnet_layer_names(arch: ResNetArch) -> list[str]:
    """fqns of the conv/linear layers ``build_resnet(arch)`` creates, in order (pure)."""
    names = ["stem.conv"]
    cin = arch.channels(arch.stem_channels)
    for s, base in enumerate(arch.stage_channels):
        cout = arch.channels(base)
        for b in range(arch.depths[s]):
            prefix = f"stages.{s}.{b}"
            names += [f"{prefix}.conv1.conv", f"{prefix}.conv2.conv"]
            stride = arch.strides[s] if b == 0 else 1
            if stride != 1 or cin != cout:
                names.append(f"{prefix}.shortcut.conv")
            cin = cout
    return [*names, "classifier"]
