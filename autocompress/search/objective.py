"""One trial: plan -> cost estimate (no training) -> budget check -> KD training,
compression and fine-tuning (``train.finetune``: QAT, iterative sparsity; a PTQ-only plan is
calibrated, not fine-tuned) -> validation accuracy -> TrialRecord."""
from __future__ import annotations

import functools
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocompress.compress import (
    CompressionPlan,
    PruneConfig,
    SparsityConfig,
    apply_plan,
    bake,
)
from autocompress.compress.checkpoint import save_packed
from autocompress.compress.formats import plan_cost
from autocompress.compress.sparsity import tighten
from autocompress.errors import AutocompressError, is_disk_full
from autocompress.graph import ModelGraph, inspect_model
from autocompress.hardware import CostEstimate, check_budget
from autocompress.search.early_stop import Board, EarlyStopping, Pruned, chance_level
from autocompress.search.records import TrialRecord
from autocompress.search.setup import SearchContext
from autocompress.train import Teacher, TrainSettings, accuracy, fit
from autocompress.train.augment import from_config
from autocompress.train.device import training_device
from autocompress.train.finetune import FinetuneInfo, compress_and_finetune

REPEAT_SEED_STRIDE = 10_000   # train.repeats: training j of a trial with seed s uses s + j * this


def build_compressed(ctx: SearchContext, plan: CompressionPlan, seed: int) -> nn.Module:
    """Fresh model for ``plan.arch`` with the plan applied (untrained weights)."""
    model = ctx.source.build(plan.arch, seed)
    return apply_plan(model, plan, ctx.example(), round_to=ctx.round_to, ignored=ctx.ignored)


def estimate(ctx: SearchContext, plan: CompressionPlan, graph: ModelGraph
             ) -> dict[str, CostEstimate]:
    """The plan's cost on every profile, as export writes it: a layer kept float in the
    profile's float format, one the plan leaves alone int8 if any is (``unquantized_format``)."""
    return {name: plan_cost(cm, plan, graph) for name, cm in ctx.cost_models.items()}


