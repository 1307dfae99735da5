"""``train.augment``: per-batch flips and crops, drawn from the training run's generator."""
from __future__ import annotations

import pytest
import torch

from autocompress.config import load_config
from autocompress.data import load_digits_bundle
from autocompress.errors import ConfigError
from autocompress.models import StudentArch, build_student
from autocompress.train import TrainSettings, fit
from autocompress.train.augment import Augment, from_config
from autocompress.train.teacher import _recipe
from tests.conftest import TINY, write_config


def test_a_crop_shifts_each_image_within_its_zero_padding():
    x = torch.arange(1, 26, dtype=torch.float32).reshape(1, 1, 5, 5).repeat(64, 3, 1, 1)
    out = Augment(crop=2)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out[:, 0], out[:, 2])    # channels move as one
    shifts = set()
    for img in out[:, 0]:
        nz = img.nonzero()
        top, left = int(nz[:, 0].min()), int(nz[:, 1].min())
        value = int(img[top, left].item())            # the source pixel now at (top, left)
        dy, dx = top - (value - 1) // 5, left - (value - 1) % 5
        assert -2 <= dy <= 2 and -2 <= dx <= 2
        assert torch.equal(img[max(dy, 0):5 + min(dy, 0), max(dx, 0):5 + min(dx, 0)],
                           x[0, 0, max(-dy, 0):5 + min(-dy, 0), max(-dx, 0):5 + min(-dx, 0)])
        shifts.add((dy, dx))
    assert len(shifts) > 10                            # many of the 25 shifts drawn
    again = Augment(crop=2)(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                     # a seed repeats it


def test_training_with_augmentation_is_seeded_and_differs_from_without():
    data = load_digits_bundle(0)

    def trained(aug: Augment) -> torch.Tensor:
        torch.manual_seed(0)
        net = build_student(StudentArch(width_mult=0.5), in_channels=1, num_classes=10)
        fit(net, data.train, TrainSettings(epochs=1, augment=aug), seed=3)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    plain, flipped = trained(Augment()), trained(Augment(hflip=True, crop=1))
    assert not torch.equal(plain, flipped)
    assert torch.equal(flipped, trained(Augment(hflip=True, crop=1)))


def test_the_teacher_cache_key_keeps_its_old_form_without_augmentation():
    off = _recipe(TrainSettings(epochs=3))
    assert set(off) == {"epochs", "lr", "batch_size", "weight_decay"}
    assert _recipe(TrainSettings(epochs=3, augment=Augment(crop=4)))["augment"] == \
        {"hflip": False, "crop": 4}


@pytest.mark.parametrize(("value", "what"), [("yes", "expected a mapping"),
                                              ("{flip: true}", "expected a mapping"),
                                              ("{hflip: 1}", "hflip: expected true or false"),
                                              ("{crop: -1}", "crop: expected a zero padding")])
def test_a_bad_augment_names_its_line(tmp_path, value, what):
    cfg = write_config(tmp_path, TINY.replace("finetune_epochs: 1}",
                                              f"finetune_epochs: 1, augment: {value}}}"))
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.loc == f"{cfg}:6 train.augment" and what in str(err.value)


def test_the_config_value_becomes_the_settings(tmp_path):
    cfg = load_config(write_config(tmp_path, TINY), ["train.augment={hflip: true}"])
    assert from_config(cfg.train.augment) == Augment(hflip=True)
    assert from_config(None) == Augment() and not Augment().on
