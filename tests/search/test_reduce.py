"""Hardware-aware space reduction: format values no profile rewards are dropped, and only
those (see autocompress/search/reduce.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from autocompress.config import load_config
from autocompress.search.baselines import baselines
from autocompress.search.setup import build_context
from autocompress.space.distributions import Fixed

from ..conftest import ROOT

HEAD = """\
version: 1
family: mobilenet_v2
base: {stem_channels: 8, stage_channels: [8, 16, 16], strides: [1, 2, 2], head_channels: 32}
arch: {width_mult: [0.5, 1.0], depth: [1, 2]}
rules:
  - match: classifier
    quant.bits: 8
"""
SPACE = HEAD + """\
  - match: "re:.*"
    quant.bits: [2, 4, 8]
    sparsity.ratio: [0.0, 0.5]
"""
CONFIG = """\
name: reduce
data: digits
model: {space: space.yaml}
hardware:
  profiles: [PROFILE]
  budgets: {PROFILE: {BUDGET}}
search: {trials: 2, sampler: random, objectives: OBJECTIVES, threads: 1EXTRA}
"""


def context(tmp_path: Path, *, profile: str = "stm32f746", budget: str = "max_latency_ms: 50",
            objectives: str = "[accuracy, PROFILE.latency_ms]", extra: str = "",
            space: str = SPACE):
    (tmp_path / "space.yaml").write_text(space)
    body = (CONFIG.replace("BUDGET", budget).replace("OBJECTIVES", objectives)
            .replace("EXTRA", extra).replace("PROFILE", profile))
    (tmp_path / "config.yaml").write_text(body)
    return build_context(load_config(tmp_path / "config.yaml"))


def choices(ctx, knob: str) -> dict[str, tuple]:
    """Searched values per layer (the classifier, pinned at 8 bits by the space, is fixed)."""
    return {n: d.choices for n, d in ctx.rspace.dists.items()
            if n.startswith(knob + "/") and not isinstance(d, Fixed)}


def test_int8_only_mcu_with_latency_only_drops_sub_8_bit_and_sparsity(tmp_path):
    ctx = context(tmp_path)
    quant, sparse = choices(ctx, "quant"), choices(ctx, "sparsity.ratio")
    assert quant and all(c == (8,) for c in quant.values())       # 2/4 bit: int8 time there
    assert sparse and all(c == (0.0,) for c in sparse.values())   # no sparse kernels
    assert ctx.reduction.metrics == ("stm32f746.latency_ms",)
    assert set(ctx.reduction.dropped) == set(quant) | set(sparse)
    text = ctx.reduction.summary()
    assert "quant 2, 4 on" in text and "sparsity.ratio 0.5 on" in text
    assert "stm32f746.latency_ms" in text and "reduce_space: false" in text
    # arch knobs trade accuracy for cost: never reduced
    assert ctx.rspace.dists["arch/width_mult"].choices == (0.5, 1.0)


def test_a_budget_or_objective_on_flash_keeps_the_bits(tmp_path):
    for kw in ({"budget": "max_latency_ms: 50, max_flash_kb: 900"},
               {"objectives": "[accuracy, PROFILE.flash_kb]"}):
        ctx = context(tmp_path, **kw)
        assert all(c == (2, 4, 8) for c in choices(ctx, "quant").values()), kw
        assert all(c == (0.0, 0.5) for c in choices(ctx, "sparsity.ratio").values()), kw
        assert "stm32f746.flash_kb" in ctx.reduction.metrics


def test_sparsity_is_kept_where_the_device_has_sparse_kernels(tmp_path):
    text = (ROOT / "hardware_profiles" / "stm32f746.yaml").read_text()
    assert "sparse_kernels: false" in text
    (tmp_path / "mcu_sparse.yaml").write_text(
        text.replace("sparse_kernels: false", "sparse_kernels: true")
        .replace("name: stm32f746", "name: mcu_sparse"))
    ctx = context(tmp_path, profile="mcu_sparse")
    assert all(c == (0.0, 0.5) for c in choices(ctx, "sparsity.ratio").values())
    assert all(c == (8,) for c in choices(ctx, "quant").values())


def test_switched_off_and_baselines_outside_the_reduced_space(tmp_path):
    off = context(tmp_path, extra=", reduce_space: false")
    assert off.reduction is None
    assert all(c == (2, 4, 8) for c in choices(off, "quant").values())
    ctx = context(tmp_path)
    by_name = {b.name: b for b in baselines(ctx.rspace)}
    assert by_name["uniform-int8"].in_space
    int4 = by_name["uniform-int4"]                  # still the int4 baseline, from its values
    assert not int4.in_space and "is not among the choices [8]" in int4.note
    assert {v for k, v in int4.params.items() if k.startswith("quant/")} == {4}


def test_peak_sram_keeps_narrower_activations_and_act_bits_keep_equal_formats(tmp_path):
    # weight bits 32 (float activations) vs 8 (int8 activations) differ in peak SRAM only
    # somewhere between the references: 8 is kept; 4 deploys like 8 but for its weights
    rules = '  - match: "re:.*"\n    quant.bits: [4, 8, 32]\n'
    ctx = context(tmp_path, budget="max_latency_ms: 50, max_peak_sram_kb: 8", space=HEAD + rules)
    assert ctx.reduction.metrics == ("stm32f746.latency_ms", "stm32f746.peak_sram_kb")
    assert all(c == (8, 32) for c in choices(ctx, "quant").values())
    # act_bits 32 on an int8 layer deploys int8 activations, like 8: both kept
    rules = '  - match: "re:.*"\n    quant.bits: 8\n    quant.act_bits: [8, 32]\n'
    ctx = context(tmp_path, space=HEAD + rules)
    acts = choices(ctx, "quant.act_bits")
    assert acts and all(c == (8, 32) for c in acts.values())


def test_descending_choices_shared_rules_and_no_cost_metric(tmp_path):
    from autocompress.search.reduce import _owners, _references

    rules = '  - match: "re:.*"\n    quant.bits: [8, 4, 2]\n'
    ctx = context(tmp_path, space=HEAD + rules, extra=", reduce_space: false")
    largest = _references(ctx.rspace, _owners(ctx.rspace))[0]
    assert {v for k, v in largest.items() if k.startswith("quant/")} == {8}
    # one parameter for the 6 layers of stage 2 (absent in part at depth 1)
    rules = ('  - match: "re:stages\\\\.2\\\\..*"\n    share: true\n'
             '    quant.bits: [2, 4, 8]\n')
    ctx = context(tmp_path, space=HEAD + rules)
    (name,) = choices(ctx, "quant")
    assert ctx.rspace.dists[name].choices == (8,) and ctx.reduction.layers[name] == 6
    assert "on 6 layer(s)" in ctx.reduction.summary()
    ctx = context(tmp_path, budget="", objectives="[accuracy]")
    assert ctx.reduction.metrics == () and not ctx.reduction.dropped


def test_a_resumed_run_keeps_the_reduction_it_started_with(tmp_path):
    import json

    from autocompress.search.runner_optuna import run_search

    ctx = context(tmp_path)                          # writes space.yaml and config.yaml
    run = tmp_path / "run"
    run_search(load_config(tmp_path / "config.yaml"), run, quiet=True, baselines=False,
               trials=1, report=False)
    stored = (run / "space_reduction.json").read_text()
    assert json.loads(stored) == json.loads(json.dumps(ctx.reduction.to_dict()))
    resumed = load_config(run / "config.resolved.yaml")
    assert len(run_search(resumed, run, quiet=True, baselines=False, trials=2,
                          resume=True, report=False).records) == 2
    assert (run / "space_reduction.json").read_text() == stored
    # a run made before the reduction existed: full choices in its study, no file, no key
    context(tmp_path, extra=", reduce_space: false")
    old = tmp_path / "old"
    run_search(load_config(tmp_path / "config.yaml"), old, quiet=True, baselines=False,
               trials=1, report=False)
    text = (old / "config.resolved.yaml").read_text()
    assert "reduce_space: false" in text and not (old / "space_reduction.json").exists()
    (old / "config.resolved.yaml").write_text(text.replace("reduce_space: false", ""))
    env = json.loads((old / "env.json").read_text())
    del env["run_files_sha256"]                    # nor the run files' hashes, kept since
    (old / "env.json").write_text(json.dumps(env))
    res = run_search(load_config(old / "config.resolved.yaml"), old, quiet=True,
                     baselines=False, trials=2, resume=True, report=False)   # no 'dynamic value space'
    assert [r["state"] for r in res.records] == ["complete", "complete"]
    assert not (old / "space_reduction.json").exists()        # it resumes without one


def test_a_run_whose_reduction_file_is_gone_does_not_resume(tmp_path):
    """Its study was sampled from the reduced space: with the full one Optuna would fail
    mid-run ('dynamic value space'); refused up front instead."""
    from autocompress.errors import RunDirError
    from autocompress.search.runner_optuna import run_search

    context(tmp_path)
    run = tmp_path / "run"
    run_search(load_config(tmp_path / "config.yaml"), run, quiet=True, baselines=False,
               trials=1, report=False)
    (run / "space_reduction.json").unlink()
    with pytest.raises(RunDirError, match=r"space_reduction.json changed since the run started"):
        run_search(load_config(run / "config.resolved.yaml"), run, quiet=True, trials=2,
                   resume=True, report=False)


def test_a_damaged_reduction_file_is_one_clear_error(tmp_path):
    import pytest

    from autocompress.errors import ConfigError
    from autocompress.search.reduce import Reduction

    assert Reduction.load(tmp_path).dropped == {}            # none stored: nothing dropped
    (tmp_path / "space_reduction.json").write_text('{"dropped": [1]')
    with pytest.raises(ConfigError, match=r"space_reduction\.json.*unreadable space reduction"):
        Reduction.load(tmp_path)