def constraints_of(ctx: SearchContext, costs: Mapping[str, CostEstimate]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, budget in ctx.budgets.items():
        for key, value in check_budget(costs[name], budget).items():
            out[f"{name}.{key}"] = float(value)
    return out


def cost_plan(ctx: SearchContext, plan: CompressionPlan, seed: int
              ) -> tuple[ModelGraph, dict[str, CostEstimate], dict[str, float]]:
    """Shapes after compression, cost on every profile, and budget constraints (≤ 0 ok)."""
    graph = inspect_model(build_compressed(ctx, plan, seed), ctx.example())
    costs = estimate(ctx, plan, graph)
    return graph, costs, constraints_of(ctx, costs)


def pruned_channels(ctx: SearchContext, plan: CompressionPlan, graph: ModelGraph, seed: int
                    ) -> dict[str, list[int]]:
    """Each layer the plan prunes, and each one pruned with it (a depthwise conv, a residual
    partner), -> [output channels kept, of] (``graph``: the compressed model's): what the
    report shows, since the kept count is rounded (the profiles' ``align.channels``)."""
    asked = {f for f, c in plan.configs(PruneConfig).items() if c.ratio > 0}
    if not asked:
        return {}
    student = dict(ctx.source.build(plan.arch, seed).named_modules())
    out = {}
    for layer in graph.layers:
        module = student.get(layer.fqn)
        of = getattr(module, "out_channels", None) or getattr(module, "out_features", None)
        if of and layer.out_shape and (layer.fqn in asked or layer.out_shape[0] < of):
            out[layer.fqn] = [int(layer.out_shape[0]), int(of)]   # (C, H, W), (F,)
    return out


def cost_values(costs: Mapping[str, CostEstimate], objectives: Sequence[str]) -> list[float]:
    """The value in ``costs`` of each ``<profile>.<metric>`` objective (accuracy skipped)."""
    return [float(costs[o.split(".", 1)[0]].summary()[o.split(".", 1)[1]])
            for o in objectives if o != "accuracy"]


def run_trial(ctx: SearchContext, teacher: Teacher | None, params: Mapping[str, Any], *,
              number: int, seed: int, trial_dir: Path | None = None,
              baseline: str | None = None, board: Board | None = None,
              note: str | None = None) -> TrialRecord:
    """Evaluate one candidate. Over-budget candidates are not trained (state infeasible),
    except baselines, which are always trained so they can be compared. A candidate that
    raises is recorded as failed with its error. With ``board`` and
    ``search.early_stopping`` set, the dense phase stops at a rung where the candidate is
    Pareto-dominated (state pruned, ``rung`` = epochs trained; see ``early_stop``)."""
    start = time.perf_counter()
    common: dict[str, Any] = {"number": number, "params": dict(params), "seed": seed,
                              "baseline": baseline, "note": note, "started_at": time.time(),
                              "worker": f"{socket.gethostname()}:{os.getpid()}",
                              "threads": torch.get_num_threads()}
    try:
        plan = ctx.rspace.to_plan(params)
        common.update(plan_id=plan.plan_id, plan=plan.to_dict())
        graph, costs, constraints = cost_plan(ctx, plan, seed)
        common.update(cost={n: c.to_dict() for n, c in costs.items()}, constraints=constraints,
                      channels=pruned_channels(ctx, plan, graph, seed))
        if baseline is None and any(v > 0 for v in constraints.values()):
            return TrialRecord(state="infeasible", duration_s=time.perf_counter() - start,
                               **common)
        rung_acc: dict[str, float] = {}
        on_epoch = _rung_check(ctx, board, plan, number, costs, rung_acc,
                               protected=baseline is not None)
        try:
            runs = [_train(ctx, teacher, plan, seed, on_epoch)]
        except Pruned as stop:
            return TrialRecord(state="pruned", rung=stop.rung, metrics=rung_acc,
                               duration_s=time.perf_counter() - start, **common)
        runs += [_train(ctx, teacher, plan, seed + REPEAT_SEED_STRIDE * j, None)
                 for j in range(1, ctx.cfg.train.repeats)]
        model, done, _ = max(runs, key=lambda run: run[2])   # ties: the first training
        trained = inspect_model(model, ctx.example())
        if trained.params != graph.params:
            raise RuntimeError(f"costed shapes ({graph.params} params) differ from the trained "
                               f"model ({trained.params} params)")
        scores = [run[2] for run in runs]
        metrics = {"accuracy": sum(scores) / len(scores), "params": float(graph.params),
                   "macs": float(graph.macs), "finetune_epochs": float(done.epochs),
                   "ptq_layers": float(len(done.ptq_layers)), **rung_acc}
        if len(scores) > 1:
            metrics.update({f"repeat_accuracy/{j}": a for j, a in enumerate(scores)})
        if trial_dir is not None:
            trial_dir.mkdir(parents=True, exist_ok=True)
            save_packed(bake(model), plan, trial_dir / "model.pt")
        return TrialRecord(state="complete", metrics=metrics,
                           duration_s=time.perf_counter() - start, **common)
    except (KeyboardInterrupt, AutocompressError):
        raise  # user errors (e.g. a missing LUT entry with fallback off) stop the search
    except Exception as exc:  # a failing candidate is recorded, the search goes on
        if is_disk_full(exc):  # ... unless no trial can be saved: stop, resume later
            raise
        err = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc(limit=-4)
        return TrialRecord(state="failed", error=f"{err}\n{tb}",
                           duration_s=time.perf_counter() - start, **common)


def _train(ctx: SearchContext, teacher: Teacher | None, plan: CompressionPlan, seed: int,
           on_epoch: Callable[[nn.Module, int], None] | None
           ) -> tuple[nn.Module, FinetuneInfo, float]:
    """One training of ``plan`` under ``seed``: the dense phase with KD (``on_epoch`` is
    the early-stopping hook), compression and fine-tuning. Returns the model, the
    fine-tuning summary and the validation accuracy."""
    model = ctx.source.build(plan.arch, seed)
    logits = None if teacher is None else teacher.train_logits
    teacher_net = None if teacher is None else teacher.model
    tc = ctx.cfg.train
    device = training_device(tc.device)      # this process's: a Ray worker's own GPU
    settings = functools.partial(TrainSettings, batch_size=tc.batch_size, device=device,
                                 augment=from_config(tc.augment))
    hook = None if on_epoch is None else functools.partial(on_epoch, model)
    fit(model, ctx.data.train, settings(epochs=tc.epochs, lr=tc.lr),
        seed=seed, teacher_logits=logits, distill=plan.distill, on_epoch=hook,
        teacher=teacher_net)
    model, done = compress_and_finetune(
        model, plan, ctx.data.train, settings(epochs=tc.finetune_epochs, lr=tc.lr / 2),
        example=ctx.example(), seed=seed + 1, round_to=ctx.round_to, ignored=ctx.ignored,
        calibration=ctx.calibration(), teacher_logits=logits, teacher=teacher_net)
    return model, done, accuracy(model, ctx.data.val, device=device)


def _rung_check(ctx: SearchContext, board: Board | None, plan: CompressionPlan, number: int,
                costs: Mapping[str, CostEstimate], out: dict[str, float], *, protected: bool
                ) -> Callable[[nn.Module, int], None] | None:
    """The per-epoch hook of the dense phase: at each rung, evaluate and ask the board. With
    ``rung_score: compressed`` the score is a compressed copy's accuracy (the plan applied to
    the weights so far, iterative sparsity at its final ratio, no fine-tuning), else the
    dense student's."""
    policy = EarlyStopping.from_config(ctx.cfg.search.early_stopping)
    if board is None or policy is None:
        return None
    cost_vec = cost_values(costs, ctx.objectives)
    val = ctx.data.val
    floor = policy.floor(chance_level(val.y), len(val))

    def hook(model: nn.Module, epochs_done: int) -> None:
        if epochs_done not in policy.rungs:
            return
        probe = model
        if policy.rung_score != "dense":
            probe = apply_plan(model, plan, ctx.example(), round_to=ctx.round_to,
                               ignored=ctx.ignored, calibration=ctx.calibration())
            tighten(probe, plan.configs(SparsityConfig), 1, 1)   # iterative: its full ratio
        acc = accuracy(probe, val, device=training_device(ctx.cfg.train.device))
        out[f"rung_accuracy/{epochs_done}"] = acc
        margin = policy.margin(acc, len(val))
        if not board.decide(epochs_done, number, acc, cost_vec, protected, margin, floor):
            raise Pruned(epochs_done, acc)

    return hook
