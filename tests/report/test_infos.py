"""Pure info objects behind the heatmap, the hypervolume trace and the provenance section."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autocompress.pareto import Budget, Objective
from autocompress.report.layers import execution_order, layer_heatmap_info, technique_of
from autocompress.report.provenance import read_provenance
from autocompress.report.trace import hypervolume_infos
from tests.report.sample import BUDGET, ORDER, planned, pr, q, rec, run_records

LAT = Objective.latency("mcu")
ACC = Objective.accuracy()


# ------------------------------------------------------------------ layer heatmap


def test_heatmap_rows_are_the_front_columns_the_layers_in_execution_order() -> None:
    info = layer_heatmap_info(run_records(), [ACC, LAT], [BUDGET])
    assert info.numbers == (1, 2, 4)  # fastest first; #0 is over budget, #3 dominated
    assert info.rows[0] == "#1  90.0%  3 ms"
    # "add" is costed but never planned; stages.0.1 exists only in #2 and #4 and still
    # lands between stages.0.0.dw and head (merged order, not alphabetical)
    assert info.layers == ("stem.conv", "stages.0.0.expand.conv", "stages.0.0.dw.conv",
                           "stages.0.1.expand.conv", "head.conv", "classifier")
    assert info.present[0] == (True, True, True, False, True, True)  # shallower model
    assert info.present[1] == (True,) * 6


def test_a_long_front_shows_evenly_spaced_rows_with_both_ends_and_says_so(tmp_path) -> None:
    """A 298-point front drew 298 rows (a 25000-pixel PNG, 2.5 minutes, 2 GB)."""
    from autocompress.report.figures import render_heatmap

    recs = [planned(n, "complete", 0.5 + n / 200, 1 + n / 10, {"stem.conv": [q(4)]})
            for n in range(90)]
    info = layer_heatmap_info(recs, [ACC, LAT], [], max_rows=30)
    assert info.front_size == 90 and len(info.rows) == 30
    assert info.numbers[0] == 0 and info.numbers[-1] == 89     # the front's two ends
    assert info.rows[0].startswith("#0  50.0%  1 ms")
    flash_obj = Objective(name="mcu.flash_kb", sense="min", path="cost.mcu.flash_kb")
    flash = layer_heatmap_info(recs, [ACC, flash_obj], [])
    assert flash.rows[0].endswith("KB")                          # not "kb"
    render_heatmap(info, tmp_path / "layers.png")


def test_heatmap_panels_known_and_unknown_kinds() -> None:
    info = layer_heatmap_info(run_records(), [ACC, LAT], [BUDGET])
    panels = {p.label: p for p in info.panels}
    assert list(panels) == ["weight bits", "prune ratio", "rank ratio", "cluster k",
                            "mystery strength"]  # known kinds in fixed order, unknown last
    bits = panels["weight bits"]
    assert bits.cells[0] == (4.0, 2.0, 4.0, None, None, 8.0)
    assert bits.off_value == 32.0 and not bits.higher_compresses_more
    assert panels["prune ratio"].cells[1] == (None, None, None, 0.25, None, None)
    assert panels["rank ratio"].cells[0][2] == 0.25
    assert panels["cluster k"].cells[0][4] == 16.0 and panels["cluster k"].off_value is None
    assert panels["mystery strength"].cells[1][4] == 0.7


def test_the_prune_panel_shows_the_channels_removed_where_the_record_says() -> None:
    """At width 0.5 a ratio of .25 keeps all 8 channels of stem.conv (rounded to 8), yet the
    heatmap showed ".25"."""
    prune = {"kind": "prune", "ratio": 0.25, "criterion": "l1"}
    new = planned(0, "complete", 0.9, 2.0, {"stem.conv": [prune], "head.conv": [prune]},
                  channels={"stem.conv": [8, 8], "head.conv": [48, 64]})
    info = layer_heatmap_info([new])
    assert [(p.label, p.cells) for p in info.panels] == [("channels pruned", ((0.0, 0.25),))]
    old = planned(0, "complete", 0.9, 2.0, {"stem.conv": [prune]})   # before the field
    assert [(p.label, p.cells) for p in layer_heatmap_info([old]).panels] == [
        ("prune ratio", ((0.25,),))]


def test_a_layer_pruned_with_another_shows_its_channels_removed() -> None:
    """A depthwise conv pruned with its expand conv (it has no prune entry of its own) was
    blank, which the caption calls "not applied"."""
    prune = {"kind": "prune", "ratio": 0.5, "criterion": "l1"}
    rec = planned(0, "complete", 0.9, 2.0, {"expand": [prune], "dw": [q(8)]},
                  channels={"expand": [12, 24], "dw": [12, 24]})
    info = layer_heatmap_info([rec])
    panels = {p.label: p for p in info.panels}
    at = {layer: k for k, layer in enumerate(info.layers)}
    assert set(at) == {"expand", "dw"}
    assert panels["channels pruned"].cells[0][at["dw"]] == 0.5
    assert panels["channels pruned"].cells[0][at["expand"]] == 0.5
    assert panels["weight bits"].cells[0][at["dw"]] == 8.0


def test_a_layer_pruned_with_an_unpruned_leader_shows_0_not_blank() -> None:
    """Where the expand conv's ratio was 0 its depthwise conv showed blank (the PNG's title:
    "not searched for that layer") beside an expand conv showing 0, while the next row
    showed the same depthwise conv pruned."""
    prune = {"kind": "prune", "ratio": 0.5, "criterion": "l1"}
    pruned = planned(0, "complete", 0.9, 2.0, {"expand": [prune], "dw": [q(8)]},
                     channels={"expand": [12, 24], "dw": [12, 24]})
    kept = planned(1, "complete", 0.95, 3.0, {"expand": [{**prune, "ratio": 0.0}],
                                               "dw": [q(8)]}, channels={})
    info = layer_heatmap_info([pruned, kept])
    panel = next(p for p in info.panels if p.label == "channels pruned")
    at = {layer: k for k, layer in enumerate(info.layers)}
    row = info.numbers.index(1)
    assert panel.shown(row, at["dw"]) == (0.0, "0")
    assert panel.shown(row, at["expand"]) == (0.0, "0")


def test_activation_bits_get_a_panel_only_when_set() -> None:
    a = planned(0, "complete", 0.9, 2.0, {"stem.conv": [{**q(4), "act_bits": 8}],
                                          "head.conv": [{**q(8), "act_bits": 32}]})
    info = layer_heatmap_info([a])
    panels = {p.label: p for p in info.panels}
    assert list(panels) == ["weight bits", "activation bits"]
    assert panels["activation bits"].cells == ((8.0, None),)  # 32 = float: not applied
    assert panels["activation bits"].off_value == 32.0
    only_float = planned(0, "complete", 0.9, 2.0, {"stem.conv": [{**q(4), "act_bits": 32}]})
    assert [p.label for p in layer_heatmap_info([only_float]).panels] == ["weight bits"]


def test_technique_of_is_graceful() -> None:
    assert technique_of(q(4)) == ("quant", "bits", 4.0)
    assert technique_of({"kind": "svd", "rank_ratio": 0.5}) == ("lowrank", "rank_ratio", 0.5)
    assert technique_of({"kind": "unstructured", "sparsity": 0.9}) == ("sparsity", "sparsity", 0.9)
    assert technique_of({"kind": "new", "flag": True, "name": "x"}) == ("new", "applied", 1.0)
    assert technique_of({"kind": "quant", "bits": "eight"}) is None  # malformed known kind
    assert technique_of({}) == ("?", "applied", 1.0)


def test_heatmap_tolerates_odd_plans_and_no_front() -> None:
    odd = planned(0, "complete", 0.9, 2.0, {"stem.conv": "not a list", "head.conv": [3, q(4)]})
    odd["cost"]["mcu"]["layers"] = None
    info = layer_heatmap_info([odd, rec(1, "complete", 0.8, {"mcu": 1.0}, plan=None)])
    assert info.layers == ("head.conv", "stem.conv")  # no execution order: natural sort
    assert [p.label for p in info.panels] == ["weight bits"]
    assert layer_heatmap_info([rec(0, "infeasible", None, {"mcu": 1.0})]).is_empty


def test_a_low_rank_layer_keeps_its_place_in_execution_order() -> None:
    """Its cost layers are its factors (``b.0``, ``b.1``): unmatched, it went after the
    classifier, though the page says the columns are in execution order."""
    lowrank = {"kind": "svd", "rank_ratio": 0.5}
    r = planned(0, "complete", 0.9, 2.0, {"a": [q(8)], "b": [q(8), lowrank], "fc": [q(8)]},
                order=["a", "b.0", "b.1", "fc"])
    assert layer_heatmap_info([r]).layers == ("a", "b", "fc")


def test_a_knob_searched_and_left_off_shows_0_and_one_not_searched_is_blank(tmp_path) -> None:
    """Sparsity 0, a prune ratio 0 and a layer no rule prunes were all drawn the same pale
    cell (the plan has no entry for any of them); the caption said "empty = not applied" and
    the PNG "darker = compressed more" only."""
    from autocompress.report.figures import _cmap, render_heatmap

    layers = {"stem.conv": [q(8)], "head.conv": [pr(0.5), q(4)],
              "classifier": [q(8), {"kind": "sparsity", "ratio": 0.5}]}
    r = planned(0, "complete", 0.9, 2.0, layers, order=["stem.conv", "head.conv", "classifier"],
                channels={"head.conv": [32, 64]})
    r["params"] = {"quant/stem.conv": 8, "quant/head.conv": 4,       # classifier: fixed at 8
                   "prune/stem.conv": 0.0, "prune/head.conv": 0.5,   # classifier: no rule
                   "sparsity.ratio/rule2": 0.5}                      # shared by two layers
    info = layer_heatmap_info([r], [ACC, LAT], [])
    assert info.layers == ("stem.conv", "head.conv", "classifier")
    panels = {p.label: p for p in info.panels}
    prune, sparse = panels["channels pruned"], panels["sparsity"]
    assert [prune.shown(0, j) for j in range(3)] == [(0.0, "0"), (0.5, ".50"), (None, "")]
    assert [sparse.shown(0, j) for j in range(3)] == [(None, ""), (None, ""), (0.5, ".50")]
    assert [panels["weight bits"].shown(0, j)[1] for j in range(3)] == ["8", "4", "8"]
    # a second front point leaves the shared sparsity off: its 0 is shown where it applies
    r2 = planned(1, "complete", 0.95, 3.0, {"classifier": [q(32)]},
                 order=["stem.conv", "head.conv", "classifier"])
    r2["params"] = {"quant/stem.conv": 32, "prune/stem.conv": 0.0, "sparsity.ratio/rule2": 0.0}
    info = layer_heatmap_info([r, r2], [ACC, LAT], [])
    panels = {p.label: p for p in info.panels}
    assert panels["sparsity"].shown(1, 2) == (0.0, "0")
    assert panels["sparsity"].shown(1, 0) == (None, "")
    bits = panels["weight bits"]
    assert [bits.shown(1, j) for j in range(3)] == [(32.0, "fp"), (None, ""), (32.0, "fp")]
    # records without params (older ones): every unapplied cell is the off value, as before
    del r["params"], r2["params"]
    old = {p.label: p for p in layer_heatmap_info([r, r2], [ACC, LAT], []).panels}
    assert old["channels pruned"].searched == () and old["channels pruned"].shown(0, 2) == (0.0, "0")
    # the least compressed colour stays tinted, apart from the white of a blank cell
    assert min(_cmap(0, True)(0.0)[:3]) < 0.95 and min(_cmap(0, False)(1.0)[:3]) < 0.95
    render_heatmap(info, tmp_path / "layers.png")


def test_the_heatmaps_parameter_names_are_the_spaces() -> None:
    from autocompress.report.panel import KNOB_PARAMS
    from autocompress.space.knobs import param_prefix

    assert {k: param_prefix(f"{k[0]}.{k[1]}") for k in KNOB_PARAMS} == KNOB_PARAMS


def test_execution_order_merges_and_survives_cycles() -> None:
    assert execution_order([ORDER[:3], [ORDER[0], ORDER[2], ORDER[5]]]) == [
        ORDER[0], ORDER[1], ORDER[2], ORDER[5]]
    assert execution_order([["a", "b"], ["b", "a"]]) == ["a", "b"]
    assert execution_order([]) == []


# ------------------------------------------------------------------ hypervolume


def test_hypervolume_against_the_budget() -> None:
    (info,) = hypervolume_infos(run_records(), [ACC, LAT], [BUDGET])
    assert info.reference == (0.0, 10.0) and info.reference_source == "budget"
    assert info.numbers == (0, 1, 2, 3, 4, 5, 6)
    # 0: over budget -> 0; 1: 0.9 x (10-3); 2: + 0.03 x (10-6); 3: dominated; 4: + 0.03 x 0.5
    expected = [0.0, 6.3, 6.42, 6.42, 6.435, 6.435, 6.435]
    assert info.values == pytest.approx(expected)
    assert info.front_sizes == (0, 1, 2, 2, 3, 3, 3)
    assert info.fractions[-1] == pytest.approx(0.6435)
    assert "ref 10 ms, budget" in info.label


def test_hypervolume_without_budget_uses_the_largest_latency_and_is_monotone() -> None:
    recs = run_records()[::-1]  # order of the list does not matter: trial number does
    (info,) = hypervolume_infos(recs)
    assert info.reference == (0.0, 14.0) and info.reference_source == "max seen"
    assert list(info.values) == sorted(info.values)
    # the baseline's stored constraint (12 ms > 10 ms) keeps it out even without budgets
    assert info.values[:2] == pytest.approx((0.0, 0.9 * (14.0 - 3.0)))


def test_hypervolume_per_device_and_empty() -> None:
    recs = [rec(0, "complete", 0.9, {"mcu": 2.0, "phone": 1.0})]
    infos = hypervolume_infos(recs, (), [BUDGET, Budget(profile="phone", metric="flash_kb",
                                                         limit=9.0)])
    assert [(i.profile, i.reference) for i in infos] == [("mcu", (0.0, 10.0)),
                                                        ("phone", (0.0, 1.0))]
    assert infos[1].values == (0.0,)  # the only point sits on the reference latency
    assert hypervolume_infos([]) == []


def _costed(number: int, acc: float, lat: float, flash: float) -> dict:
    return {"number": number, "state": "complete", "metrics": {"accuracy": acc},
            "cost": {"mcu": {"latency_ms": lat, "flash_kb": flash}}}


FLASH = Objective(name="mcu.flash_kb", sense="min", path="cost.mcu.flash_kb")
# on latency trial 0 beats 1, and 2 beats both; on Flash all three are on the front
COSTED = [_costed(0, 0.9, 2.0, 40.0), _costed(1, 0.8, 5.0, 10.0), _costed(2, 0.95, 1.0, 50.0)]


def test_hypervolume_over_the_runs_objectives_where_its_cost_is_flash() -> None:
    """objectives [accuracy, mcu.flash_kb]: the trace was accuracy vs latency, a front the
    run never searched for."""
    flash_budget = Budget(profile="mcu", metric="flash_kb", limit=60.0)
    (info,) = hypervolume_infos(COSTED, [ACC, FLASH], [flash_budget])
    assert info.profile == "" and info.objectives == ("accuracy", "mcu.flash_kb")
    assert info.reference == (0.0, 60.0) and info.reference_source == "budget"
    # 0: 0.9 x (60-40); 1: 0.8 x 50 + 0.1 x 20; 2: + 0.05 x 10
    assert info.values == pytest.approx((18.0, 42.0, 42.5))
    assert info.front_sizes == (1, 2, 3) and info.fractions[-1] == pytest.approx(42.5 / 60)
    assert info.name == "accuracy vs mcu.flash_kb"
    assert info.label == "accuracy vs mcu.flash_kb (ref 60 KB, budget)"
    (lat,) = hypervolume_infos(COSTED, [ACC, Objective.latency("mcu")], [flash_budget])
    assert lat.profile == "mcu" and lat.front_sizes == (1, 1, 1)     # unchanged there


def test_the_hypervolume_trace_is_computed_only_when_the_front_changes(monkeypatch) -> None:
    """One volume per trial: over three or four objectives each takes a while, and most
    trials leave the front as it was."""
    from autocompress.pareto import ParetoFront

    calls = []
    volume = ParetoFront.hypervolume
    monkeypatch.setattr(ParetoFront, "hypervolume",
                        lambda self, ref: calls.append(len(self.values)) or volume(self, ref))
    worse = [_costed(n, 0.5, 9.0, 90.0) for n in range(3, 9)]     # dominated: no change
    (info,) = hypervolume_infos([*COSTED, *worse], [ACC, Objective.latency("mcu"), FLASH])
    assert calls == [1, 2, 3] and len(info.values) == 9
    assert info.values[3:] == (info.values[2],) * 6


def test_hypervolume_over_three_objectives_is_the_runs_front() -> None:
    (info,) = hypervolume_infos(COSTED, [ACC, Objective.latency("mcu"), FLASH])
    assert info.objectives == ("accuracy", "mcu.latency_ms", "mcu.flash_kb")
    assert info.reference == (0.0, 5.0, 50.0) and info.reference_source == "max seen"
    # only trial 0 beats the reference on every axis (1 and 2 sit on it): 0.9 x 3 x 10
    assert info.values == pytest.approx((27.0, 27.0, 27.0))
    assert info.fractions[-1] == pytest.approx(27.0 / 250.0)
    assert info.label == ("accuracy vs mcu.latency_ms, mcu.flash_kb (ref 5 ms max seen, "
                          "50 KB max seen)")


# ------------------------------------------------------------------ provenance


def test_provenance_read_from_the_run_dir(tmp_path: Path) -> None:
    (tmp_path / "config.resolved.yaml").write_text("name: x\nseed: 11\n")
    env = {"seed": 5, "git_rev": "abc123", "python": "3.11.7",
           "packages": {"torch": "2.13.0", "optuna": "5.0.0"},
           "profiles_sha256": {"mcu": "e" * 64}}
    (tmp_path / "env.json").write_text(json.dumps(env))
    prov = read_provenance(tmp_path)
    assert prov.seed == 5 and prov.config_text == "name: x\nseed: 11\n"
    assert list(prov.packages) == ["optuna", "torch"] and prov.profile_hashes == {"mcu": "e" * 64}
    assert ("git revision", "abc123") in prov.details and prov.notes == ()


def test_provenance_tolerates_missing_and_broken_files(tmp_path: Path) -> None:
    prov = read_provenance(tmp_path)
    assert prov.config_text is None and prov.seed is None and prov.packages == {}
    assert prov.notes == ("config.resolved.yaml not found", "env.json not found")
    (tmp_path / "env.json").write_text("{not json")
    (tmp_path / "config.resolved.yaml").write_text("seed: 3  # from the CLI\n")
    prov = read_provenance(tmp_path)
    assert prov.seed == 3  # falls back to the config
    assert prov.notes and prov.notes[0].startswith("env.json is not valid JSON")
