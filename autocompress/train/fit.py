"""Training with knowledge distillation from cached teacher logits.

KD loss (Hinton et al.): ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1-alpha) * CE``
(the teacher's distribution first: ``kl_div(log_softmax(s/T), log_softmax(t/T))``).
Teacher logits are computed once per run and indexed by sample, so a KD epoch costs the
same as a plain one. ``TrainSettings.device`` is where training runs (``train.device``); the
model is back on the CPU when ``fit`` returns (``train.device``'s module doc).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autocompress.compress.plan import DistillConfig
from autocompress.data import Split, batches
from autocompress.train.augment import Augment
from autocompress.train.device import placed, where
from autocompress.train.features import FeatureDistiller


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    epochs: int
    lr: float = 5e-3
    batch_size: int = 64
    weight_decay: float = 1e-4
    device: str = "cpu"           # resolved: "cpu", "cuda", "cuda:1" (``train.device``)
    augment: Augment = field(default_factory=Augment)   # per-batch (``train.augment``): off


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
    device = torch.device(settings.device)
    teacher_runs = distill is not None and distill.feature_weight > 0   # features
    with placed(device, model, teacher if teacher_runs else None):
        return _fit(model, train, settings, device, seed=seed, teacher_logits=teacher_logits,
                    distill=distill, on_epoch=on_epoch, teacher=teacher)


def _fit(model: nn.Module, train: Split, settings: TrainSettings, device: torch.device, *,
         seed: int, teacher_logits: Tensor | None, distill: DistillConfig | None,
         on_epoch: Callable[[int], None] | None, teacher: nn.Module | None) -> float:
    gen = torch.Generator().manual_seed(seed)
    features = None
    params = list(model.parameters())
    if distill is not None and distill.feature_weight > 0:
        if teacher is None:
            raise ValueError("feature distillation (distill.feature_weight > 0) needs the teacher")
        features = FeatureDistiller(model, teacher, train.x[:1].to(device))
        params += list(features.adapter.to(device).parameters())
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(train) / settings.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    soft_all = None if teacher_logits is None else teacher_logits.to(device)
    model.train()
    mean = math.nan
    try:
        for epoch in range(settings.epochs):
            total, count = 0.0, 0
            for x, y, idx in batches(train, settings.batch_size, shuffle=True, generator=gen):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if settings.augment.on:        # its draws from the shuffle's generator
                    x = settings.augment(x, gen)
                logits = model(x)
                soft = None if soft_all is None else soft_all[idx.to(device)]
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
            if on_epoch is not None:   # sparsity steps, rung checks: on the CPU, as elsewhere
                with placed("cpu", model):
                    on_epoch(epoch + 1)
                model.train()
    finally:
        if features is not None:
            features.close()
    return mean


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int = 512, *,
            device: torch.device | str | None = None) -> Tensor:
    """Logits of ``split`` (on the CPU), computed on ``device`` (None: where the model is)."""
    model.eval()
    with placed(device, model):
        run_on = where(model)
        return torch.cat([model(x.to(run_on)).cpu()
                          for x, _, _ in batches(split, batch_size, shuffle=False)])


def accuracy(model: nn.Module, split: Split, *, device: torch.device | str | None = None
             ) -> float:
    return float((predict(model, split, device=device).argmax(1) == split.y).float().mean())
