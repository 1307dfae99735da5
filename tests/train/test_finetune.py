"""compress_and_finetune: PTQ candidates skip the fine-tune, iterative sparsity follows its
schedule through fit's epoch hook."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autocompress.compress import (
    CompressionPlan,
    PruneConfig,
    QuantConfig,
    SparsityConfig,
    bake,
    weight_bits,
)
from autocompress.compress.actquant import act_bits
from autocompress.compress.quantize import FakeQuant
from autocompress.data import Split
from autocompress.models import StudentArch, build_student
from autocompress.train import TrainSettings, finetune
from autocompress.train.finetune import compress_and_finetune, split_ptq

ARCH = StudentArch(width_mult=1.0, depths=(1, 1, 1))
GEN = torch.Generator().manual_seed(0)
TRAIN = Split(torch.randn(96, 1, 8, 8, generator=GEN), torch.randint(0, 10, (96,), generator=GEN))
SETTINGS = TrainSettings(epochs=4, batch_size=32)


def _student() -> nn.Module:
    torch.manual_seed(0)
    return build_student(ARCH, in_channels=1, num_classes=10)


def _run(plan: CompressionPlan, **kw):
    return compress_and_finetune(_student(), plan, TRAIN, SETTINGS, example=TRAIN.x[:1],
                                 seed=1, ignored=("classifier",), calibration=TRAIN.x[:64], **kw)


def _count_fits(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = finetune.fit

    def counting(model, train, settings, **kw):
        calls.append(settings.epochs)
        return real(model, train, settings, **kw)

    monkeypatch.setattr(finetune, "fit", counting)
    return calls


def test_ptq_only_plan_is_calibrated_not_finetuned(monkeypatch):
    calls = _count_fits(monkeypatch)
    ptq = QuantConfig(bits=4, act_bits=8, mode="ptq", calib="mse", act_calib="percentile")
    plan = CompressionPlan(layers={"stem.conv": (ptq,), "head.conv": (ptq,),
                                   "classifier": (QuantConfig(bits=32),)})   # a no-op config
    model, info = _run(plan)
    assert calls == [] and info.epochs == 0
    assert info.ptq_layers == ("head.conv", "stem.conv")
    assert weight_bits(model) == {"stem.conv": 4, "head.conv": 4}
    assert act_bits(model) == {"stem.conv": 8, "head.conv": 8}
    fq = model.stem.conv.parametrizations.weight[0]
    assert isinstance(fq, FakeQuant) and fq.mode == "ptq"
    model(TRAIN.x[:4]).sum().backward()
    assert model.stem.conv.parametrizations.weight.original.grad is None   # frozen


def test_ptq_after_structural_changes_quantizes_the_finetuned_weights(monkeypatch):
    calls = _count_fits(monkeypatch)
    plan = CompressionPlan(layers={"stem.conv": (PruneConfig(ratio=0.5),
                                                 QuantConfig(bits=4, mode="ptq"))})
    model, info = _run(plan)
    assert calls == [SETTINGS.epochs] and info.epochs == SETTINGS.epochs
    assert info.ptq_layers == ("stem.conv",) and weight_bits(model) == {"stem.conv": 4}
    trained, ptq = split_ptq(plan)
    assert trained.layers == {"stem.conv": (PruneConfig(ratio=0.5),)}
    assert ptq.layers == {"stem.conv": (QuantConfig(bits=4, mode="ptq"),)}
    for row in bake(model).stem.conv.weight:
        assert torch.unique(row).numel() <= 15


def test_qat_plan_is_finetuned(monkeypatch):
    calls = _count_fits(monkeypatch)
    _, info = _run(CompressionPlan(layers={"stem.conv": (QuantConfig(bits=4),)}))
    assert calls == [SETTINGS.epochs] and info.epochs == SETTINGS.epochs and not info.ptq_layers


@pytest.mark.parametrize("schedule", ["cubic", "linear"])
def test_iterative_sparsity_rises_over_the_epochs_to_its_ratio(schedule):
    names = ("head.conv", "stages.1.0.expand.conv")
    cfg = SparsityConfig(ratio=0.8, steps=3, schedule=schedule)
    epochs: list[int] = []
    model, info = _run(CompressionPlan(layers={n: (cfg,) for n in names}),
                       on_epoch=epochs.append)
    assert epochs == [1, 2, 3, 4] and info.iterative_sparsity == 2 and info.epochs == 4
    seen = info.sparsity_by_epoch                    # before fine-tuning + after each epoch
    assert len(seen) == 5 and list(seen) == sorted(seen) and len(set(seen)) == 3
    assert seen[0] == pytest.approx(0.8 * (1 - (2 / 3) ** 3 if schedule == "cubic" else 1 / 3),
                                    abs=1e-3)
    assert seen[2] == pytest.approx(0.8, abs=1e-3)   # full sparsity for the second half
    w = [bake(model).get_submodule(n).weight for n in names]
    assert sum(int((x == 0).sum()) for x in w) / sum(x.numel() for x in w) == \
        pytest.approx(0.8, abs=1e-3)


def test_one_shot_sparsity_is_constant_and_without_finetune_still_reaches_its_ratio():
    _, info = _run(CompressionPlan(layers={"head.conv": (SparsityConfig(ratio=0.5),)}))
    assert info.iterative_sparsity == 0 and len(set(info.sparsity_by_epoch)) == 1
    plan = CompressionPlan(layers={"head.conv": (SparsityConfig(ratio=0.5, steps=4),),
                                   "stem.conv": (QuantConfig(bits=4, mode="ptq"),)})
    settings0 = TrainSettings(epochs=0)
    _, info = compress_and_finetune(_student(), plan, TRAIN, settings0, example=TRAIN.x[:1],
                                    seed=1, calibration=TRAIN.x[:64])
    assert info.epochs == 0 and info.sparsity_by_epoch == pytest.approx((0.5,), abs=1e-3)


def test_bad_sparsity_steps_rejected():
    with pytest.raises(ValueError, match="steps"):
        SparsityConfig(ratio=0.5, steps=0)
    with pytest.raises(ValueError, match="schedule"):
        SparsityConfig(ratio=0.5, steps=3, schedule="exp")


def test_iterative_masks_reach_exactly_their_ratio_under_low_bit_qat():
    from autocompress.compress.sparsity import masks_of

    # 2-bit weights: many unmasked weights quantize to 0 and tie with the pruned ones
    plan = CompressionPlan(layers={"head.conv": (SparsityConfig(ratio=0.5, steps=3),
                                                 QuantConfig(bits=2))})
    model, _ = _run(plan)
    mask = masks_of(model)["head.conv"].mask
    assert int((mask == 0).sum()) == round(0.5 * mask.numel())


def test_ptq_pass_keeps_the_activation_ranges_qat_learned(monkeypatch):
    learned: dict[str, tuple[float, float]] = {}
    real = finetune.fit

    def fit(model, train, settings, **kw):
        out = real(model, train, settings, **kw)
        for name in ("stem.conv", "head.conv"):
            q = model.get_submodule(name).act_quant
            learned[name] = (float(q.lo), float(q.hi))
        return out

    monkeypatch.setattr(finetune, "fit", fit)
    plan = CompressionPlan(layers={"stem.conv": (QuantConfig(bits=8, act_bits=8),),
                                   "head.conv": (QuantConfig(bits=8, act_bits=8),),
                                   "stages.1.0.expand.conv": (QuantConfig(bits=4, act_bits=8,
                                                                          mode="ptq"),)})
    model, info = _run(plan)
    assert info.ptq_layers == ("stages.1.0.expand.conv",) and set(learned) == {"stem.conv",
                                                                               "head.conv"}
    for name, (lo, hi) in learned.items():
        q = model.get_submodule(name).act_quant
        assert (float(q.lo), float(q.hi)) == (lo, hi), name
    ptq = model.get_submodule("stages.1.0.expand.conv").act_quant
    assert float(ptq.hi) > float(ptq.lo)                    # calibrated


@pytest.mark.parametrize("lead_steps, other_steps", [(3, 1), (1, 3)])
def test_global_layers_reach_the_global_ratio_whatever_their_own_steps(lead_steps, other_steps):
    from autocompress.compress.sparsity import masks_of

    # the first global config sets the group's ratio and schedule (head.conv sorts first)
    plan = CompressionPlan(layers={
        "head.conv": (SparsityConfig(ratio=0.8, scope="global", steps=lead_steps),),
        "stages.1.0.expand.conv": (SparsityConfig(ratio=0.8, scope="global",
                                                  steps=other_steps),)})
    model, info = _run(plan)
    masks = masks_of(model).values()
    zeros, total = sum(int((m.mask == 0).sum()) for m in masks), sum(m.mask.numel() for m in masks)
    assert zeros == round(0.8 * total)
    assert (info.sparsity_by_epoch[0] < 0.79) == (lead_steps > 1)   # iterative only with the lead
    assert info.iterative_sparsity == (2 if lead_steps > 1 else 0)   # both follow the lead
