"""Which trial ``autocompress export`` ships: ``--trial N``, or the most accurate front point
(accuracy vs one device's latency, within every budget of the run) under ``--max-latency-ms``,
``--max-flash-kb`` and ``--max-peak-sram-kb`` and over ``--min-accuracy``; and the notes on the
trials it passed over."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autocompress.errors import ExportError
from autocompress.pareto import Budget, Objective, ParetoFront

NO_FEASIBLE = ("the run has no feasible complete trial: resume it for more (autocompress "
               "search --resume RUN_DIR --trials N), or export one over budget with --trial N "
               "(report/trials.csv lists them)")

ACCURACY_TOLERANCE = 1e-6   # float32 rounding of k/n (under 1e-7), far below 1/n


def choose_record(records: list[dict[str, Any]], *, trial: int | None,
                  max_latency_ms: float | None, device: str, budgets: list[Any],
                  min_accuracy: float | None,
                  memory: Mapping[str, float] | None = None) -> dict[str, Any]:
    """``trial``, or the most accurate front point within the limits with at least
    ``min_accuracy``; with ``min_accuracy`` and no limit, the fastest front point on
    ``device`` that reaches it; with nothing, the most accurate front point. ``memory``:
    limits on ``flash_kb`` / ``peak_sram_kb`` on ``device`` (``--max-flash-kb``,
    ``--max-peak-sram-kb``), applied as budgets of their own."""
    by_number = {r["number"]: r for r in records}
    if trial is not None:
        rec = by_number.get(trial)
        if rec is None:
            raise ExportError(f"trial {trial} has no record", loc="--trial",
                              hint=(f"recorded: trials 0..{max(by_number)}" if by_number else
                                    "the run has no recorded trial yet") + "; a search still "
                              "running records its trials as they finish")
        if rec["state"] != "complete":
            raise ExportError(f"trial {trial} is {rec['state']}, it has no trained model",
                              loc="--trial", hint="pick a complete trial: report/trials.csv lists them")
        return rec
    objectives = [Objective.accuracy(), Objective.latency(device)]
    mine = _memory_budgets(device, memory)
    front = ParetoFront.from_records(records, objectives, [*budgets, *mine])
    if not front.points and mine:
        within = ParetoFront.from_records(records, [Objective.accuracy(), *(
            Objective(name=b.metric, sense="min", path=f"cost.{device}.{b.metric}")
            for b in mine)], budgets).points
        smallest = {b.metric: min(within, key=lambda r, b=b: r["cost"][device][b.metric],
                                  default=None) for b in mine}
        raise ExportError(
            "no complete trial within the run's budgets meets " + " and ".join(
                f"{b.metric.removesuffix('_kb').replace('_', ' ')} <= {b.limit:g} KB on "
                f"{device}" for b in mine), loc=f"--max-{mine[0].metric.replace('_', '-')}",
            hint="; ".join(f"the smallest in {m.removesuffix('_kb').replace('_', ' ')}, trial "
                           f"{r['number']}, needs {r['cost'][device][m]:.4g} KB"
                           for m, r in smallest.items() if r is not None)
            or NO_FEASIBLE)
    no_limit = max_latency_ms is None
    limits = {} if no_limit else {f"{device}.latency_ms": float(max_latency_ms)}
    # accuracies are recorded as float32 means (189/270 is 0.699999988): a floor the report
    # shows as met (70.00 %) is met
    floor = None if min_accuracy is None else min_accuracy - ACCURACY_TOLERANCE
    choice = front.select(max_values=limits, min_values={} if floor is None
                          else {"accuracy": floor})
    if choice is not None and no_limit and not mine and floor is not None:
        # an accuracy floor alone: the fastest front point that meets it
        choice = min((p for p in front.points if p["metrics"]["accuracy"] >= floor),
                     key=lambda p: float(p["cost"][device]["latency_ms"]))
    if choice is None:
        def lat(p: Any) -> float:
            return float(p["cost"][device]["latency_ms"])

        fastest = min(front.points, key=lat, default=None)
        within = [p for p in front.points if no_limit or lat(p) <= float(max_latency_ms)]
        best = max(within, key=lambda p: p["metrics"]["accuracy"], default=None)
        hint = (NO_FEASIBLE if fastest is None
                else f"the fastest front point, trial {fastest['number']}, needs "
                     f"{lat(fastest):.4g} ms (export it with --trial {fastest['number']})"
                if best is None
                else f"the most accurate front point within it, trial {best['number']}, "
                     f"reaches {best['metrics']['accuracy']:.4f} (export it with --trial "
                     f"{best['number']})")
        wanted = ([] if no_limit else [f"latency <= {max_latency_ms} ms on {device}"]) + \
            ([] if min_accuracy is None else [f"accuracy >= {min_accuracy}"])
        raise ExportError(f"no front point meets {' and '.join(wanted) or 'the budgets'}",
                          loc="--max-latency-ms" if not no_limit else "--min-accuracy"
                          if min_accuracy is not None else "export", hint=hint)
    return dict(choice)


def shown_within(records: list[dict[str, Any]], chosen: dict[str, Any], device: str,
                 max_latency_ms: float, budgets: list[Any]) -> list[dict[str, Any]]:
    """Front points more accurate than the chosen one whose latency is over the limit but
    shows within it at the report's three significant figures (1.99038 ms shows as 1.99: a
    user who types the shown figure leaves that point out)."""
    front = ParetoFront.from_records(records, [Objective.accuracy(), Objective.latency(device)],
                                     budgets)
    return [p for p in front.points
            if p["metrics"]["accuracy"] > chosen["metrics"]["accuracy"]
            and max_latency_ms < p["cost"][device]["latency_ms"]
            and float(f"{p['cost'][device]['latency_ms']:.3g}") <= max_latency_ms]


def better_over_budget(records: list[dict[str, Any]], chosen: dict[str, Any], device: str,
                       max_latency_ms: float) -> list[dict[str, Any]]:
    """Complete trials within the latency limit and more accurate than the chosen one: the
    front left them out because they break the run's budgets (e.g. the baselines, which are
    trained whatever the budget)."""
    acc = chosen["metrics"]["accuracy"]
    return [r for r in records if r.get("state") == "complete"
            and r.get("metrics", {}).get("accuracy", 0.0) > acc
            and r.get("cost", {}).get(device, {}).get("latency_ms", float("inf"))
            <= max_latency_ms]


def choice_notes(records: list[dict[str, Any]], chosen: dict[str, Any], device: str,
                 max_latency_ms: float, budgets: list[Any],
                 memory: Mapping[str, float] | None = None) -> list[str]:
    """What ``export --max-latency-ms`` says about the trials it did not pick: more accurate
    ones over the run's budgets, and front points just over the limit that show within it;
    only trials within the user's ``memory`` limits (``--max-flash-kb`` ...) are named."""
    mine = _memory_budgets(device, memory)
    records = [r for r in records if not any((v := b.violation(r)) is not None and v > 0
                                             for b in mine)]
    out = []
    if over := better_over_budget(records, chosen, device, max_latency_ms):
        out.append("note: more accurate within the limit, but over the run's budgets: " + ", ".join(
            f"trial {r['number']}" + (f" ({r['baseline']})" if r.get("baseline") else "")
            + f" {r['metrics']['accuracy']:.4f} at {r['cost'][device]['latency_ms']:.4g} ms"
            for r in over) + "; export one with --trial N")
    if near := shown_within(records, chosen, device, max_latency_ms, budgets):
        out.append("note: just over the limit, though shown within it when rounded: " + ", ".join(
            f"trial {p['number']} {p['metrics']['accuracy']:.4f} at "
            f"{p['cost'][device]['latency_ms']:.6g} ms" for p in near)
            + "; export one with --trial N")
    return out


