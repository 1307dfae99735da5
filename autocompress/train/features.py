"""Intermediate-feature distillation (FitNets-style, Romero et al. 2015).

The student's last feature map is regressed onto the teacher's through a 1x1 conv
adapter (student channels -> teacher channels, trained with the student and dropped
after training): ``feature_weight * MSE(adapter(f_s), f_t)``, both maps average-pooled to
the smaller spatial size. "Last feature map" = the input of the last global pool to run (the
head's output in a MobileNetV2 student, the last block's, residual added, in a ResNet, the
teacher's last stage), or, in a model without one, the output of the last ``nn.Conv2d`` to
run. (The last conv to run is not it in a ResNet: its shortcut conv runs after the block's
second conv.) The teacher runs on every batch (its features are not cached, unlike its
logits): a step costs a teacher forward more.

>>> fd = FeatureDistiller(student, teacher, x[:1])          # doctest: +SKIP
>>> logits = student(x); loss = fd.loss(x)                  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autocompress._trace import forward_calls
from autocompress.errors import ModelError

POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)


def feature_source(model: nn.Module, example: Tensor) -> tuple[nn.Module, bool, int]:
    """(module, its input?, channels) of the last feature map of ``model(example)``: the
    input of the last pool whose output is one pixel, else the output of the last conv."""
    seen: list[tuple[nn.Module, bool, int]] = []
    for mod, inputs, out in forward_calls(model, example, (*POOLS, nn.Conv2d)):
        assert isinstance(out, Tensor)
        if not isinstance(mod, POOLS):
            seen.append((mod, False, int(out.shape[1])))
        elif out.dim() == 4 and out.shape[-2:] == (1, 1) and inputs[0].dim() == 4:
            seen.append((mod, True, int(inputs[0].shape[1])))
    pools = [s for s in seen if s[1]]
    if pools:
        return pools[-1]
    if not seen:   # a user's own model: stops the search with one line (run_trial re-raises)
        raise ModelError(f"{type(model).__name__} has no Conv2d to distill features from",
                         loc="distill.feature_weight",
                         hint="feature distillation needs a conv net; leave it at 0")
    return seen[-1]


class FeatureDistiller:
    """Hooks the last feature map (:func:`feature_source`) of ``student`` and ``teacher``;
    ``loss(x)`` runs the teacher on ``x`` and returns the MSE between the adapted student map
    of the latest student forward and the teacher map. ``adapter`` holds the trainable 1x1
    conv; ``close()`` removes the hooks."""

    def __init__(self, student: nn.Module, teacher: nn.Module, example: Tensor) -> None:
        self.teacher = teacher
        (s_mod, s_in, s_ch), (t_mod, t_in, t_ch) = (feature_source(m, example)
                                                    for m in (student, teacher))
        self.adapter = nn.Conv2d(s_ch, t_ch, 1, bias=False)
        self._maps: dict[str, Tensor] = {}
        self._handles = [self._hook(s_mod, s_in, "student"), self._hook(t_mod, t_in, "teacher")]

    def _hook(self, module: nn.Module, on_input: bool, key: str) -> Any:
        def keep(_m: nn.Module, inputs: tuple[Any, ...], out: Tensor) -> None:
            self._maps[key] = inputs[0] if on_input else out
        return module.register_forward_hook(keep)

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
