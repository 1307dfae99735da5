"""Search quality, measured in one run of this script: hypervolume (accuracy vs STM32F746
latency, fixed reference point) of the searched front against (a) the baselines' front and
(b) random search at equal trial count, and what multi-objective early stopping saves.

Task: digits distorted at 3x16x16 (``search_data.py``), MobileNetV2-like space, STM32F746
budget. For each seed: TPE with baselines, random search, TPE with baselines and early
stopping (rungs in the dense phase). Searched fronts leave the baselines out; training time
counts searched trials only, as wall time and as epochs trained (the latter is immune to the
machine's load). The budget defaults to 1.1 x the uniform-int8 baseline's predicted latency,
so the search may explore up to that baseline and "accuracy at the int8 baseline's latency"
compares like with like. Hypervolumes use fronts without the budget filter (baselines are the
largest students and may exceed it) and the reference (accuracy 0, the smaller of the budget
and 1.1 x the slowest baseline's latency).

``--budget-x 0.25`` is the tight-budget task (a quarter of the int8 baseline's latency): most
of the space is over budget, every baseline is (they are trained anyway, off the HV's
reference; the baseline rows read n/a), and random
search spends trials on candidates rejected before training while the searched runs' sampler
is told the constraints. Each seed also prints a ceiling: the hypervolume of the union of all
its runs' searched trials over random search's, an estimate of how far any sampler could
separate from random on the task at this trial count.

    python benchmarks/search_quality.py [--trials 20] [--seeds 0 1 2] [--sampler tpe|gp|nsga2]
        [--initial-design random|spread] [--budget-x 1.1 | --budget-ms MS] [--objectives accuracy]
        [--teacher-widths "32, 64, 128"] [--teacher-epochs 10] [--repeats 1]
        [--rungs "[1, 2, 3]"] [--k 1] [--margin-se 1] [--chance-se 3] [--rung-score dense]
        [--space search_spaces/mobilenet_digits.yaml] [--runs tpe,random,es]
        [--out runs/bench_quality] [--report-only] [--reuse]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from confirm_gain import best_at, latency  # noqa: E402

from autocompress.config import load_config  # noqa: E402
from autocompress.pareto import Objective, ParetoFront  # noqa: E402
from autocompress.search.records import read_records  # noqa: E402
from autocompress.search.rundir import git_revision  # noqa: E402
from autocompress.search.runner_optuna import run_search  # noqa: E402
from autocompress.search.sampling import infeasible_trend  # noqa: E402

CONFIG = """\
name: quality
seed: {seed}
data: search_data:make_data
model: {{space: {space}}}
teacher: {{widths: [{widths}], epochs: {teacher}}}
train: {{epochs: {epochs}, finetune_epochs: {finetune}, lr: 0.005, batch_size: 64, repeats: {repeats}}}
hardware:
  profiles: [stm32f746]
  budgets: {{stm32f746: {{max_latency_ms: {budget}}}}}
search: {{trials: {trials}, sampler: {sampler}, threads: {threads}, initial_design: {design}\
{objectives}{stop}}}
"""
OBJ = [Objective.accuracy(), Objective.latency("stm32f746")]
OBJECTIVES = "accuracy, stm32f746.latency_ms"     # the search's default, left out of CONFIG
TEACHER_WIDTHS = "32, 64, 128"                    # the teacher every README table used


def objectives_txt(args: argparse.Namespace) -> str:
    return "" if args.objectives == OBJECTIVES else f", objectives: [{args.objectives}]"


def front(records: list[dict[str, Any]]) -> ParetoFront:
    return ParetoFront.from_records(records, OBJ, [])


def hv(records: list[dict[str, Any]], ref_ms: float) -> float:
    return front(records).hypervolume({"accuracy": 0.0, "stm32f746.latency_ms": ref_ms})


def reference_ms(records: list[dict[str, Any]], budget_ms: float) -> float:
    """The HV reference latency: the smaller of the budget and 1.1 x the slowest baseline's."""
    return min(1.1 * max(r["cost"]["stm32f746"]["latency_ms"] for r in records
                         if r.get("baseline")), budget_ms)


