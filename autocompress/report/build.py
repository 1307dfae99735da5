"""Write ``<run_dir>/report/``: ``index.html`` (self-contained: every PNG embedded), and
beside it one Pareto PNG per device (plus Flash and peak-SRAM ones), the per-layer heatmap,
the hypervolume trace, ``trials.csv`` and ``summary.md``. The only effectful part of the
report; ``summary_markdown`` is pure.

Example:
    >>> import tempfile, pathlib
    >>> recs = [{"number": 0, "state": "complete", "metrics": {"accuracy": 0.9},
    ...          "cost": {"mcu": {"latency_ms": 5.0, "flash_kb": 12.0}}}]
    >>> paths = write_report(pathlib.Path(tempfile.mkdtemp()), recs, budgets=[
    ...     Budget(profile="mcu", metric="latency_ms", limit=10.0)])
    >>> sorted(p.name for p in paths)  # doctest: +NORMALIZE_WHITESPACE
    ['hypervolume.png', 'index.html', 'pareto_mcu.png', 'pareto_mcu_flash.png', 'summary.md',
     'trials.csv']
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from autocompress.errors import RunDirError
from autocompress.pareto import Budget, Objective, ParetoFront, Record, as_record
from autocompress.report.info import (
    ParetoPlotInfo,
    TrialsTable,
    axis_label,
    cost_value,
    not_a_latency_front,
    pareto_plot_infos,
    unit_of,
)
from autocompress.report.layers import layer_heatmap_info
from autocompress.report.provenance import read_provenance
from autocompress.report.trace import hypervolume_infos
from autocompress.search.rundir import write_text
from autocompress.search.sampling import InfeasibleTrend, infeasible_trend, proposals


def _slug(profile: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", profile)


def _png_name(profile: str, suffix: str = "") -> str:
    return f"pareto_{_slug(profile)}{suffix}.png" if profile else f"pareto{suffix}.png"


def write_report(run_dir: Path | str, records: Sequence[Any],
                 objectives: Sequence[Objective] = (),
                 budgets: Sequence[Budget] = ()) -> list[Path]:
    """Write the report for ``records`` under ``run_dir/report`` and return the paths written.
    Works for any mix of states, including no complete trial at all (plots then say so)."""
    from autocompress.report.figures import render_heatmap, render_hypervolume
    from autocompress.report.page import build_page
    from autocompress.report.plots import render_pareto

    recs = [as_record(r) for r in records]
    out_dir = Path(run_dir) / "report"
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError("report is a file, not a folder", loc=str(out_dir),
                          hint="move it away: the report is written into that folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs: dict[str, Path] = {}
    for info in pareto_plot_infos(recs, objectives, budgets):
        pngs[f"pareto:{info.profile}"] = render_pareto(info, out_dir / _png_name(info.profile))
    for key, metric, suffix in (("flash", "flash_kb", "_flash"), ("sram", "peak_sram_kb", "_sram")):
        for info in pareto_plot_infos(recs, objectives, budgets, x_metric=metric):
            if info.profile and any(cost_value(r, info.profile, metric) is not None for r in recs):
                pngs[f"{key}:{info.profile}"] = render_pareto(
                    info, out_dir / _png_name(info.profile, suffix), size=(6.4, 5.0))
    layers = layer_heatmap_info(recs, objectives, budgets)
    if not layers.is_empty:
        pngs["layers"] = render_heatmap(layers, out_dir / "layers.png")
    hv = hypervolume_infos(recs, objectives, budgets)
    if hv:
        pngs["hypervolume"] = render_hypervolume(hv, out_dir / "hypervolume.png",
                                                 infeasible=_infeasible_trace(recs, budgets))
    written = list(pngs.values())
    csv_path = out_dir / "trials.csv"
    _write_csv(csv_path, TrialsTable.from_records(recs))
    md_path = out_dir / "summary.md"
    write_text(md_path, summary_markdown(recs, objectives, budgets))
    html_path = out_dir / "index.html"
    page = build_page(Path(run_dir).resolve().name, recs, objectives, budgets, pngs,
                      read_provenance(run_dir), run_dir=str(run_dir), hv=hv)
    write_text(html_path, page)
    return [*written, csv_path, md_path, html_path]


def _infeasible_trace(records: Sequence[Record], budgets: Sequence[Budget]
                      ) -> tuple[list[int], InfeasibleTrend] | None:
    """The sampler's over-budget proposals over time (None without budgets or proposals)."""
    numbers = [int(r["number"]) for r in proposals(records)]
    if not budgets or not numbers:
        return None
    return numbers, infeasible_trend(records)


def _write_csv(path: Path, table: TrialsTable) -> None:
    """csv module, not pandas: values are written exactly as recorded (ints stay ints
    even in columns with gaps; missing cells are empty)."""
    import csv
    import io

    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(table.columns)
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    write_text(path, buf.getvalue())


