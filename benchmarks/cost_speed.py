"""How long the cost model takes for one search candidate (the per-trial estimate step).

Draws N random candidates from the demo search space (``experiments/digits_mcu``:
MobileNetV2-like student, per-layer pruning and bits) with Optuna's RandomSampler (seed 0),
builds and traces each one as a trial does (``build_compressed`` + ``inspect_model``, not
timed), then times ``CostModel.estimate(graph, plan_formats(plan))`` on every shipped
profile (and the measured host profile if present). "first" is each candidate's first
estimate, in search order, as a search sees it (shapes new to the LUT interpolation cache
are interpolated then; shapes seen before hit the cache); "warm" is the median of
``--repeat`` further estimates of the same candidate. Reported: median and p90 over
candidates. Target: <= 1 ms per candidate and profile. Also reports the trace time (torch)
for scale.

    python benchmarks/cost_speed.py [--n 200] [--repeat 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MS = 1.0


def _stats(values: list[float]) -> tuple[float, float]:
    """(median, p90) of ``values``."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="candidates")
    ap.add_argument("--repeat", type=int, default=20, help="estimates per candidate")
    args = ap.parse_args()
    import optuna
    import torch

    from autocompress.compress.formats import plan_formats
    from autocompress.config import load_config
    from autocompress.graph import inspect_model
    from autocompress.hardware import CostModel, list_profiles
    from autocompress.search.objective import build_compressed
    from autocompress.search.setup import build_context

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = build_context(load_config(ROOT / "experiments/digits_mcu/config.yaml"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists = ctx.rspace.distributions()
    candidates, trace_s = [], []
    for i in range(args.n):
        plan = ctx.rspace.to_plan(study.ask(dists).params)
        t0 = time.perf_counter()
        graph = inspect_model(build_compressed(ctx, plan, seed=i), ctx.example())
        trace_s.append(time.perf_counter() - t0)
        candidates.append((graph, plan_formats(plan)))
    layers = statistics.median(len(g.layers) for g, _ in candidates)
    print(f"{args.n} candidates of experiments/digits_mcu (median {layers:.0f} layers); "
          f"build + trace (torch, not part of the estimate): median "
          f"{statistics.median(trace_s) * 1e3:.1f} ms")
    print(f"| profile | LUT entries | first: median ms | p90 ms | warm: median ms | p90 ms "
          f"| ≤ {TARGET_MS:g} ms |")
    print("|---|---:|---:|---:|---:|---:|:---:|")
    clock = time.perf_counter_ns
    worst = 0.0
    for name in list_profiles():
        model = CostModel(name)
        first, warm = [], []
        for graph, formats in candidates:
            times = []
            for _ in range(1 + args.repeat):
                t0 = clock()
                model.estimate(graph, formats)
                times.append((clock() - t0) / 1e6)
            first.append(times[0])
            warm.append(statistics.median(times[1:]))
        (f_med, f_p90), (w_med, w_p90) = (_stats(v) for v in (first, warm))
        worst = max(worst, f_med)
        print(f"| {name} | {len(model.profile.entries)} | {f_med:.3f} | {f_p90:.3f} | "
              f"{w_med:.3f} | {w_p90:.3f} | {'yes' if f_med <= TARGET_MS else '**no**'} |")
    print(f"slowest profile, first-estimate median: {worst:.3f} ms per candidate "
          f"(target ≤ {TARGET_MS:g} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