def train_time(records: list[dict[str, Any]]) -> float:
    return sum(r["duration_s"] for r in records if not r.get("baseline"))


def train_epochs(records: list[dict[str, Any]], epochs: int, finetune: int) -> int:
    """Epochs trained by searched trials: dense + the fine-tune epochs run when complete (the
    trial's ``finetune_epochs`` metric: 0 for a PTQ-only plan; else ``finetune``), the rung
    when early-stopped, none when rejected before training or failed."""
    def trained(r: dict[str, Any]) -> int:
        if r["state"] == "pruned":
            return int(r["rung"])
        if r["state"] == "complete":       # times the trainings of train.repeats
            runs = sum(k.startswith("repeat_accuracy/") for k in r["metrics"]) or 1
            return (epochs + int(r["metrics"].get("finetune_epochs", finetune))) * runs
        return 0

    return sum(trained(r) for r in records if not r.get("baseline"))


def gain_at(searched: list[dict[str, Any]], int8: dict[str, Any], budget_ms: float
            ) -> float | None:
    """Best searched accuracy at or below the uniform-int8 baseline's latency minus the
    baseline's (None when the baseline failed or is over the budget)."""
    if int8["state"] != "complete" or latency(int8) > budget_ms:
        return None
    best = best_at(searched, latency(int8))
    return (best[0]["metrics"]["accuracy"] if best else 0.0) - int8["metrics"]["accuracy"]


def int8_budget(args: argparse.Namespace, seed: int) -> float:
    """``--budget-x`` x the uniform-int8 baseline's predicted STM32F746 latency."""
    from autocompress.search.baselines import baselines
    from autocompress.search.objective import cost_plan
    from autocompress.search.setup import build_context

    path = args.out / "probe.yaml"
    path.write_text(CONFIG.format(seed=seed, space=args.space,
                                  teacher=1, widths=args.teacher_widths, epochs=1, finetune=1, repeats=1,
                                  budget=1e9, trials=1,
                                  sampler="random", threads=args.threads, stop="",
                                  design="random", objectives=objectives_txt(args)))
    ctx = build_context(load_config(path))
    int8 = next(b for b in baselines(ctx.rspace) if b.name == "uniform-int8")
    _, costs, _ = cost_plan(ctx, ctx.rspace.to_plan(int8.params), seed)
    return round(args.budget_x * costs["stm32f746"].latency_ms, 2)


def run(args: argparse.Namespace, seed: int, sampler: str, *, stop: bool, baselines: bool,
        out: Path) -> list[dict[str, Any]]:
    name = f"{sampler}{'-es' if stop else ''}-s{seed}"
    stop_txt = (f", early_stopping: {{rungs: {args.rungs}, min_dominating: {args.k}"
                f", margin_se: {args.margin_se}, chance_se: {args.chance_se}"
                f"{', rung_score: compressed' if args.rung_score == 'compressed' else ''}}}"
                if stop else "")
    body = CONFIG.format(seed=seed, space=args.space,
                         teacher=args.teacher_epochs, widths=args.teacher_widths,
                         epochs=args.epochs,
                         finetune=args.finetune, repeats=args.repeats,
                         budget=args.budget_ms, trials=args.trials,
                         sampler=sampler, threads=args.threads, stop=stop_txt,
                         design=args.initial_design, objectives=objectives_txt(args))
    path, done = out / f"{name}.yaml", out / name / "records.jsonl"
    same = path.exists() and path.read_text() == body and \
        sum(not r.get("baseline") for r in read_records(done)) >= args.trials
    if args.report_only:
        if not same:
            sys.exit(f"--report-only: {out / name} is missing, unfinished or was run with "
                     f"another config than these arguments give (compare {path})")
        return read_records(done)
    if args.reuse and same and (rev := git_revision()) and _revision(out / name) == rev:
        print(f"  {name}: reused (same config and git revision, finished)", flush=True)
        return read_records(done)
    shutil.rmtree(out / name, ignore_errors=True)
    path.write_text(body)
    start = time.perf_counter()
    res = run_search(load_config(path), out / name, quiet=True, baselines=baselines, report=False)
    print(f"  {name}: {len(res.records)} records in {time.perf_counter() - start:.0f} s",
          flush=True)
    return res.records


