"""Train wide, then compress: does a student wider than the reference, compressed to the
reference's latency, beat the reference at it? Measured directly, without a sampler.

Task and training as ``search_quality.py`` (digits distorted at 3x16x16, 6+2 epochs, the
same teacher per seed); space ``search_spaces/mobilenet_digits_wide.yaml`` (the shipped
``mobilenet_digits.yaml`` with widths to 1.5 and ``reference: {width_mult: 1.0}``). For
each seed it trains the reference student as the uniform-int8 baseline, and hand-picked
candidates of the space at or below its predicted STM32F746 latency: width 1.25 and 1.5 with
25% structured pruning and/or 3x3 kernels in the first (16x16) stage, and the reference
itself at 25% sparsity (the sparse-25 baseline) for comparison at lower latency. Every
candidate keeps the baseline's int8 weights and distillation settings, so width, pruning and
kernels are the only differences. Prints accuracy per seed and the mean gain over the
reference.

By default each candidate trains once per seed, under that seed (as the search's baseline
trial does). ``--train-seeds K`` trains each K times per seed instead, under the training
seeds ``confirm_gain.py`` uses (seed + 1000 + j), and averages: one training's accuracy
moves by several points, more than the gains measured here.

    python benchmarks/wide_vs_reference.py [--seeds 0 1 2] [--train-seeds K]
                                           [--out runs/bench_wide]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from confirm_gain import SEED_OFFSET  # noqa: E402
from search_quality import CONFIG, TEACHER_WIDTHS  # noqa: E402

from autocompress.config import load_config  # noqa: E402
from autocompress.search.baselines import baselines  # noqa: E402
from autocompress.search.objective import run_trial  # noqa: E402
from autocompress.search.session import load_teacher  # noqa: E402
from autocompress.search.setup import SearchContext, build_context  # noqa: E402

WIDE = ROOT / "search_spaces" / "mobilenet_digits_wide.yaml"
# name: (width_mult, structured prune ratio of every group, kernels per stage)
CANDIDATES: dict[str, tuple[float, float, tuple[int, int, int]]] = {
    "reference (uniform-int8)": (1.0, 0.0, (5, 5, 5)),
    "w1.25, k3 in stage 0": (1.25, 0.0, (3, 5, 5)),
    "w1.25, 25% pruned": (1.25, 0.25, (5, 5, 5)),
    "w1.5, 25% pruned, k3 in stage 0": (1.5, 0.25, (3, 5, 5)),
    "w1.5, 50% pruned": (1.5, 0.5, (5, 5, 5)),
    "reference, 25% pruned (sparse-25)": (1.0, 0.25, (5, 5, 5)),
}


def params_of(ref: dict[str, Any], width: float, ratio: float,
              kernels: tuple[int, int, int]) -> dict[str, Any]:
    out = {**ref, "arch/width_mult": width}
    out.update({f"arch/kernel/{s}": k for s, k in enumerate(kernels)})
    out.update({n: ratio for n in out if n.startswith("prune/")})
    return out


def reference_params(ctx: SearchContext) -> dict[str, Any]:
    """The uniform-int8 baseline's parameters: the reference every candidate modifies."""
    return dict(next(b for b in baselines(ctx.rspace) if b.name == "uniform-int8").params)


def context(seed: int, out: Path) -> SearchContext:
    path = out / f"config-s{seed}.yaml"
    path.write_text(CONFIG.format(seed=seed, space=WIDE, teacher=10, widths=TEACHER_WIDTHS,
                                  epochs=6, finetune=2, repeats=1,
                                  budget=1e9, trials=1, sampler="random", threads=2, stop="",
                                  design="random", objectives=""))
    return build_context(load_config(path))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-seeds", type=int, default=0,
                   help="K > 0: train each candidate under K seeds per seed and average")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_wide")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    acc: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    latency: dict[str, float] = {}
    for seed in args.seeds:
        ctx = context(seed, args.out)
        ref = reference_params(ctx)
        (teacher_dir := args.out / f"s{seed}").mkdir(exist_ok=True)
        teacher = load_teacher(ctx.cfg, ctx, teacher_dir)
        train_seeds = [seed + SEED_OFFSET + j for j in range(args.train_seeds)] or [seed]
        for name, spec in CANDIDATES.items():
            runs = []
            for s in train_seeds:
                rec = run_trial(ctx, teacher, params_of(ref, *spec), number=0, seed=s,
                                baseline=name)
                if rec.state != "complete":
                    sys.exit(f"{name}, seed {seed}: {rec.state} ({rec.error})")
                runs.append(rec.metrics["accuracy"])
            latency[name] = rec.cost["stm32f746"]["latency_ms"]
            acc[name].append(statistics.mean(runs))
            print(f"  seed {seed}  {name:34s} {latency[name]:5.1f} ms  "
                  f"{' '.join(f'{a:.3f}' for a in runs)}", flush=True)
    base = acc["reference (uniform-int8)"]
    print(f"\n| candidate | STM32F746 ms | accuracy per seed {args.seeds} | mean | "
          "mean gain over the reference (points) |")
    print("|---|---:|---:|---:|---:|")
    for name, values in acc.items():
        gain = statistics.mean(100 * (a - b) for a, b in zip(values, base, strict=True))
        print(f"| {name} | {latency[name]:.1f} | {', '.join(f'{v:.3f}' for v in values)} | "
              f"{statistics.mean(values):.3f} | {gain:+.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
