"""Ray backend scaling, measured side by side in one run: the same search (same config,
seed and trial count, ``search.threads`` = 1 thread per trial) with 1 and with 2 workers on
a local Ray. Prints trials per hour of the Tune phase (from Ray start to shutdown) and the
search overhead: the share of worker time that is not inside a trial
(1 - sum of trial durations / (workers x Tune-phase wall time)), which counts Ray start-up,
actor start-up, scheduling and the driver's record/tell work.

    python benchmarks/scaling.py [--trials 32] [--epochs 20] [--out runs/bench_scaling]

The defaults (about 6 s per trial, ~6 min in all) are the README's protocol; with short trials
(--trials 16 --epochs 6: ~2 s each) Ray and actor start-up dominate the Tune phase.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autocompress.config import load_config  # noqa: E402
from autocompress.search import runner_ray  # noqa: E402

CONFIG = """\
name: scaling
seed: 0
data: digits
model: {{space: {space}}}
teacher: {{widths: [32, 64, 128], epochs: 5}}
train: {{epochs: {epochs}, finetune_epochs: {finetune}}}
hardware:
  profiles: [stm32f746]
  budgets: {{stm32f746: {{max_latency_ms: 50}}}}
search: {{trials: {trials}, sampler: random, threads: 1}}
"""


def measure(cfg_path: Path, run_dir: Path, workers: int) -> dict[str, Any]:
    phase: dict[str, float] = {}
    inner = runner_ray._run_tune

    def timed(*a: Any, **k: Any) -> None:
        start = time.perf_counter()
        inner(*a, **k)
        phase["wall_s"] = time.perf_counter() - start

    runner_ray._run_tune = timed
    try:
        res = runner_ray.run_search_ray(load_config(cfg_path), run_dir, quiet=True,
                                        baselines=False, workers=workers)
    finally:
        runner_ray._run_tune = inner
    busy = sum(r["duration_s"] for r in res.records)
    n = len(res.records)
    return {"workers": workers, "trials": n, "tune_wall_s": phase["wall_s"],
            "trials_per_hour": 3600 * n / phase["wall_s"], "trial_s_sum": busy,
            "overhead": 1 - busy / (workers * phase["wall_s"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--finetune", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_scaling")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = args.out / "config.yaml"
    cfg.write_text(CONFIG.format(space=ROOT / "search_spaces/mobilenet_digits.yaml",
                                 epochs=args.epochs, finetune=args.finetune,
                                 trials=args.trials))
    rows = []
    for workers in (1, 2):
        rows.append(measure(cfg, args.out / f"workers{workers}-{int(time.time())}", workers))
        print(json.dumps(rows[-1]), flush=True)
    one, two = rows
    print("\n| workers | trials | Tune phase s | trials/hour | overhead |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['trials']} | {r['tune_wall_s']:.1f} | "
              f"{r['trials_per_hour']:.0f} | {r['overhead']:.1%} |")
    print(f"\nspeed-up 2 vs 1 workers: {two['trials_per_hour'] / one['trials_per_hour']:.2f}x "
          "(target >= 1.7x on an idle 2-core machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