def _revision(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "env.json").read_text()).get("git_rev")
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--finetune", type=int, default=2)
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1,
                   help="train.repeats: trainings per candidate, scored by their mean")
    p.add_argument("--teacher-widths", default=TEACHER_WIDTHS,
                   help="the teacher CNN's widths; the default teacher is weaker than the "
                        "students on this task (about 0.72 against 0.87 val accuracy); "
                        "'32, 64, 64, 128, 128' with --teacher-epochs 20 reaches 0.93")
    p.add_argument("--rungs", default="[1, 2, 3]", help="early_stopping.rungs")
    p.add_argument("--k", type=int, default=1, help="early_stopping.min_dominating")
    p.add_argument("--margin-se", type=float, default=1.0, help="early_stopping.margin_se")
    p.add_argument("--chance-se", type=float, default=3.0, help="early_stopping.chance_se")
    p.add_argument("--rung-score", default="dense", choices=("dense", "compressed"),
                   help="early_stopping.rung_score")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="STM32F746 latency budget (default: --budget-x x the int8 baseline's)")
    p.add_argument("--budget-x", type=float, default=1.1,
                   help="budget as a multiple of the int8 baseline's latency (tight: 0.25)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sampler", default="tpe", choices=("tpe", "gp", "nsga2"),
                   help="the searched runs' sampler (the comparison is always random search)")
    p.add_argument("--initial-design", default="random", choices=("random", "spread"),
                   help="the searched runs' search.initial_design (random search is random)")
    p.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "mobilenet_digits.yaml",
                   help="search space YAML (e.g. search_spaces/mobilenet_digits_wide.yaml)")
    p.add_argument("--objectives", default=OBJECTIVES, help="search.objectives ('accuracy' "
                   "alone: the best accuracy within the budget)")
    p.add_argument("--runs", default="tpe,random,es", help="runs per seed (tpe: always; rows "
                   "needing a skipped one read n/a)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_quality")
    p.add_argument("--report-only", action="store_true",
                   help="no new runs: report from the run dirs already in --out")
    p.add_argument("--reuse", action="store_true",
                   help="keep finished runs in --out with the same config text and git revision "
                        "(runs are deterministic apart from timing; commit first); run the "
                        "others afresh")
    args = p.parse_args(argv)
    args.space = args.space.resolve()      # the run configs live in --out
    args.runs = set(args.runs.split(","))
    if bad := args.runs - {"tpe", "random", "es"}:
        p.error(f"--runs: unknown {', '.join(sorted(bad))} (expected tpe, random, es)")
    args.out.mkdir(parents=True, exist_ok=True)
    budget_file = args.out / "budget.json"
    if args.budget_ms is None and args.report_only:
        if not budget_file.is_file():
            sys.exit(f"--report-only: no {budget_file}; pass --budget-ms")
        args.budget_ms = json.loads(budget_file.read_text())["budget_ms"]
    elif args.budget_ms is None:
        args.budget_ms = int8_budget(args, args.seeds[0])
    if not args.report_only:
        budget_file.write_text(json.dumps({"budget_ms": args.budget_ms}))
    print(f"budget: {args.budget_ms} ms on stm32f746", flush=True)
    rows = []
    for seed in args.seeds:
        tpe = run(args, seed, args.sampler, stop=False, baselines=True, out=args.out)
        rnd = run(args, seed, "random", stop=False, baselines=False, out=args.out) \
            if "random" in args.runs else []
        es = run(args, seed, args.sampler, stop=True, baselines=True, out=args.out) \
            if "es" in args.runs else []
        base = [r for r in tpe if r.get("baseline")]
        searched = [r for r in tpe if not r.get("baseline")]
        ref = reference_ms(tpe, args.budget_ms)
        int8 = next(r for r in base if r["baseline"] == "uniform-int8")
        es_searched, has_es = [r for r in es if not r.get("baseline")], bool(es)
        rows.append({
            "seed": seed, "ref_ms": ref, "int8_ms": latency(int8),
            "hv_searched": hv(searched, ref), "hv_baselines": hv(base, ref),
            "hv_random": hv(rnd, ref) if rnd else None,
            "hv_es": hv(es_searched, ref) if has_es else None,
            "hv_union": hv(searched + rnd + es_searched, ref),
            "acc_gain_at_int8_latency": gain_at(searched, int8, args.budget_ms),
            "acc_gain_random": gain_at(rnd, int8, args.budget_ms) if rnd else None,
            "infeasible": infeasible_trend(searched).cumulative[-1],
            "infeasible_random": infeasible_trend(rnd).cumulative[-1] if rnd else None,
            "train_s": train_time(tpe), "train_s_es": train_time(es) if has_es else None,
            "epochs": train_epochs(tpe, args.epochs, args.finetune),
            "epochs_es": train_epochs(es, args.epochs, args.finetune) if has_es else None,
            "pruned_es": sum(r["state"] == "pruned" for r in es) if has_es else None})
        print(json.dumps(rows[-1]), flush=True)
    report(args, rows)
    if not args.report_only:
        (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    return 0


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    med = {k: median([r[k] for r in rows]) for k in rows[0] if k != "seed"}
    print(f"\n| figure | median over seeds {args.seeds} (fewer where a ratio is undefined: "
          "n/a) | target |")
    print("|---|---:|---:|")
    print(f"| HV searched / HV baselines | "
          f"{fmt(ratio(med['hv_searched'], med['hv_baselines']), '.2f')} | ≥ 1.3 |")
    gain = med["acc_gain_at_int8_latency"]
    print(f"| accuracy gain at the int8 baseline's latency (points) | "
          f"{fmt(None if gain is None else 100 * gain, '+.1f')} | ≥ +1 |")
    if (g := med["acc_gain_random"]) is not None:
        print(f"| the same for random search | {100 * g:+.1f} | |")
    ratios = [ratio(r["hv_searched"], r["hv_random"]) for r in rows]
    print(f"| HV {args.sampler} / HV random (median of ratios) | {fmt(median(ratios), '.2f')} "
          "| ≥ 1.1 |")
    ceiling = [ratio(r["hv_union"], r["hv_random"]) for r in rows]
    print(f"| ceiling: HV of all runs' searched trials / HV random | "
          f"{fmt(median(ceiling), '.2f')} | (≥ 1.1 for the target to be reachable) |")
    print(f"| proposals infeasible: {args.sampler} / random | {fmt(med['infeasible'], '.0%')} "
          f"/ {fmt(med['infeasible_random'], '.0%')} | |")
    saved = [None if (x := ratio(r["train_s_es"], r["train_s"])) is None else 1 - x
             for r in rows]
    hv_es = [ratio(r["hv_es"], r["hv_searched"]) for r in rows]
    print(f"| training time saved by early stopping | {fmt(median(saved), '.0%')} | ≥ 30% |")
    saved_ep = [None if (x := ratio(r["epochs_es"], r["epochs"])) is None else 1 - x
                for r in rows]
    print(f"| training epochs saved by early stopping | {fmt(median(saved_ep), '.0%')} | "
          "≥ 30% |")
    print(f"| HV with / without early stopping | {fmt(median(hv_es), '.3f')} | ≥ 0.95 |")

if __name__ == "__main__":
    sys.exit(main())
