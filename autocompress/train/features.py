"""Intermediate-feature distillation (FitNets-style, Romero et al. 2015).

The student's last conv feature map is regressed onto the teacher's through a 1x1 conv
adapter (student channels -> teacher channels, trained with the student and dropped
after training): ``feature_weight * MSE(adapter(f_s), f_t)``, both maps average-pooled to
the smaller spatial size. "Last conv" = the last ``nn.Conv2d`` to run in a forward pass (the
head of a student family, the last conv of the teacher). The teacher runs on every batch
(its features are not cached, unlike its logits): a step costs a teacher forward more.

>>> fd = FeatureDistiller(student, teacher, x[:1])          # doctest: +SKIP
>>> logits = student(x); loss = fd.loss(x)                  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autocompress.errors import ModelError


def last_conv(model: nn.Module, example: Tensor) -> nn.Conv2d:
    """The last ``nn.Conv2d`` to run in ``model(example)``."""
    seen: list[nn.Conv2d] = []
    handles = [m.register_forward_hook(lambda mod, _i, _o: seen.append(mod))
               for m in model.modules() if isinstance(m, nn.Conv2d)]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    if not seen:   # a user's own model: stops the search with one line (run_trial re-raises)
        raise ModelError(f"{type(model).__name__} has no Conv2d to distill features from",
                         loc="distill.feature_weight",
                         hint="feature distillation needs a conv net; leave it at 0")
    return seen[-1]


class FeatureDistiller:
    """Hooks the last conv of ``student`` and ``teacher``; ``loss(x)`` runs the teacher on
    ``x`` and returns the MSE between the adapted student map of the latest student forward
    and the teacher map. ``adapter`` holds the trainable 1x1 conv; ``close()`` removes the
    hooks."""

    def __init__(self, student: nn.Module, teacher: nn.Module, example: Tensor) -> None:
        self.teacher = teacher
        s_conv, t_conv = last_conv(student, example), last_conv(teacher, example)
        self.adapter = nn.Conv2d(s_conv.out_channels, t_conv.out_channels, 1, bias=False)
        self._maps: dict[str, Tensor] = {}
        self._handles = [s_conv.register_forward_hook(self._keep("student")),
                         t_conv.register_forward_hook(self._keep("teacher"))]

    def _keep(self, key: str) -> Any:
        def hook(_m: nn.Module, _i: tuple[Any, ...], out: Tensor) -> None:
            self._maps[key] = out
        return hook

    def loss(self, x: Tensor) -> Tensor:
        self.teacher.eval()
        with torch.no_grad():
            self.teacher(x)
        s, t = self.adapter(self._maps["student"]), self._maps["teacher"].detach()
        size = (min(s.shape[-2], t.shape[-2]), min(s.shape[-1], t.shape[-1]))
        return F.mse_loss(F.adaptive_avg_pool2d(s, size), F.adaptive_avg_pool2d(t, size))

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
