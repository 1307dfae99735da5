"""Teacher recipe: a plain, wide CNN that reaches high accuracy quickly on small inputs."""
from __future__ import annotations

from torch import Tensor, nn


class TeacherCNN(nn.Module):
    """conv-bn-relu stages (stride 2 after the first), global pool, linear."""

    def __init__(self, in_channels: int, num_classes: int,
                 widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(cin, width, 3, 1 if i == 0 else 2, 1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU()]
            cin = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))
