"""Assemble ``report/index.html`` from records, the PNGs already written beside it, and the
run's provenance. Pure apart from reading those PNGs (pandas is imported here, on first use).

Example:
    >>> recs = [{"number": 0, "state": "complete", "metrics": {"accuracy": 0.9},
    ...          "cost": {"mcu": {"latency_ms": 5.0, "std_ms": 0.5}}}]
    >>> html = build_page("demo", recs, [], [], {}, Provenance(run_name="demo"))
    >>> 'id="trials"' in html and "sortable" in html
    True
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from autocompress.pareto import Budget, Objective, ParetoFront, Record
from autocompress.report.html import Section, figure, key_values, render_page, simple_table
from autocompress.report.info import (
    axis_label,
    cost_value,
    not_a_latency_front,
    profiles_in,
    unit_of,
)
from autocompress.report.layers import layer_heatmap_info
from autocompress.report.panel import BLANK_MEANS
from autocompress.report.provenance import CONFIG_NAME, Provenance
from autocompress.report.trace import HypervolumeInfo, hypervolume_infos

STATES = ("complete", "infeasible", "failed", "pruned")
_COST_KEYS = (("latency_ms", "ms"), ("std_ms", "± ms"), ("flash_kb", "flash KB"),
              ("peak_sram_kb", "SRAM KB"))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%" if 0.0 <= v <= 1.0 else f"{v:.4g}"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def build_page(run_name: str, records: Sequence[Record], objectives: Sequence[Objective],
               budgets: Sequence[Budget], pngs: Mapping[str, Path],
               provenance: Provenance, run_dir: str = "RUN_DIR",
               hv: Sequence[HypervolumeInfo] | None = None) -> str:
    """``pngs`` maps a figure key (``pareto:<p>``, ``flash:<p>``, ``sram:<p>``, ``layers``,
    ``hypervolume``) to its file; missing keys are simply left out of the page. ``run_dir``
    goes into the export commands the page suggests; ``hv``: the hypervolume traces where
    the caller has them (over three or four objectives they take a while)."""
    y_obj = next((o for o in objectives if o.sense == "max"), Objective.accuracy())
    profiles = [p for p in profiles_in(records, budgets, objectives) if p]
    states = Counter(str(r.get("state")) for r in records)
    counts = ", ".join(f"{states.get(s, 0)} {s}" for s in STATES)
    budget_text = "; ".join(f"{b.profile} {axis_label(b.metric).split(' (')[0]} ≤ {b.limit:g} "
                            f"{unit_of(b.metric)}".rstrip() for b in budgets)
    subtitle = f"{len(records)} trials: {counts}" + (f" · budgets: {budget_text}"
                                                      if budget_text else "")
    hv = hypervolume_infos(records, objectives, budgets) if hv is None else hv
    sections = [
        Section(id="pareto", title="Pareto fronts",
                body=_lead(objectives, budgets, y_obj) + "".join(
                    _device(p, records, y_obj, budgets, pngs, run_dir) for p in profiles)
                or '<p class="note">No trial has a cost estimate.</p>'),
        Section(id="layers", title="Per-layer compression of the front", body=_layers(
            records, objectives, budgets, pngs)),
        Section(id="hypervolume", title="Hypervolume over trials", body='<div class="narrow">'
                + _fig(pngs, "hypervolume", _hv_caption(objectives)) + "</div>"),
        Section(id="trials", title="Trials", body=_trials(records, objectives, budgets)),
        Section(id="provenance", title="Provenance", body=_provenance(provenance)),
    ]
    return render_page(f"autocompress report: {run_name}", subtitle, sections,
                       cards=_cards(records, y_obj, budgets, profiles, hv, states))


def _hv_caption(objectives: Sequence[Objective]) -> str:
    """The hypervolume figure's caption: over each device's latency front, or the run's."""
    box = ("accuracy 0 to 1 × latency 0 to the budget, or the largest latency seen) "
           "dominated by each device's front of accuracy vs latency")
    if not_a_latency_front(objectives):
        costs = " × ".join(o.name for o in objectives if o.sense == "min")
        box = (f"accuracy 0 to 1 × {costs}, each from 0 to its budget, or the largest value "
               "seen) dominated by the run's front over its objectives")
    return (f"Share of the reference box ({box} after each trial; with budgets, below: the "
            "share of the sampler's proposals that were over budget (rejected before "
            "training), so a sampler that learns the budget shows it falling")


def _fig(pngs: Mapping[str, Path], key: str, caption: str) -> str:
    path = pngs.get(key)
    if path is None or not path.exists():
        return ""
    return figure(path.read_bytes(), path.name, caption)


