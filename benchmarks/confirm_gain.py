"""Is the searched point at the int8 baseline's latency really better, or a lucky draw?

``search_quality.py`` scores "accuracy at the int8 baseline's latency" as the best searched
accuracy at or below that latency minus the uniform-int8 baseline's, each from one training:
the best of 20 noisy candidates against one noisy baseline. This script retrains both, the
baseline and the chosen candidate, with ``--k`` fresh training seeds each (the same seeds for
both: paired), on the run's own data, teacher, space and recipe, and prints the mean paired
gain. It reads finished ``search_quality.py`` runs in ``--out``: ``tpe-s<seed>`` (which holds
the baselines) and, when present, ``random-s<seed>`` (its best candidate is retrained too).

``--top N`` (N > 1) tries a confirmation stage a search could run after its trials: the N
best searched candidates at or below the baseline's latency are retrained under the ``k``
seeds and the best mean is kept; that one and the baseline are then compared under ``k``
other seeds (seed + 2000 + j), so the choice and its score come from different trainings.

    python benchmarks/confirm_gain.py --out runs/bq_so_wide [--seeds 0 1 2] [--k 3] [--top 1]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from autocompress.search.objective import run_trial  # noqa: E402
from autocompress.search.records import read_records  # noqa: E402
from autocompress.search.reduce import Reduction  # noqa: E402
from autocompress.search.rundir import load_run_config  # noqa: E402
from autocompress.search.session import load_teacher  # noqa: E402
from autocompress.search.setup import build_context  # noqa: E402

SEED_OFFSET = 1000        # retraining seeds: run seed + 1000 + j, never a seed the run used
FRESH_OFFSET = 2000       # with --top: the seeds that score the candidate the re-ranking chose


def latency(rec: dict[str, Any]) -> float:
    return rec["cost"]["stm32f746"]["latency_ms"]


def best_at(records: list[dict[str, Any]], limit_ms: float, top: int = 1
            ) -> list[dict[str, Any]]:
    """The ``top`` searched records with the best accuracy at or below ``limit_ms``."""
    ok = [r for r in records if not r.get("baseline") and r["state"] == "complete"
          and latency(r) <= limit_ms]
    return sorted(ok, key=lambda r: -r["metrics"]["accuracy"])[:top]


@functools.cache
def setting(run_dir: Path) -> tuple[Any, Any]:
    """The run's search context and its cached teacher, built once per run dir; torch runs
    the run's thread count (another count sums in another order: other accuracies)."""
    cfg = load_run_config(run_dir)       # one training per seed, whatever train.repeats was
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, repeats=1))
    torch.set_num_threads(cfg.search.threads)
    ctx = build_context(cfg, reduction=Reduction.load(run_dir))
    return ctx, load_teacher(cfg, ctx, run_dir)


def retrain(run_dir: Path, params: list[dict[str, Any]], seeds: list[int]
            ) -> list[list[float]]:
    """Accuracy of each parameter set under each training seed, in ``run_dir``'s setting."""
    ctx, teacher = setting(run_dir)
    out = []
    for p in params:
        row = []
        for s in seeds:
            rec = run_trial(ctx, teacher, p, number=0, seed=s, baseline="confirm")
            if rec.state != "complete":
                sys.exit(f"{run_dir}: retraining failed ({rec.state}: {rec.error})")
            row.append(rec.metrics["accuracy"])
        out.append(row)
    return out


def confirm(out: Path, seed: int, k: int, top: int = 1) -> dict[str, Any]:
    tpe_dir = out / f"tpe-s{seed}"
    tpe = read_records(tpe_dir / "records.jsonl")
    int8 = next(r for r in tpe if r.get("baseline") == "uniform-int8")
    seeds = [seed + SEED_OFFSET + j for j in range(k)]
    row: dict[str, Any] = {"seed": seed, "int8_once": int8["metrics"]["accuracy"]}
    runs = {"tpe": tpe}
    if (rnd_dir := out / f"random-s{seed}").is_dir():
        runs["random"] = read_records(rnd_dir / "records.jsonl")
    chosen = {}
    for name, recs in runs.items():
        cands = best_at(recs, latency(int8), top)
        if len(cands) > 1:             # re-rank on `seeds`, then score on fresh ones
            means = [statistics.mean(a) for a in
                     retrain(tpe_dir, [c["params"] for c in cands], seeds)]
            cands = [cands[means.index(max(means))]]
        chosen[name] = cands[0] if cands else None
    if top > 1:
        seeds = [seed + FRESH_OFFSET + j for j in range(k)]
    params = [int8["params"]] + [c["params"] for c in chosen.values() if c]
    accs = retrain(tpe_dir, params, seeds)
    row["int8_mean"] = statistics.mean(accs[0])
    it = iter(accs[1:])
    for name, c in chosen.items():
        if c is None:
            continue
        acc = next(it)
        row[name] = {"ms": latency(c), "once": c["metrics"]["accuracy"],
                     "mean": statistics.mean(acc),
                     "gain_once": c["metrics"]["accuracy"] - row["int8_once"],
                     "gain_mean": statistics.mean(a - b for a, b in zip(acc, accs[0],
                                                                         strict=True))}
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="a search_quality.py --out folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--k", type=int, default=3, help="training seeds per model")
    p.add_argument("--top", type=int, default=1,
                   help="N > 1: re-rank the N best candidates by k retrainings first")
    args = p.parse_args(argv)
    rows = [confirm(args.out, s, args.k, args.top) for s in args.seeds]
    print(f"\n| run | seed | chosen ms | int8: once / mean of {args.k} | chosen: once / mean "
          f"of {args.k} | gain once | gain, mean of {args.k} paired (points) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("tpe", "random"):
        gains = []
        for r in rows:
            if name not in r:
                continue
            c = r[name]
            gains.append(100 * c["gain_mean"])
            print(f"| {name} | {r['seed']} | {c['ms']:.1f} | {r['int8_once']:.3f} / "
                  f"{r['int8_mean']:.3f} | {c['once']:.3f} / {c['mean']:.3f} | "
                  f"{100 * c['gain_once']:+.1f} | {100 * c['gain_mean']:+.1f} |")
        if gains:
            print(f"| {name} | median | | | | | **{statistics.median(gains):+.1f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
