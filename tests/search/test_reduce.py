"""Hardware-aware space reduction: format values no profile rewards are dropped, and only
those (see autocompress/search/reduce.py)."""
from __future__ import annotations

from pathlib import Path

from autocompress.config import load_config
from autocompress.search.baselines import baselines
from autocompress.search.setup import build_context
from autocompress.space.distributions import Fixed

from ..conftest import ROOT

SPACE = """\
version: 1
family: mobilenet_v2
base: {stem_channels: 8, stage_channels: [8, 16, 16], strides: [1, 2, 2], head_channels: 32}
arch: {width_mult: [0.5, 1.0], depth: [1, 2]}
rules:
  - match: classifier
    quant.bits: 8
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
            objectives: str = "[accuracy, PROFILE.latency_ms]", extra: str = ""):
    (tmp_path / "space.yaml").write_text(SPACE)
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