def _cards(records: Sequence[Record], y_obj: Objective, budgets: Sequence[Budget],
           profiles: Sequence[str], hv: Sequence[Any], states: Counter[str]) -> list[tuple[str, str]]:
    stopped = f", {states['pruned']} stopped early" if states.get("pruned") else ""
    cards = [(f"{len(records)} trials", f"{states.get('complete', 0)} complete, "
              f"{states.get('infeasible', 0)} infeasible, {states.get('failed', 0)} failed"
              + stopped)]
    for p in profiles:
        front = ParetoFront.from_records(records, [y_obj, Objective.latency(p)], budgets)
        best = front.select()
        if best is not None:
            cards.append((f"{_pct(y_obj.get(best))} at {_num(cost_value(best, p, 'latency_ms'))}"
                          " ms", f"{p}: most accurate within budget (trial {best.get('number')})"))
            fastest = front.points[0]
            cards.append((f"{_num(cost_value(fastest, p, 'latency_ms'))} ms at "
                          f"{_pct(y_obj.get(fastest))}", f"{p}: fastest front point (trial "
                          f"{fastest.get('number')}), {len(front.points)} on the front"))
    cards += [(f"{100 * h.fractions[-1]:.1f}%", f"{h.name}: final hypervolume (share of "
               "the reference box)")
              for h in hv if h.values]
    return cards


def _lead(objectives: Sequence[Objective], budgets: Sequence[Budget], y_obj: Objective) -> str:
    """What the plots show, said once: validation accuracy, the run's budgets, the run's
    front when it has more than two objectives."""
    text = (f"{escape(y_obj.name)} = validation accuracy (the split the search optimizes; the "
            "export measures test accuracy). ")
    if budgets:
        text += ("A front holds only points within every budget of the run, every device's: a "
                 "point or baseline over any budget is drawn but kept off every front. ")
    if not_a_latency_front(objectives):
        names = ", ".join(o.name for o in objectives)
        text += (f"The run's front is over {escape(names)}; each device's plot and table show "
                 "the two-dimensional front of accuracy against that device's cost, the Trials "
                 "table's ✓ and the per-layer panel the run's. ")
    return f'<p class="note">{text.strip()}</p>'


def _device(profile: str, records: Sequence[Record], y_obj: Objective,
            budgets: Sequence[Budget], pngs: Mapping[str, Path], run_dir: str) -> str:
    front = ParetoFront.from_records(records, [y_obj, Objective.latency(profile)], budgets)
    parts = [f"<h3>{escape(profile)}</h3>",
             _fig(pngs, f"pareto:{profile}", f"{profile}: {y_obj.name} vs latency "
                  "(bars: ±1 std of the latency estimate: the measured spread of LUT entries, or the "
                  "profile's analytic rel_std where a layer is costed analytically; dashed: budget)")]
    side = [_fig(pngs, f"{k}:{profile}", f"{profile}: {y_obj.name} vs {name}; the points "
                 f"marked are the front of {y_obj.name} against this axis, which may differ "
                 "from the run's")
            for k, name in (("flash", "Flash (2- to 7-bit weights packed at their bit-width, "
                             "which needs sub-8-bit kernels; an int8-only flow stores them at 8 "
                             "bits: `autocompress export` prints that figure)"),
                            ("sram", "peak SRAM"))]
    if any(side):
        parts.append(f'<div class="grid2">{"".join(side)}</div>')
    if not front.points:
        return "".join(parts) + '<p class="note">No feasible trials on this device.</p>'
    cols = ["trial", y_obj.name, *(f"{n}" for _, n in _COST_KEYS), "baseline", "plan_id"]
    rows = [[str(r.get("number")), _pct(y_obj.get(r)),
             *(_num(cost_value(r, profile, k)) for k, _ in _COST_KEYS),
             str(r.get("baseline") or ""), str(r.get("plan_id") or "")] for r in front.points]
    if not any(row[-2] for row in rows):  # no baseline on the front: drop the empty column
        cols, rows = cols[:-2] + cols[-1:], [row[:-2] + row[-1:] for row in rows]
    parts.append(f"<p class=note>Front on {escape(profile)} ({len(rows)} points, fastest first)"
                 "</p>" + simple_table(cols, rows, table_id=f"front-{_slug(profile)}",
                                       left=(cols.index("plan_id"),)))
    best = front.select()
    if best is not None:
        parts.append(f'<p class="note">To ship a point: <code>autocompress export '
                     f'{escape(run_dir)} --trial {best.get("number")} --device {escape(profile)}'
                     f'</code> (the most accurate here), or <code>autocompress export '
                     f'{escape(run_dir)} --max-latency-ms X '
                     f'--device {escape(profile)}</code> for the most accurate under X ms; it '
                     "writes the ONNX files and measures test accuracy.</p>")
    return "".join(parts)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _layers(records: Sequence[Record], objectives: Sequence[Objective],
            budgets: Sequence[Budget], pngs: Mapping[str, Path]) -> str:
    info = layer_heatmap_info(records, objectives, budgets)
    if info.is_empty:
        return '<p class="note">No front point has a per-layer compression plan.</p>'
    kinds = ", ".join(p.label for p in info.panels)
    rows = info.sampled or f"the {len(info.rows)} front points"
    return (f'<p class="note">Rows: {rows} (fastest first); columns: '
            f"the {len(info.layers)} compressible layers in execution order; panels: {escape(kinds)}"
            ". “fp” = float weights and “0” = none removed, where the search chose so; "
            f"{BLANK_MEANS} (no rule sets that knob there; a layer pruned with another shows "
            "the share removed from it, 0 where its leader kept every channel); grey = layer absent.</p>"
            + _fig(pngs, "layers", "Per-layer compression of the front points"))


