"""One conformance suite over every registered technique handler (DESIGN.md habit 8)."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest
import torch
from torch import nn

from autocompress.compress import (
    ClusterConfig,
    CompressionPlan,
    LowRankConfig,
    PruneConfig,
    QuantConfig,
    SparsityConfig,
    TechniqueConfig,
    apply_plan,
    bake,
    stored_bytes,
    weight_bits,
)
from autocompress.compress.actquant import act_bits
from autocompress.compress.plan import CONFIG_TYPES
from autocompress.compress.registry import ORDER, handlers_in_order
from autocompress.models import StudentArch, build_student

ARCH = StudentArch(width_mult=1.0, depths=(1, 2, 1))
X = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
EXPAND = "stages.1.0.expand.conv"
Layers = dict[str, tuple[TechniqueConfig, ...]]


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach() for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}


def _check_prune(model: nn.Module) -> None:
    assert model.stem.conv.out_channels == 8 and model.get_submodule(EXPAND).out_channels == 48


def _check_lowrank(model: nn.Module) -> None:
    head = model.head.conv
    assert isinstance(head, nn.Sequential) and [m.out_channels for m in head] == [8, 64]
    assert isinstance(model.classifier, nn.Sequential)


def _check_sparse(ratio: float, names: tuple[str, ...]) -> Callable[[nn.Module], None]:
    def check(model: nn.Module) -> None:
        w = _weights(model)
        zeros = sum(int((w[n] == 0).sum()) for n in names)
        assert zeros >= round(ratio * sum(w[n].numel() for n in names)) - len(names)
    return check


def _check_cluster(model: nn.Module) -> None:
    w = _weights(model)["head.conv"]
    assert torch.unique(w[w != 0]).numel() <= 8


def _check_quant(bits: int) -> Callable[[nn.Module], None]:
    def check(model: nn.Module) -> None:
        for row in _weights(model)["head.conv"]:
            assert torch.unique(row).numel() <= 2 ** bits
    return check


# name -> (plan layers, property that must hold on the baked model)
CASES: dict[str, tuple[Layers, Callable[[nn.Module], None]]] = {
    "prune-l1": ({"stem.conv": (PruneConfig(ratio=0.5),),
                  EXPAND: (PruneConfig(ratio=0.25),)}, _check_prune),
    "prune-l2": ({"stem.conv": (PruneConfig(ratio=0.5, criterion="l2"),),
                  EXPAND: (PruneConfig(ratio=0.25, criterion="l2"),)}, _check_prune),
    "prune-taylor": ({"stem.conv": (PruneConfig(ratio=0.5, criterion="taylor"),),
                      EXPAND: (PruneConfig(ratio=0.25, criterion="taylor"),)}, _check_prune),
    "lowrank": ({"head.conv": (LowRankConfig(rank_ratio=0.25),),
                 "classifier": (LowRankConfig(rank_ratio=0.5),)}, _check_lowrank),
    "sparsity-layer": ({"head.conv": (SparsityConfig(ratio=0.75),)},
                       _check_sparse(0.75, ("head.conv",))),
    "sparsity-global": ({"head.conv": (SparsityConfig(ratio=0.6, scope="global"),),
                         EXPAND: (SparsityConfig(ratio=0.6, scope="global"),)},
                        _check_sparse(0.6, ("head.conv", EXPAND))),
    "cluster": ({"head.conv": (ClusterConfig(k=8),)}, _check_cluster),
    "quant-w4-qat": ({"head.conv": (QuantConfig(bits=4),)}, _check_quant(4)),
    "quant-w3-ptq-tensor-asym-mse": ({"head.conv": (QuantConfig(
        bits=3, per_channel=False, symmetric=False, mode="ptq", calib="mse"),)}, _check_quant(3)),
    "quant-act6": ({"head.conv": (QuantConfig(bits=8, act_bits=6, act_calib="percentile"),),
                    "classifier": (QuantConfig(bits=8, act_bits=8),)},
                   lambda m: None),
}


def _student(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_student(ARCH, in_channels=1, num_classes=10)


def _apply(plan: CompressionPlan, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return apply_plan(_student(seed), plan, X[:1], round_to=4, ignored=("classifier",),
                      calibration=X)


def _train_step(model: nn.Module) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    nn.functional.cross_entropy(model(X), torch.arange(6) % 10).backward()
    opt.step()
    model.eval()


def test_every_config_kind_has_a_handler_in_order_and_a_case():
    assert set(CONFIG_TYPES) == set(ORDER) == {k for k, _ in handlers_in_order()}
    covered = {c.kind for layers, _ in CASES.values() for cfgs in layers.values() for c in cfgs}
    assert covered == set(CONFIG_TYPES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_shape_and_property(name):
    layers, check = CASES[name]
    model = _apply(CompressionPlan(arch=ARCH.to_dict(), layers=layers))
    assert model(X).shape == (6, 10)
    check(bake(copy.deepcopy(model)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_json_replays_on_a_fresh_model(name):
    plan = CompressionPlan(arch=ARCH.to_dict(), layers=CASES[name][0])
    trained = _apply(plan, seed=0)
    _train_step(trained)
    baked = bake(trained)
    state = baked.state_dict()
    again = CompressionPlan.from_dict(json.loads(plan.to_json()))
    assert again == plan and again.plan_id == plan.plan_id
    fresh = bake(_apply(again, seed=7))                     # different init, same plan
    fresh.load_state_dict(state)                            # strict: same names and shapes
    torch.testing.assert_close(fresh.eval()(X), baked.eval()(X))


@pytest.mark.parametrize("name", sorted(CASES))
def test_param_and_byte_accounting_match_the_tensors(name):
    plan = CompressionPlan(arch=ARCH.to_dict(), layers=CASES[name][0])
    model = bake(_apply(plan))
    report = stored_bytes(model, plan)
    weights = _weights(model)
    assert report.params == sum(w.numel() for w in weights.values())
    for t in report.layers:
        w = weights[t.fqn]
        assert t.nonzero == int(torch.count_nonzero(w)) and t.rows == w.shape[0]
        if t.encoding == "dense" and not t.codebook:
            assert t.weight_bytes == pytest.approx(w.numel() * t.bits / 8)
        if t.codebook:
            assert t.codebook == torch.unique(w[w != 0]).numel()
    dense = stored_bytes(bake(_apply(CompressionPlan(arch=ARCH.to_dict()))))
    if name != "quant-act6":          # activation quantization stores 8 B more per layer
        assert report.total_bytes < dense.total_bytes


@pytest.mark.parametrize("name", sorted(CASES))
def test_composes_with_quantization(name):
    layers, check = CASES[name]
    q = QuantConfig(bits=4)
    composed = {f: (*cfgs, q) if not any(isinstance(c, QuantConfig) for c in cfgs) else cfgs
                for f, cfgs in layers.items()}
    plan = CompressionPlan(arch=ARCH.to_dict(), layers=composed)
    model = _apply(plan)
    assert model(X).shape == (6, 10)
    assert weight_bits(model) or act_bits(model)
    check(bake(model))


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_apply_is_deterministic(name):
    plan = CompressionPlan(arch=ARCH.to_dict(), layers=CASES[name][0])
    a, b = _apply(plan, seed=3).state_dict(), _apply(plan, seed=3).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_activation_quant_can_be_removed_for_export():
    from autocompress.compress.actquant import remove_act_quant

    plan = CompressionPlan(arch=ARCH.to_dict(), layers=CASES["quant-act6"][0])
    model = bake(_apply(plan))
    weights_only = {n: (QuantConfig(bits=8),) for n in ("head.conv", "classifier")}
    plain = bake(_apply(CompressionPlan(arch=ARCH.to_dict(), layers=weights_only), seed=0))
    assert act_bits(model) == {"head.conv": 6, "classifier": 8}
    stripped = remove_act_quant(copy.deepcopy(model))
    assert act_bits(stripped) == {} and act_bits(model)
    torch.testing.assert_close(stripped.eval()(X), plain.eval()(X))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_iterative_sparsity_tightens_masks_on_a_schedule(scope):
    from autocompress.compress.sparsity import masks_of, schedule, tighten

    cfg = SparsityConfig(ratio=0.9, steps=3, scope=scope)
    names = ("head.conv", EXPAND)
    plan = CompressionPlan(arch=ARCH.to_dict(), layers={n: (cfg, ClusterConfig(k=8))
                                                        for n in names})
    model = _apply(plan)
    total = sum(model.get_submodule(n).weight.numel() for n in names)

    def sparsity() -> float:
        return sum(int((model.get_submodule(n).weight == 0).sum()) for n in names) / total

    first = {n: m.mask.clone() for n, m in masks_of(model).items()}
    assert sparsity() == pytest.approx(schedule(0.9, 3)[0], abs=0.01)
    assert schedule(0.9, 3) == sorted(schedule(0.9, 3))
    seen = []
    for done in range(4):                       # 3 fine-tuning epochs: steps after 0, 1, 2
        tighten(model, plan.configs(SparsityConfig), done, 3)
        seen.append(sparsity())
        _train_step(model)                      # masks hold through training
        assert sparsity() == pytest.approx(seen[-1])
    assert seen == sorted(seen) and seen[-1] == pytest.approx(0.9, abs=1e-3)
    for n, mask in masks_of(model).items():
        assert bool(((first[n] == 0) <= (mask.mask == 0)).all())    # pruned stay pruned
    baked = bake(model)
    assert sum(int((baked.get_submodule(n).weight == 0).sum()) for n in names) / total \
        == pytest.approx(0.9, abs=1e-3)


def test_a_plan_that_factorizes_a_depthwise_conv_is_refused():
    """apply_plan left the depthwise conv whole without a word (the search refuses the
    rule at its line)."""
    from autocompress.errors import ModelError

    plan = CompressionPlan(arch=ARCH.to_dict(),
                           layers={"stages.0.0.dw.conv": (LowRankConfig(rank_ratio=0.5),)})
    with pytest.raises(ModelError, match=r"cannot factorize 'stages.0.0.dw.conv': a grouped "
                                         r"or depthwise conv"):
        _apply(plan)
