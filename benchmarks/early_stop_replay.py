"""Early-stopping rules replayed on recorded runs: how much hypervolume each rule would keep
and how many training epochs it would save, without training anything again.

Input: the early-stopping runs of ``search_quality.py`` made with every rung recorded and
nobody stopped (``--rungs "[1, 2, 3, 4]" --k 1000``: each candidate's validation accuracy is
then in its record at every rung, beside its final accuracy). Each rule is replayed trial by
trial in the run's order through the search's own decision code (``FileBoard``, the policy's
margin and chance floor): a candidate the rule would stop counts its rung's epochs and leaves
the front; one it would pass counts its full training. Baselines never stop but count as
passed, as in a search. The hypervolume and epoch figures are ``search_quality.py``'s.

A replay is optimistic in one way: the sampler's later proposals are those of the run
without stopping, while in a real run they would follow from the stops (Optuna is told
PRUNED). It is a way to choose a rule; the chosen rule is then measured for real with
``search_quality.py``.

    python benchmarks/early_stop_replay.py runs/bq_tsp_all [--seeds 0 1 2]
        [--rungs "[1, 3]" "[2, 3]" ...] [--k 1 2] [--margin-se 0 1] [--chance-se 0 3]
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from search_quality import hv, reference_ms, train_epochs  # noqa: E402

from autocompress.config import load_config, objectives_of  # noqa: E402
from autocompress.hardware import CostEstimate  # noqa: E402
from autocompress.search.early_stop import EarlyStopping, FileBoard, chance_level  # noqa: E402
from autocompress.search.objective import cost_values  # noqa: E402
from autocompress.search.records import read_records  # noqa: E402
from autocompress.search.setup import load_data  # noqa: E402

COST = "stm32f746"


def replay(records: list[dict[str, Any]], policy: EarlyStopping, chance: float, n_val: int,
           board_dir: Path, objectives: tuple[str, ...] = ("accuracy", f"{COST}.latency_ms")
           ) -> list[dict[str, Any]]:
    """The records as the rule would have left them (stopped ones ``pruned`` at their rung).
    Records are taken in file order, the order a one-worker search decided them in; a rung's
    cost vector is the run's non-accuracy ``objectives``, as in the search."""
    board = FileBoard(board_dir / "rungs.jsonl", policy)
    out = []
    for rec in records:
        if rec["state"] != "complete":
            out.append(rec)
            continue
        stopped = None
        costs = {name: CostEstimate.from_dict(c) for name, c in rec["cost"].items()}
        cost = cost_values(costs, objectives)
        for rung in policy.rungs:
            acc = rec["metrics"][f"rung_accuracy/{rung}"]
            if not board.decide(rung, rec["number"], acc, cost, bool(rec.get("baseline")),
                                policy.margin(acc, n_val), policy.floor(chance, n_val)):
                stopped = rung
                break
        out.append(rec if stopped is None else {**rec, "state": "pruned", "rung": stopped})
    return out


def load_run(run_dir: Path, rungs: set[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    records = read_records(run_dir / "records.jsonl")
    trained = [r for r in records if r["state"] in ("complete", "pruned")]
    missing = [r["number"] for r in trained if r["state"] == "pruned" or
               any(f"rung_accuracy/{g}" not in r["metrics"] for g in rungs)]
    if not trained or missing:
        sys.exit(f"{run_dir}: trials {missing or 'all'} lack a rung accuracy in {sorted(rungs)} "
                 "or were stopped; record every rung with nobody stopped "
                 "(search_quality.py --rungs \"[1, 2, 3, 4]\" --k 1000)")
    cfg = load_config(run_dir / "config.resolved.yaml")
    val = load_data(cfg).val
    return records, {"chance": chance_level(val.y), "n_val": len(val),
                     "objectives": objectives_of(cfg),
                     "epochs": cfg.train.epochs, "finetune": cfg.train.finetune_epochs,
                     "budget": cfg.hardware.budgets[COST]["max_latency_ms"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a search_quality.py --out dir")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rungs", nargs="+", default=["[1, 3]", "[2]", "[2, 3]", "[1, 2, 3]"])
    p.add_argument("--k", type=int, nargs="+", default=[1, 2])
    p.add_argument("--margin-se", type=float, nargs="+", default=[0.0, 1.0])
    p.add_argument("--chance-se", type=float, nargs="+", default=[0.0, 3.0])
    args = p.parse_args(argv)
    rung_sets = [tuple(json.loads(r)) for r in args.rungs]
    runs = {s: load_run(args.out / f"tpe-es-s{s}", {g for rs in rung_sets for g in rs})
            for s in args.seeds}
    print(f"{args.out}: replayed on seeds {args.seeds}; per seed: HV kept / epochs saved / "
          "stopped")
    print("\n| rungs | k | margin_se | chance_se | per seed | median HV kept | median saved |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for rungs, k, ms, cse in itertools.product(rung_sets, args.k, args.margin_se,
                                               args.chance_se):
        policy = EarlyStopping(rungs=rungs, min_dominating=k, margin_se=ms, chance_se=cse)
        cells, kept, saved = [], [], []
        for records, info in runs.values():
            with tempfile.TemporaryDirectory() as tmp:
                after = replay(records, policy, info["chance"], info["n_val"], Path(tmp),
                               info["objectives"])
            ref = reference_ms(records, info["budget"])
            base = [r for r in records if not r.get("baseline")]
            left = [r for r in after if not r.get("baseline")]
            kept.append(hv(left, ref) / hv(base, ref))
            saved.append(1 - train_epochs(after, info["epochs"], info["finetune"]) /
                         train_epochs(records, info["epochs"], info["finetune"]))
            n = sum(r["state"] == "pruned" for r in left)
            cells.append(f"{kept[-1]:.3f} / {saved[-1]:.0%} / {n}")
        print(f"| {list(rungs)} | {k} | {ms:g} | {cse:g} | {', '.join(cells)} | "
              f"{statistics.median(kept):.3f} | {statistics.median(saved):.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