def _trials(records: Sequence[Record], objectives: Sequence[Objective],
            budgets: Sequence[Budget]) -> str:
    from autocompress.report.table import records_to_dataframe

    df = records_to_dataframe(records)
    if df.empty:
        return '<p class="note">No trials recorded.</p>'
    objs = list(objectives) or [Objective.accuracy()]
    on_front = {r.get("number") for r in ParetoFront.from_records(records, objs, budgets).points}
    df.insert(3, "front", ["✓" if n in on_front else "" for n in df["number"]])
    wanted = {"number": "trial", "state": "state", "baseline": "baseline", "front": "front",
              "metrics/accuracy": "accuracy %"}
    profiles = profiles_in(records, budgets, objectives)
    for p in profiles:
        prefix = f"{p} " if len(profiles) > 1 else ""
        wanted |= {f"cost/{p}/{k}": prefix + n for k, n in _COST_KEYS}
    wanted |= {"metrics/params": "params", "duration_s": "time s", "rung": "stopped at rung",
               "plan_id": "plan_id", "note": "note", "error": "error"}
    compact = df[[c for c in wanted if c in df.columns]].copy()
    for col in compact.columns:
        if col == "metrics/accuracy":
            compact[col] = (compact[col].astype(float) * 100).round(2)
        elif col.startswith("cost/") or col == "duration_s":
            compact[col] = compact[col].map(_sig3)
    compact = compact.rename(columns=wanted)
    compact, df = _blank_missing(compact), _blank_missing(df)
    compact = compact.drop(columns=[c for c in ("baseline", "stopped at rung", "note", "error")
                                    if c in compact and not compact[c].astype(bool).any()])
    for col in ("note", "error"):
        if col in compact:
            compact[col] = compact[col].map(
                lambda e: e if not isinstance(e, str) or len(e) <= 60 else e[:59] + "…")
    fmt = dict(index=False, border=0, na_rep="", float_format=_float, classes="sortable")
    return ('<p class="note">Click a column header to sort. All columns (parameters, '
            'constraints, cost provenance) are below and in '
            '<a href="trials.csv">trials.csv</a>.</p><div class="scroll">'
            + compact.to_html(table_id="trials-table", **fmt)
            + '</div><details><summary>All columns</summary><div class="scroll">'
            + df.to_html(table_id="trials-all", **fmt) + "</div></details>")


def _blank_missing(df: Any) -> Any:
    """None/NaN in text columns print as "None"/"NaN" in pandas HTML: make them empty."""
    df = df.copy()
    for col in df.columns:
        if getattr(df[col].dtype, "kind", "O") in "biufcmM":
            continue
        df[col] = df[col].map(lambda v: "" if v is None or v != v else v)
    return df


def _sig3(v: Any) -> Any:
    return float(f"{v:.3g}") if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _float(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


def _provenance(prov: Provenance) -> str:
    pairs = [("run", prov.run_name), ("seed", "-" if prov.seed is None else str(prov.seed)),
             *prov.details]
    parts = [key_values(pairs)]
    tables = []
    if prov.profile_hashes:
        tables.append("<div><h3>Device profiles (sha256)</h3>" + simple_table(
            ["profile", "sha256"], list(prov.profile_hashes.items()), sortable=False,
            left=(0, 1)) + "</div>")
    if prov.packages:
        tables.append("<div><h3>Package versions</h3>" + simple_table(
            ["package", "version"], list(prov.packages.items()), sortable=False,
            left=(0, 1)) + "</div>")
    if tables:
        parts.append(f'<div class="grid2">{"".join(tables)}</div>')
    if prov.config_text is not None:
        parts.append(f"<h3>{CONFIG_NAME}</h3><pre>{escape(prov.config_text)}</pre>")
    if prov.notes:
        parts.append('<p class="note">Not available: ' + escape("; ".join(prov.notes)) + "</p>")
    return "".join(parts)
