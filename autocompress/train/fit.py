"""Training with knowledge distillation from cached teacher logits.

KD loss (Hinton et al.): ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1-alpha) * CE``
(the teacher's distribution first: ``kl_div(log_softmax(s/T), log_softmax(t/T))``).
Teacher logits are computed once per run and indexed by sample, so a KD epoch costs the
same as a plain one.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autocompress.compress.plan import DistillConfig
from autocompress.data import Split, batches
from autocompress.train.features import FeatureDistiller


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    epochs: int
    lr: float = 5e-3
    batch_size: int = 64
    weight_decay: float = 1e-4


def kd_loss(student_logits: Tensor, targets: Tensor, teacher_logits: Tensor | None,
            distill: DistillConfig | None) -> Tensor:
    hard = F.cross_entropy(student_logits, targets)
    if teacher_logits is None or distill is None or distill.alpha == 0:
        return hard
    t = distill.temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1),
                    F.log_softmax(teacher_logits / t, dim=1), log_target=True,
                    reduction="batchmean") * (t * t)
    return distill.alpha * soft + (1 - distill.alpha) * hard


def fit(model: nn.Module, train: Split, settings: TrainSettings, *, seed: int,
        teacher_logits: Tensor | None = None, distill: DistillConfig | None = None,
        on_epoch: Callable[[int], None] | None = None,
        teacher: nn.Module | None = None) -> float:
    """Train in place (AdamW + cosine schedule); returns the last epoch's mean loss.
    Raises FloatingPointError on a non-finite loss. ``on_epoch(epochs_done)`` runs after each
    epoch (multi-fidelity rungs: it may evaluate, or raise to stop training early); the
    schedule is the full run's either way, so a candidate that is not stopped trains exactly
    as without it. ``teacher``: the teacher network, needed (and only used) when
    ``distill.feature_weight > 0`` (``train.features``)."""
    if settings.epochs <= 0:
        return math.nan
    gen = torch.Generator().manual_seed(seed)
    features = None
    params = list(model.parameters())
    if distill is not None and distill.feature_weight > 0:
        if teacher is None:
            raise ValueError("feature distillation (distill.feature_weight > 0) needs the teacher")
        features = FeatureDistiller(model, teacher, train.x[:1])
        params += list(features.adapter.parameters())
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(train) / settings.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    model.train()
    mean = math.nan
    try:
        for epoch in range(settings.epochs):
            total, count = 0.0, 0
            for x, y, idx in batches(train, settings.batch_size, shuffle=True, generator=gen):
                logits = model(x)
                soft = None if teacher_logits is None else teacher_logits[idx]
                loss = kd_loss(logits, y, soft, distill)
                if features is not None and distill is not None:
                    loss = loss + distill.feature_weight * features.loss(x)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite training loss {loss.item()}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(y)
                count += len(y)
            mean = total / max(1, count)
            if on_epoch is not None:
                on_epoch(epoch + 1)
                model.train()
    finally:
        if features is not None:
            features.close()
    return mean


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int = 512) -> Tensor:
    model.eval()
    return torch.cat([model(x) for x, _, _ in batches(split, batch_size, shuffle=False)])


def accuracy(model: nn.Module, split: Split) -> float:
    return float((predict(model, split).argmax(1) == split.y).float().mean())
