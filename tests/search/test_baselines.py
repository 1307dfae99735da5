from __future__ import annotations

import pytest

from autocompress.config import load_config
from autocompress.search.baselines import baselines, outside_reason
from autocompress.search.setup import build_context
from autocompress.search.study import storage_for

from ..conftest import TINY, write_config

FULL = TINY.replace("sampler: random}", "sampler: random, reduce_space: false}")


@pytest.fixture(scope="module")
def rspace(tmp_path_factory):
    """The space as written: 2/4/8 bits searched (see test_reduce for the reduced one)."""
    return build_context(load_config(write_config(tmp_path_factory.mktemp("b"), FULL))).rspace


def test_every_baseline_is_built_and_named(rspace):
    by_name = {b.name: b for b in baselines(rspace)}
    assert list(by_name) == ["uniform-int8", "fp32", "uniform-int4", "sparse-25", "sparse-50"]
    int8, int4 = by_name["uniform-int8"].params, by_name["uniform-int4"].params
    assert {v for k, v in int8.items() if k.startswith("quant/")} == {8}
    assert {v for k, v in int4.items() if k.startswith("quant/")} == {4}
    assert {v for k, v in by_name["sparse-50"].params.items() if k.startswith("prune/")} == {0.5}
    for b in by_name.values():                       # same (largest) student everywhere
        assert {k: v for k, v in b.params.items() if k.startswith("arch/")} == \
            {k: v for k, v in int8.items() if k.startswith("arch/")}


def test_in_space_baselines_are_enqueueable_and_fp32_is_honestly_outside(rspace):
    by_name = {b.name: b for b in baselines(rspace)}
    for name in ("uniform-int8", "uniform-int4", "sparse-25", "sparse-50"):
        assert by_name[name].in_space and outside_reason(rspace, by_name[name].params) is None
    fp32 = by_name["fp32"]                            # the space offers 2/4/8 bits only
    assert not fp32.in_space and "outside the searched space" in fp32.note
    assert fp32.params["quant/classifier"] == 32      # even the layer the space pins at 8
    plan = rspace.to_plan(fp32.params)
    assert {c.bits for fqn, cfgs in plan.layers.items() for c in cfgs
            if hasattr(c, "bits")} == {32}
    assert "classifier=8" in by_name["uniform-int4"].note


def test_search_records_baselines(tmp_path):
    import optuna

    from autocompress.search.runner_optuna import run_search

    body = TINY.replace("trials: 3", "trials: 1")
    cfg = load_config(write_config(tmp_path, body))
    result = run_search(cfg, tmp_path / "run", quiet=True, report=False)
    by_base = {r["baseline"]: r for r in result.records}
    assert set(by_base) == {"uniform-int8", "fp32", "uniform-int4", "sparse-25", "sparse-50",
                            None}
    assert all(by_base[b]["state"] == "complete" for b in by_base if b)
    assert by_base["fp32"]["note"].startswith("outside the searched space")
    assert set(by_base["fp32"]["params"].values()) >= {32}         # evaluated as given
    assert by_base["uniform-int4"]["params"] == dict(
        {b.name: b for b in baselines(build_context(cfg).rspace)}["uniform-int4"].params)
    study = optuna.load_study(study_name="tiny", storage=storage_for(tmp_path / "run"))
    states = {t.user_attrs.get("baseline"): t.state.name for t in study.trials}
    assert states["fp32"] == "FAIL" and states["uniform-int8"] == "COMPLETE"


def test_baselines_compress_the_reference_student(rspace):
    """The shipped space names no ``reference``: the largest student. With one, the knobs it
    sets take its values (one for all stages, or one per stage), the others their largest."""
    import dataclasses

    arch = {k: v for k, v in baselines(rspace)[0].params.items() if k.startswith("arch/")}
    assert arch == {k: max(rspace.dists[k].values()) for k in arch}
    assert {v for k, v in arch.items() if k.startswith("arch/kernel/")} == {5}
    per_stage = dataclasses.replace(rspace, space=dataclasses.replace(
        rspace.space, reference={"kernel": [5, 3, 5], "depth": 1}))
    arch = baselines(per_stage)[0].params
    assert [arch[f"arch/kernel/{s}"] for s in range(3)] == [5, 3, 5]
    assert [arch[f"arch/depth/{s}"] for s in range(3)] == [1, 1, 1]
    assert arch["arch/expand/0"] == 4


def test_a_reference_written_in_the_space_reaches_the_baselines(tmp_path):
    from ..conftest import SPACE

    space = tmp_path / "space.yaml"
    space.write_text(SPACE.read_text().replace(
        "expand: [2, 4]\n", "expand: [2, 4]\nreference: {kernel: 3, depth: [1, 2, 2]}\n"))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(FULL.replace("SPACE", str(space)))
    rspace = build_context(load_config(cfg)).rspace
    for b in baselines(rspace):
        assert [b.params[f"arch/kernel/{s}"] for s in range(3)] == [3, 3, 3]
        assert [b.params[f"arch/depth/{s}"] for s in range(3)] == [1, 2, 2]
        assert b.params["arch/width_mult"] == 1.0 and b.params["arch/expand/2"] == 4


PARTIAL = """\
version: 1
family: mobilenet_v2
base: {stem_channels: 8, stage_channels: [8, 16, 16], strides: [1, 2, 2], head_channels: 32}
rules:
  - match: "re:.*expand\\\\.conv"
    quant.bits: [4, 8]
  - match: "re:.*project\\\\.conv"
    sparsity.ratio: [0.0, 0.5]
  - match: head.conv
    skip: true
"""


def test_uniform_baselines_quantize_every_layer_a_rule_does_not_skip(tmp_path):
    """With quant rules on some layers only, 'uniform-int8' left the rest float (the
    walkthrough's ResNet: 9 of 16 layers, 1295 KB Flash against 1865 KB for fp32)."""
    from .test_reduce import context

    ctx = context(tmp_path, space=PARTIAL, extra=", reduce_space: false")
    rs = ctx.rspace
    by_name = {b.name: b for b in baselines(rs)}
    for name, bits in (("uniform-int8", 8), ("uniform-int4", 4)):
        plan = rs.to_plan(by_name[name].params)
        quant = {f: c.bits for f, cfgs in plan.layers.items() for c in cfgs if c.kind == "quant"}
        present = set(rs.layer_names(plan.arch))
        assert set(quant) == {f for f in rs.quant_layers if f in present}
        assert set(quant.values()) == {bits} and "head.conv" not in quant   # skipped
        assert not by_name[name].in_space
        assert "no rule quantizes stem.conv; a uniform baseline does" in by_name[name].note
    fp32 = rs.to_plan(by_name["fp32"].params)
    assert {c.bits for cfgs in fp32.layers.values() for c in cfgs if c.kind == "quant"} <= {32}
