"""Datasets: the embedded default (scikit-learn ``load_digits``) or a user callable.

A user data callable is ``make_data(seed: int) -> dict`` with keys ``train``, ``val``,
``test``, each an ``(x, y)`` pair of tensors/arrays (x: N x C x H x W float, y: N int
class ids) or a ``torch.utils.data.Dataset`` of ``(x, y)`` items. Data are held in memory.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autocompress.errors import DataError
from autocompress.imports import load_callable

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class DataBundle:
    train: Split
    val: Split
    test: Split
    num_classes: int
    name: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.x.shape[1:])

    def example(self) -> Tensor:
        return self.train.x[:1].clone()


def load_digits_bundle(seed: int, val_fraction: float = 0.15,
                       test_fraction: float = 0.15) -> DataBundle:
    """sklearn digits (1797 images, 8x8, 10 classes), scaled to [0, 1], stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
        stratify=y_rest)
    t = torch.from_numpy
    return DataBundle(train=Split(t(x_train), t(y_train)), val=Split(t(x_val), t(y_val)),
                      test=Split(t(x_test), t(y_test)), num_classes=10, name="digits")


def _to_split(raw: Any, where: str) -> Split:
    if isinstance(raw, torch.utils.data.Dataset):
        items = [raw[i] for i in range(len(raw))]  # type: ignore[arg-type]
        if not items:
            raise DataError("split is empty", loc=where, hint="return at least one sample")
        raw = (torch.stack([torch.as_tensor(a) for a, _ in items]),
               torch.as_tensor([int(b) for _, b in items]))
    if not (isinstance(raw, (tuple, list)) and len(raw) == 2):
        raise DataError(f"expected an (x, y) pair or a Dataset, got {type(raw).__name__}",
                        loc=where)
    x = torch.as_tensor(np.asarray(raw[0]) if not isinstance(raw[0], Tensor) else raw[0])
    y = torch.as_tensor(np.asarray(raw[1]) if not isinstance(raw[1], Tensor) else raw[1])
    if x.shape[0] == 0:
        raise DataError("split is empty", loc=where, hint="return at least one sample")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"x has {x.shape[0]} samples but y has {y.shape[0]}", loc=where)
    return Split(x.float(), y.long())


def load_user_bundle(spec: str, seed: int, *, loc: str, base_dir: Path | None) -> DataBundle:
    fn = load_callable(spec, loc=loc, base_dir=base_dir)
    try:
        raw = fn(seed)
    except Exception as exc:          # the user's code failed: say where, not a traceback
        raise DataError(f"{spec}({seed}) raised {type(exc).__name__}: {exc}", loc=loc,
                        hint="signature: make_data(seed) -> {'train': (x, y), 'val': ..., "
                             "'test': ...}") from exc
    if not isinstance(raw, Mapping) or not set(SPLITS) <= set(raw):
        raise DataError(f"{spec} must return a dict with keys train, val, test", loc=loc)
    splits = {s: _to_split(raw[s], f"{loc} ({spec} -> {s})") for s in SPLITS}
    shapes = {s: tuple(v.x.shape[1:]) for s, v in splits.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"splits have different input shapes: {shapes}", loc=loc)
    num_classes = int(max(int(v.y.max()) for v in splits.values())) + 1
    return DataBundle(num_classes=num_classes, name=spec, **splits)  # type: ignore[arg-type]


def batches(split: Split, batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None = None):
    """Yield (x, y, idx) mini-batches; ``idx`` indexes cached teacher logits."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield split.x[idx], split.y[idx], idx