def _fmt(value: float | None, *, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f} %" if percent and 0.0 <= value <= 1.0 else f"{value:.3g}"


def summary_markdown(records: Sequence[Record], objectives: Sequence[Objective] = (),
                     budgets: Sequence[Budget] = ()) -> str:
    """Counts, budgets and, per device, the front (accuracy vs latency) as a Markdown table."""
    y_obj = next((o for o in objectives if o.sense == "max"), Objective.accuracy())
    states = Counter(str(r.get("state")) for r in records)
    lines = ["# Search report", "",
             f"{len(records)} trials: " + ", ".join(
                 f"{states.get(s, 0)} {s}" for s in ("complete", "infeasible", "failed", "pruned"))
             + " (pruned: stopped early)" * bool(states.get("pruned")), ""]
    if y_obj.name == "accuracy":
        lines += ["Accuracy is validation accuracy, the split the search optimizes "
                  "(`autocompress export` measures test accuracy).", ""]
    if budgets:
        lines += ["Budgets:", ""]
        lines += [f"- {b.profile}: {b.metric} ≤ {b.limit:g} {unit_of(b.metric)}".rstrip()
                  for b in budgets]
        trend = infeasible_trend(records).summary()
        lines += ["", f"{trend[0].upper()}{trend[1:]} (hypervolume.png, lower panel).", ""]
    percent = y_obj.name == "accuracy"
    for info in pareto_plot_infos(records, objectives, budgets):
        if not info.profile:
            lines += ["No trial has a cost estimate.", ""]
            continue
        p = info.profile
        front = ParetoFront.from_records(records, [y_obj, Objective.latency(p)], budgets)
        lines += [f"## {p}", "", f"![{p}]({_png_name(p)})", ""]
        if not front.points:
            lines += ["No feasible trials.", ""]
            continue
        if not_a_latency_front(objectives):    # the run's front is over other objectives
            run = ParetoFront.from_records(records, objectives, budgets)
            n = len(front.points)
            lines += [f"The front of {y_obj.name} vs {p} latency alone ({n} "
                      f"point{'s' * (n != 1)}); the run's front over {', '.join(o.name for o in objectives)} "
                      f"has {len(run.points)} (index.html lists them).", ""]
        lines += [f"| trial | {y_obj.name} | {axis_label('latency_ms')} | {axis_label('flash_kb')}"
                  f" | {axis_label('peak_sram_kb')} | plan_id |",
                  "|---:|---:|---:|---:|---:|---|"]
        for rec in front.points:
            name = f"{rec.get('number')}" + (f" ({rec['baseline']})" if rec.get("baseline") else "")
            lines.append(
                f"| {name} | {_fmt(y_obj.get(rec), percent=percent)} "
                + "".join(f"| {_fmt(cost_value(rec, p, k))} "
                          for k in ("latency_ms", "flash_kb", "peak_sram_kb"))
                + f"| `{rec.get('plan_id') or '-'}` |")
        lines.append("")
        lines += _baseline_lines(info, front, y_obj, percent)
    return "\n".join(lines)


def _baseline_lines(info: ParetoPlotInfo, front: ParetoFront, y_obj: Objective,
                    percent: bool) -> list[str]:
    """Each baseline against the best front point that is not slower than it: the baseline
    itself when it is on the front (no other point is both as fast and more accurate)."""
    if not info.baselines:
        return []
    out = ["| baseline | trial | " + y_obj.name + " | latency | best front point not slower "
           "| its " + y_obj.name + " | difference | speed-up |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lat = Objective.latency(info.profile)
    for b in info.baselines:
        b = replace(b, name=b.name + b.over_text(info.profile))
        rivals = [r for r in front.points if (lat.get(r) or float("inf")) <= b.x]
        best = max(rivals, key=lambda r: (y_obj.get(r) or 0.0, r.get("number") == b.number),
                   default=None)
        if best is None:
            out.append(f"| {b.name} | {b.number} | {_fmt(b.y, percent=percent)} | {b.x:.3g} ms "
                       "| - | - | - | - |")
            continue
        best_x = lat.get(best) or float("nan")
        which = "itself (on the front)" if best.get("number") == b.number else \
            f"{best.get('number')} ({best_x:.3g} ms)"
        gap = (y_obj.get(best) or 0.0) - (b.y or 0.0)     # a speed-up may cost accuracy
        diff = f"{100 * gap:+.2f} points" if percent else f"{gap:+.4g}"
        out.append(f"| {b.name} | {b.number} | {_fmt(b.y, percent=percent)} | {b.x:.3g} ms "
                   f"| {which} "
                   f"| {_fmt(y_obj.get(best), percent=percent)} | {diff} | {b.x / best_x:.2f}x |")
    return [*out, ""]
