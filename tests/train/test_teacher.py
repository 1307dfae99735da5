"""The teacher cache: its key covers the train split's content and order and every setting,
since the cached logits are indexed by sample position."""
from __future__ import annotations

from dataclasses import replace

import torch

from autocompress.data import Split, load_digits_bundle
from autocompress.train import TrainSettings, get_teacher


def test_a_reordered_split_or_another_batch_size_is_not_served_the_cached_teacher(tmp_path):
    data = load_digits_bundle(0)
    settings = TrainSettings(epochs=1)
    first = get_teacher(tmp_path, data, widths=(4, 8, 8), settings=settings, seed=0)
    again = get_teacher(tmp_path, data, widths=(4, 8, 8), settings=settings, seed=0)
    assert again.key == first.key and len(list(tmp_path.glob("teacher-*.pt"))) == 1
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(1))
    shuffled = replace(data, train=Split(data.train.x[order], data.train.y[order]))
    moved = get_teacher(tmp_path, shuffled, widths=(4, 8, 8), settings=settings, seed=0)
    assert moved.key != first.key                      # same sums, another order
    assert torch.equal(moved.train_logits.argmax(1),
                       moved.model(shuffled.train.x).argmax(1))   # logits follow the samples
    other = get_teacher(tmp_path, data, widths=(4, 8, 8), seed=0,
                        settings=replace(settings, batch_size=8))
    assert other.key not in (first.key, moved.key)
