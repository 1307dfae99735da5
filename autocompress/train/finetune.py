"""Compression inside a trial: apply a plan to a trained model, fine-tune, then quantize the
post-training-quantized (PTQ) layers. The one path from a trained model to a compressed one,
used by the search objective and the benchmarks.

1. ``apply_plan`` with every config except PTQ quantization (structure, sparsity at its
   schedule's first step, clustering, QAT fake quant);
2. fine-tune (KD as the plan says); iterative sparsity (``SparsityConfig.steps > 1``) rises
   at epoch ends through ``fit``'s ``on_epoch`` hook and reaches its ratio half-way through,
   the second half recovering at full sparsity. Skipped when the plan has nothing to
   train: a pure PTQ candidate is calibrated, never fine-tuned;
3. ``apply_plan`` with the PTQ quantization configs: weights quantized from their ranges
   (min-max or MSE clipping), activation ranges calibrated (min-max or percentile) on
   ``calibration`` training inputs, all frozen.

>>> model, info = compress_and_finetune(trained, plan, data.train, TrainSettings(epochs=3),
...                                     example=x[:1], seed=1)     # doctest: +SKIP
>>> info.epochs, info.ptq_layers                                   # doctest: +SKIP
(0, ('stem.conv', ...))
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autocompress.compress import CompressionPlan, QuantConfig, SparsityConfig, apply_plan
from autocompress.compress.plan import TechniqueConfig
from autocompress.compress.registry import weighted_layers
from autocompress.compress.sparsity import iterative_configs, tighten
from autocompress.data import Split
from autocompress.train.fit import TrainSettings, fit


@dataclass(frozen=True, kw_only=True)
class FinetuneInfo:
    """What the compression step did: fine-tuning epochs run (0 for a PTQ-only plan), the
    layers quantized post-training, and how many sparsity configs were iterative."""

    epochs: int
    ptq_layers: tuple[str, ...] = ()
    iterative_sparsity: int = 0   # layer configs pruned iteratively (``iterative_configs``)
    sparsity_by_epoch: tuple[float, ...] = ()   # zero fraction of the sparse layers' weights
                                                # before fine-tuning and after each epoch


def _is_ptq(cfg: TechniqueConfig) -> bool:
    return isinstance(cfg, QuantConfig) and cfg.mode == "ptq" and not _no_op(cfg)


def _no_op(cfg: TechniqueConfig) -> bool:
    return isinstance(cfg, QuantConfig) and cfg.bits >= 32   # float weights and activations


@torch.no_grad()
def _zero_fraction(model: nn.Module, configs: Mapping[str, TechniqueConfig]) -> float:
    layers = [m for f in configs for _, m in weighted_layers(model, f)]
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    return zeros / max(1, sum(m.weight.numel() for m in layers))


def split_ptq(plan: CompressionPlan) -> tuple[CompressionPlan, CompressionPlan]:
    """(the plan without its PTQ quantization configs, a plan with only them)."""
    trained = {f: tuple(c for c in cfgs if not _is_ptq(c)) for f, cfgs in plan.layers.items()}
    ptq = {f: tuple(c for c in cfgs if _is_ptq(c)) for f, cfgs in plan.layers.items()}
    return (CompressionPlan(arch=plan.arch, layers={f: c for f, c in trained.items() if c},
                            distill=plan.distill),
            CompressionPlan(arch=plan.arch, layers={f: c for f, c in ptq.items() if c},
                            distill=plan.distill))


def compress_and_finetune(model: nn.Module, plan: CompressionPlan, train: Split,
                          settings: TrainSettings, *, example: Tensor, seed: int,
                          round_to: int = 1, ignored: tuple[str, ...] = (),
                          calibration: Tensor | None = None,
                          teacher_logits: Tensor | None = None,
                          teacher: nn.Module | None = None,
                          on_epoch: Callable[[int], None] | None = None,
                          ) -> tuple[nn.Module, FinetuneInfo]:
    """A compressed copy of the trained ``model`` (see the module doc) and what was done.

    The plan's ``distill`` settings (with ``teacher_logits``, and ``teacher`` for feature
    distillation) drive the fine-tune loss;
    ``on_epoch(epochs_done)`` runs after each fine-tuning epoch, after the sparsity step."""
    trained_plan, ptq_plan = split_ptq(plan)
    kw = {"round_to": round_to, "ignored": ignored, "calibration": calibration}
    out = apply_plan(model, trained_plan, example, **kw)
    tunes = any(not _no_op(c) for cfgs in trained_plan.layers.values() for c in cfgs)
    epochs = settings.epochs if tunes or not ptq_plan.layers else 0
    sparse = plan.configs(SparsityConfig)
    steps = len(iterative_configs(sparse))

    history: list[float] = []

    def step(done: int) -> None:
        tighten(out, sparse, done, epochs)
        if sparse:
            history.append(_zero_fraction(out, sparse))

    def hook(done: int) -> None:
        step(done)
        if on_epoch is not None:
            on_epoch(done)

    step(0)
    if epochs > 0:   # the last hook call takes every iterative config to its ratio
        fit(out, train, settings, seed=seed, teacher_logits=teacher_logits,
            distill=plan.distill, on_epoch=hook, teacher=teacher)
    if ptq_plan.layers:
        out = apply_plan(out, ptq_plan, example, **kw)
    return out, FinetuneInfo(epochs=epochs, ptq_layers=tuple(sorted(ptq_plan.layers)),
                             iterative_sparsity=steps, sparsity_by_epoch=tuple(history))
