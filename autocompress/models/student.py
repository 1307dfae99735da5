"""Student family: MobileNetV2-like inverted-residual CNN with searchable width, per-stage
depth, kernel size and expansion ratio (depthwise-separable blocks).

Layer names are stable and readable, so search-space rules can address them:
``stem.conv``, ``stages.<s>.<b>.expand.conv``, ``stages.<s>.<b>.dw.conv``,
``stages.<s>.<b>.project.conv``, ``head.conv``, ``classifier``.

>>> arch = StudentArch(width_mult=0.5, depths=(1, 2, 2))
>>> net = build_student(arch, in_channels=1, num_classes=10)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from torch import Tensor, nn


def make_divisible(value: float, divisor: int = 4, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` (never below 90% of ``value``)."""
    min_value = min_value or divisor
    out = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


class StagedArch:
    """Shared by the families' frozen arch dataclasses: per-stage tuples must have one entry
    per stage; JSON-friendly dict (lists); channel counts scaled by ``width_mult``."""

    PER_STAGE: ClassVar[tuple[str, ...]] = ("depths", "kernels", "strides")

    def __post_init__(self) -> None:
        n = len(self.stage_channels)  # type: ignore[attr-defined]
        for name in self.PER_STAGE:
            if len(getattr(self, name)) != n:
                raise ValueError(f"{type(self).__name__}.{name} needs {n} entries "
                                 "(one per stage)")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in asdict(self).items()}  # type: ignore[call-overload]

    def channels(self, base: int) -> int:
        return make_divisible(base * self.width_mult,  # type: ignore[attr-defined]
                              self.channel_divisor)  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True)
class StudentArch(StagedArch):
    """Architecture of one student. Tuples are per stage."""

    PER_STAGE: ClassVar[tuple[str, ...]] = ("depths", "kernels", "expands", "strides")

    width_mult: float = 1.0
    depths: tuple[int, ...] = (1, 2, 2)
    kernels: tuple[int, ...] = (3, 3, 3)
    expands: tuple[int, ...] = (4, 4, 4)
    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (16, 24, 32)
    strides: tuple[int, ...] = (1, 2, 2)
    head_channels: int = 64
    channel_divisor: int = 4

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentArch:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class ConvBNAct(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """1x1 expand -> kxk depthwise -> 1x1 linear project, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, kernel: int,
                 divisor: int = 4) -> None:
        super().__init__()
        hidden = cin if expand == 1 else make_divisible(cin * expand, divisor)
        self.use_residual = stride == 1 and cin == cout
        self.expand = ConvBNAct(cin, hidden, 1) if expand != 1 else None
        self.dw = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBNAct(hidden, cout, 1, act=False)

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.dw(out))
        return x + out if self.use_residual else out


def build_stages(arch: Any, cin: int, make_block: Callable[[int, int, int, int], nn.Module]
                 ) -> tuple[nn.Sequential, int]:
    """``stages.<s>.<b>`` blocks from ``make_block(cin, cout, stride, stage)``; the first block
    of stage ``s`` has stride ``arch.strides[s]``. Returns the stages and their out channels."""
    stages = []
    for s, base in enumerate(arch.stage_channels):
        cout = arch.channels(base)
        blocks = []
        for b in range(arch.depths[s]):
            blocks.append(make_block(cin, cout, arch.strides[s] if b == 0 else 1, s))
            cin = cout
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(*stages), cin


class Student(nn.Module):
    def __init__(self, arch: StudentArch, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.arch = arch
        cin = arch.channels(arch.stem_channels)
        self.stem = ConvBNAct(in_channels, cin, 3, 1)
        self.stages, cin = build_stages(arch, cin, lambda c_in, c_out, stride, s: InvertedResidual(
            c_in, c_out, stride, arch.expands[s], arch.kernels[s], arch.channel_divisor))
        head = max(arch.channels(arch.head_channels), cin)
        self.head = ConvBNAct(cin, head, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.stages(self.stem(x)))
        return self.classifier(self.flatten(self.pool(x)))


def build_student(arch: StudentArch, *, in_channels: int, num_classes: int) -> Student:
    return Student(arch, in_channels, num_classes)


def student_layer_names(arch: StudentArch) -> list[str]:
    """fqns of the conv/linear layers ``build_student(arch)`` creates, in order (pure)."""
    names = ["stem.conv"]
    for s, depth in enumerate(arch.depths):
        for b in range(depth):
            prefix = f"stages.{s}.{b}"
            if arch.expands[s] != 1:
                names.append(f"{prefix}.expand.conv")
            names += [f"{prefix}.dw.conv", f"{prefix}.project.conv"]
    return [*names, "head.conv", "classifier"]