def _memory_budgets(device: str, memory: Mapping[str, float] | None) -> list[Budget]:
    """``--max-flash-kb`` / ``--max-peak-sram-kb`` as budgets on ``device``."""
    return [Budget(profile=device, metric=m, limit=float(v)) for m, v in (memory or {}).items()]


def export_limits(device: str, max_latency_ms: float | None,
                  memory: Mapping[str, float] | None) -> list[Budget]:
    """The limits given to export (``--max-latency-ms``, ``--max-flash-kb``,
    ``--max-peak-sram-kb``) as budgets on ``device``."""
    latency = [] if max_latency_ms is None else [
        Budget(profile=device, metric="latency_ms", limit=float(max_latency_ms))]
    return [*latency, *_memory_budgets(device, memory)]


def stored_as_planned(rec: Mapping[str, Any]) -> bool:
    """Whether ``model.int8.onnx`` stores the trial's weights as its predicted Flash counts
    them: no sub-8-bit weights, no sparsity, no clustering (the int8 file writes those as
    dense int8, bigger than predicted).

    >>> stored_as_planned({"plan": {"layers": {"a": [{"kind": "quant", "bits": 8}]}}})
    True
    >>> stored_as_planned({"plan": {"layers": {"a": [{"kind": "quant", "bits": 4}]}}})
    False
    """
    for configs in (rec.get("plan") or {}).get("layers", {}).values():
        for c in configs:
            if c.get("kind") in ("sparsity", "cluster") or (
                    c.get("kind") == "quant" and int(c.get("bits", 8)) < 8):
                return False
    return True


def int8_file_alternative(records: list[dict[str, Any]], chosen: Mapping[str, Any],
                          device: str, limits: list[Budget]) -> dict[str, Any] | None:
    """The most accurate complete trial other than ``chosen`` that is stored as planned
    (``stored_as_planned``) and within ``limits`` (the run's budgets and export's own): what
    to export when the chosen trial's int8 file breaks them. Its number, accuracy and
    predicted cost on ``device``. None when ``chosen`` is stored as planned itself."""
    if stored_as_planned(chosen):
        return None
    ok = [r for r in records if r.get("state") == "complete"
          and r.get("number") != chosen.get("number") and stored_as_planned(r)
          and not any((v := b.violation(r)) is not None and v > 0 for b in limits)]
    best = max(ok, key=lambda r: r.get("metrics", {}).get("accuracy", 0.0), default=None)
    return None if best is None else {
        "trial": best["number"], "accuracy": best["metrics"]["accuracy"],
        **{k: v for k, v in best["cost"][device].items()
           if k in ("latency_ms", "flash_kb", "peak_sram_kb")}}
