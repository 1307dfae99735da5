"""A profile's own SRAM and Flash (``device.sram_kb`` / ``flash_kb``) are budgets where the
config sets none (``autocompress/budgets.py``): they were read and never used, so a search
on a 128 KB-SRAM chip put 300 KB candidates on its front."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from autocompress.budgets import budgets_of
from autocompress.cli import main
from autocompress.config import load_config
from autocompress.config_checks import check_new_run
from autocompress.errors import ConfigError
from autocompress.pareto import Budget
from autocompress.search.objective import constraints_of, cost_plan
from autocompress.search.reduce import check_budget_reachable
from autocompress.search.study import cheapest_params

from ..conftest import ROOT
from .test_reduce import choices, context


def small_mcu(tmp_path: Path, flash_kb: float, sram_kb: float = 320) -> str:
    """stm32f746 with other memory sizes, beside the config, as 'small_mcu'."""
    text = (ROOT / "hardware_profiles" / "stm32f746.yaml").read_text()
    text = re.sub(r"^name: .*$", "name: small_mcu", text, count=1, flags=re.M)
    text = text.replace("sram_kb: 320, flash_kb: 1024", f"sram_kb: {sram_kb}, flash_kb: {flash_kb}")
    assert f"flash_kb: {flash_kb}" in text
    (tmp_path / "small_mcu.yaml").write_text(text)
    return "small_mcu"


def test_the_device_flash_is_a_budget_and_keeps_the_bits_only_where_it_binds(tmp_path):
    # the space's largest candidate (8-bit weights) needs 16.7 KB, its cheapest 1.9 KB
    ctx = context(tmp_path, profile=small_mcu(tmp_path, flash_kb=10))
    assert ctx.budgets["small_mcu"] == {"max_peak_sram_kb": 320.0, "max_flash_kb": 10.0,
                                        "max_latency_ms": 50}
    assert set(budgets_of(ctx.cfg)) >= {Budget(profile="small_mcu", metric="flash_kb", limit=10.0),
                                        Budget(profile="small_mcu", metric="peak_sram_kb", limit=320.0)}
    quant = choices(ctx, "quant")
    assert quant and all(c == (2, 4, 8) for c in quant.values())   # they buy Flash here
    largest = {n: (max(d.choices) if hasattr(d, "choices") else d.value)
               for n, d in ctx.rspace.dists.items()}
    _, costs, constraints = cost_plan(ctx, ctx.rspace.to_plan(largest), 0)
    assert constraints["small_mcu.max_flash_kb"] > 0                  # rejected: no fit
    assert constraints_of(ctx, costs) == constraints

    (tmp_path / "roomy").mkdir()
    roomy = context(tmp_path / "roomy", profile=small_mcu(tmp_path / "roomy", flash_kb=100))
    assert roomy.budgets["small_mcu"]["max_flash_kb"] == 100.0
    assert all(c == (8,) for c in choices(roomy, "quant").values())  # every candidate fits


def test_a_chip_too_small_for_the_cheapest_candidate_is_refused_naming_its_size(tmp_path):
    ctx = context(tmp_path, profile=small_mcu(tmp_path, flash_kb=1))
    with pytest.raises(ConfigError, match=r"small_mcu.max_flash_kb needs 1.87\d* > limit 1 "
                       r"\(the device's own size\)") as info:
        check_budget_reachable(ctx)
    assert "allow smaller models" in str(info.value)
    assert cheapest_params(ctx.rspace)


def test_a_budget_looser_than_the_device_is_refused(tmp_path, capsys):
    ctx = context(tmp_path, profile=small_mcu(tmp_path, flash_kb=100),
                  budget="max_flash_kb: 200")
    with pytest.raises(ConfigError, match=r"hardware.budgets.small_mcu.max_flash_kb: 200 KB is "
                       r"more than the device has \(small_mcu: device.flash_kb 100 KB\)"):
        check_new_run(ctx.cfg)
    assert main(["search", str(tmp_path / "config.yaml"), "--run-dir",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "more than the device has" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
    tighter = load_config(tmp_path / "config.yaml", ["hardware.budgets.small_mcu.max_flash_kb=50"])
    check_new_run(tighter)                                            # tighter: fine
    assert Budget(profile="small_mcu", metric="flash_kb", limit=50.0) in budgets_of(tighter)


def test_devices_without_sizes_get_no_memory_budget(tmp_path):
    ctx = context(tmp_path, profile="pixel4")
    assert ctx.budgets == {"pixel4": {"max_latency_ms": 50}}


SPARSE_ONLY = """\
version: 1
family: mobilenet_v2
base: {stem_channels: 8, stage_channels: [8, 16, 16], strides: [1, 2, 2], head_channels: 32}
rules:
  - match: "re:.*\\\\.(expand|project)\\\\.conv"
    sparsity.ratio: [0.0, 0.5]
    cluster.k: [0, 16]
"""


@pytest.mark.parametrize("profile", ["stm32f746", "pixel4", "jetson_nano"])
def test_sparsity_or_clustering_alone_keeps_the_device_format(tmp_path, profile):
    """A layer with no quant rule runs in the device's native format; sparsity or clustering
    on it made it fp32 (on the MCU: 1.6 -> 2.8 ms, 11.6 -> 16.4 KB Flash for 'compressing')."""
    ctx = context(tmp_path, profile=profile, space=SPARSE_ONLY, budget="max_latency_ms: 500",
                  extra=", reduce_space: false")
    names = {k: n for n in ctx.rspace.dists for k in ("sparsity.ratio", "cluster.k")
             if n.startswith(k + "/")}
    costs = {}
    for knob, value in (("none", None), ("sparsity.ratio", 0.5), ("cluster.k", 16)):
        params = {n: d.choices[0] for n, d in ctx.rspace.dists.items() if hasattr(d, "choices")}
        if value is not None:
            params.update({n: value for n in ctx.rspace.dists if n.startswith(knob + "/")})
        _, c, _ = cost_plan(ctx, ctx.rspace.to_plan(params), 0)
        costs[knob] = c[profile]
    assert names
    dense, sparse, clustered = costs["none"], costs["sparsity.ratio"], costs["cluster.k"]
    for compressed in (sparse, clustered):
        assert compressed.latency_ms <= dense.latency_ms * 1.001
        assert compressed.flash_kb <= dense.flash_kb
        assert compressed.peak_sram_kb <= dense.peak_sram_kb


def test_a_run_dir_keeps_the_device_limits_it_was_searched_with(tmp_path):
    """report, export and resume judge a run by the limits its search started with: none
    for a run made before device limits existed (it would be judged by budgets it never had,
    and a resume refused), the recorded ones otherwise."""
    import json

    from autocompress.budgets import DEVICE_FILE, RUN_CONFIG, config_device_limits

    ctx = context(tmp_path, profile=small_mcu(tmp_path, flash_kb=10))
    (tmp_path / RUN_CONFIG).write_text((tmp_path / "config.yaml").read_text())
    old = load_config(tmp_path / RUN_CONFIG)
    assert config_device_limits(old) == {}
    assert budgets_of(old) == [Budget(profile="small_mcu", metric="latency_ms", limit=50.0)]
    (tmp_path / DEVICE_FILE).write_text(json.dumps(dict(ctx.device_limits)))
    assert config_device_limits(load_config(tmp_path / RUN_CONFIG)) == \
        {"small_mcu": {"max_peak_sram_kb": 320.0, "max_flash_kb": 10.0}}
