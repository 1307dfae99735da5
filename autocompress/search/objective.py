"""One trial: plan -> cost estimate (no training) -> budget check -> KD training,
compression, fine-tuning with QAT -> validation accuracy -> TrialRecord."""
from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocompress.compress import CompressionPlan, QuantConfig, apply_plan, bake
from autocompress.errors import AutocompressError
from autocompress.graph import ModelGraph, inspect_model
from autocompress.hardware import CostEstimate, LayerFormat, check_budget
from autocompress.search.records import TrialRecord
from autocompress.search.setup import SearchContext
from autocompress.train import Teacher, TrainSettings, accuracy, fit


def plan_formats(plan: CompressionPlan) -> dict[str, LayerFormat]:
    """Per-layer weight/activation formats the cost model sees (32 bits = float)."""
    out: dict[str, LayerFormat] = {}
    for fqn, cfg in plan.configs(QuantConfig).items():
        assert isinstance(cfg, QuantConfig)
        out[fqn] = LayerFormat(weight_bits=cfg.bits, act_bits=32 if cfg.bits == 32 else 8)
    return out


def build_compressed(ctx: SearchContext, plan: CompressionPlan, seed: int) -> nn.Module:
    """Fresh model for ``plan.arch`` with the plan applied (untrained weights)."""
    model = ctx.source.build(plan.arch, seed)
    return apply_plan(model, plan, ctx.example(), round_to=ctx.round_to, ignored=ctx.ignored)


def estimate(ctx: SearchContext, plan: CompressionPlan, graph: ModelGraph
             ) -> dict[str, CostEstimate]:
    formats = plan_formats(plan)
    return {name: cm.estimate(graph, formats) for name, cm in ctx.cost_models.items()}


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


def run_trial(ctx: SearchContext, teacher: Teacher | None, params: Mapping[str, Any], *,
              number: int, seed: int, trial_dir: Path | None = None,
              baseline: str | None = None) -> TrialRecord:
    """Evaluate one candidate. Over-budget candidates are not trained (state infeasible),
    except baselines, which are always trained so they can be compared. A candidate that
    raises is recorded as failed with its error."""
    start = time.perf_counter()
    common: dict[str, Any] = {"number": number, "params": dict(params), "seed": seed,
                              "baseline": baseline}
    try:
        plan = ctx.rspace.to_plan(params)
        common.update(plan_id=plan.plan_id, plan=plan.to_dict())
        graph, costs, constraints = cost_plan(ctx, plan, seed)
        common.update(cost={n: c.to_dict() for n, c in costs.items()}, constraints=constraints)
        if baseline is None and any(v > 0 for v in constraints.values()):
            return TrialRecord(state="infeasible", duration_s=time.perf_counter() - start,
                               **common)
        model = ctx.source.build(plan.arch, seed)
        logits = None if teacher is None else teacher.train_logits
        tc = ctx.cfg.train
        fit(model, ctx.data.train, TrainSettings(epochs=tc.epochs, lr=tc.lr,
                                                 batch_size=tc.batch_size),
            seed=seed, teacher_logits=logits, distill=plan.distill)
        model = apply_plan(model, plan, ctx.example(), round_to=ctx.round_to,
                           ignored=ctx.ignored)
        fit(model, ctx.data.train, TrainSettings(epochs=tc.finetune_epochs, lr=tc.lr / 2,
                                                 batch_size=tc.batch_size),
            seed=seed + 1, teacher_logits=logits, distill=plan.distill)
        trained = inspect_model(model, ctx.example())
        if trained.params != graph.params:
            raise RuntimeError(f"costed shapes ({graph.params} params) differ from the trained "
                               f"model ({trained.params} params)")
        metrics = {"accuracy": accuracy(model, ctx.data.val), "params": float(graph.params),
                   "macs": float(graph.macs)}
        if trial_dir is not None:
            trial_dir.mkdir(parents=True, exist_ok=True)
            baked = bake(model)
            torch.save(baked.state_dict(), trial_dir / "model.pt")
        return TrialRecord(state="complete", metrics=metrics,
                           duration_s=time.perf_counter() - start, **common)
    except (KeyboardInterrupt, AutocompressError):
        raise  # user errors (e.g. a missing LUT entry with fallback off) stop the search
    except Exception as exc:  # a failing candidate is recorded, the search goes on
        err = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc(limit=3)
        return TrialRecord(state="failed", error=f"{err}\n{tb}",
                           duration_s=time.perf_counter() - start, **common)
