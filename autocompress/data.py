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

from autocompress.errors import DataError, raised
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
        items = []
        for i in range(len(raw)):  # type: ignore[arg-type]
            try:
                items.append(raw[i])
            except Exception as exc:   # the user's __getitem__ failed: say where, one line
                raise DataError(f"reading item {i} of the Dataset {raised(exc)}", loc=where,
                                hint="a Dataset is read once, item 0 to len - 1, when the "
                                "search starts: every index below its len() must give (x, y)"
                                ) from exc
        if not items:
            raise DataError("split is empty", loc=where, hint="return at least one sample")
        first = items[0]
        if not (isinstance(first, (tuple, list)) and len(first) == 2):
            what = (f"a dict with keys {', '.join(map(str, first))}"
                    if isinstance(first, Mapping) else type(first).__name__)
            raise DataError(f"a Dataset must yield (x, y) pairs; its item 0 is {what}",
                            loc=where, hint="wrap it so that __getitem__ returns (x, y), "
                            "e.g. (item['image'], item['label'])")
        xs = [_item_x(a, i, where) for i, (a, _) in enumerate(items)]
        odd = next((i for i, a in enumerate(xs) if a.shape != xs[0].shape), None)
        if odd is not None:        # torch.stack's RuntimeError was a traceback
            raise DataError(f"the Dataset's items differ in shape: x of item 0 is "
                            f"{tuple(xs[0].shape)}, of item {odd} {tuple(xs[odd].shape)}",
                            loc=where, hint="resize or crop every image to one size in "
                            "__getitem__ (a model takes one input shape)")
        raw = (torch.stack(xs), torch.as_tensor([_label(b, where) for _, b in items]))
    if not (isinstance(raw, (tuple, list)) and len(raw) == 2):
        raise DataError(f"expected an (x, y) pair or a Dataset, got {type(raw).__name__}",
                        loc=where)
    try:
        x, y = (v if isinstance(v, Tensor) else torch.as_tensor(np.asarray(v)) for v in raw)
    except (TypeError, ValueError) as exc:
        raise DataError(f"x and y must be numeric arrays or tensors: {exc}", loc=where) from exc
    if x.shape[0] == 0:
        raise DataError("split is empty", loc=where, hint="return at least one sample")
    if y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"y must hold one class index per sample, shape ({x.shape[0]},); got "
                        f"shape {tuple(y.shape)}", loc=where, hint=_label_shape_hint(x, y))
    if x.dim() != 4:
        raise DataError(f"x must be images, shape (N, C, H, W); got shape {tuple(x.shape)}",
                        loc=where, hint="for one-channel images (N, H, W) add the channel "
                        "axis: x[:, None]; the teacher and the cost model take 2-D inputs: give "
                        "a 1-D signal a height of 1 (x[:, :, None, :], with (1, k) kernels in "
                        "your model)"
                        if x.dim() == 3 else "add the missing axes, e.g. x.reshape(N, 1, H, W)")
    _check_values(x, y, where)
    return Split(x.float(), y.long())


def _item_x(value: Any, index: int, where: str) -> Tensor:
    try:
        if hasattr(value, "getbands"):    # a PIL image (no transform): HWC 0..255, not CHW
            raise TypeError("a PIL image")
        return value if isinstance(value, Tensor) else torch.as_tensor(np.array(value))
    except (TypeError, ValueError, RuntimeError) as exc:   # a file name, an object, ...
        raise DataError(f"a Dataset's x must be a numeric array or tensor; item {index}'s is "
                        f"{type(value).__name__}", loc=where, hint="convert it in __getitem__, "
                        "e.g. torchvision's transforms.ToTensor()") from exc


def _label(value: Any, where: str) -> int:
    try:
        return int(torch.as_tensor(value).item())
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"a Dataset's y must be one class index per item, got {value!r}",
                        loc=where) from exc


def _label_shape_hint(x: Tensor, y: Tensor) -> str | None:
    if y.dim() == 2 and y.shape[0] == x.shape[0]:
        return ("a column of class indices: pass y.reshape(-1)" if y.shape[1] == 1
                else "one-hot labels: pass y.argmax(1)")
    if y.dim() == 1:
        return f"x has {x.shape[0]} samples and y {y.shape[0]} labels: give every sample one label"
    return None


def _check_values(x: Tensor, y: Tensor, where: str) -> None:
    """Labels are class indices 0..K-1 (whole numbers), inputs are finite numbers."""
    if y.dtype == torch.bool or not (y.is_floating_point() or y.dtype in _INT_TYPES):
        raise DataError(f"y must hold integer class indices, got dtype {y.dtype}", loc=where)
    if y.is_floating_point() and not torch.equal(y, y.round()):
        bad = float(y[y != y.round()][0])
        raise DataError(f"y must hold integer class indices 0..K-1, found {bad:g}", loc=where)
    if int(y.min()) < 0:
        raise DataError(f"class indices must be 0..K-1, found {int(y.min())}", loc=where,
                        hint="map the labels to 0..K-1")
    # in chunks: isfinite over the whole split held a bool copy (+1.7x a 234 MB train set)
    n = sum(int((~torch.isfinite(part)).sum()) for part in x.split(4096)) \
        if x.is_floating_point() else 0
    if n:
        raise DataError(f"x holds {n} non-finite value(s) (NaN or inf)", loc=where,
                        hint="clean or impute them before returning the split")
    if x.dim() == 4 and x.shape[3] in (1, 3) and min(x.shape[1], x.shape[2]) >= 8:
        signal = x.shape[3] == 1 and x.shape[1] < x.shape[2]   # (N, 9, 128, 1): 9 sensors?
        raise DataError(f"x looks channels-last: shape {tuple(x.shape)} (N x H x W x C)"
                        + (", or a signal laid out N x C x W x 1" if signal else ""),
                        loc=where, hint="the models take N x C x H x W: return "
                        "x.permute(0, 3, 1, 2) for images; a signal of C channels is "
                        "N x C x 1 x W" + (": x.transpose(2, 3)" if signal else ""))


_INT_TYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def load_user_bundle(spec: str, seed: int, *, loc: str, base_dir: Path | None) -> DataBundle:
    fn = load_callable(spec, loc=loc, base_dir=base_dir)
    try:
        raw = fn(seed)
    except Exception as exc:          # the user's code failed: say where, not a traceback
        raise DataError(f"{spec}({seed}) {raised(exc)}", loc=loc,
                        hint="signature: make_data(seed) -> {'train': (x, y), 'val': ..., "
                             "'test': ...}") from exc
    if not isinstance(raw, Mapping) or not set(SPLITS) <= set(raw):
        raise DataError(f"{spec} must return a dict with keys train, val, test", loc=loc)
    splits = {s: _to_split(raw[s], f"{loc} ({spec} -> {s})") for s in SPLITS}
    shapes = {s: tuple(v.x.shape[1:]) for s, v in splits.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"splits have different input shapes: {shapes}", loc=loc)
    seen = set(splits["train"].y.unique().tolist())
    if len(seen) < 2:
        raise DataError(f"train has a single class ({min(seen)}): there is nothing to classify",
                        loc=f"{loc} ({spec} -> train)", hint="check the labels")
    for name in ("val", "test"):
        if unseen := sorted(set(splits[name].y.unique().tolist()) - seen):
            raise DataError(f"{name} has class(es) {unseen} that train never has",
                            loc=f"{loc} ({spec} -> {name})",
                            hint="a class must be in train to be learned: check the labels")
    num_classes = int(max(int(v.y.max()) for v in splits.values())) + 1
    return DataBundle(num_classes=num_classes, name=spec, **splits)  # type: ignore[arg-type]


def label_gaps(data: DataBundle, loc: str) -> DataError | None:
    """The error for labels that skip a class index (no split has it: a class only in val
    or test is refused on load), which a new search refuses: labels 0, 100, ..., 900 gave
    the classifier 901 outputs. An old run dir with such labels still resumes and exports
    (its weights have those outputs)."""
    seen = set(data.train.y.unique().tolist())
    if not (skipped := sorted(set(range(data.num_classes)) - seen)):
        return None
    shown = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
    return DataError(f"the labels skip class index(es) {shown}: {len(seen)} classes labelled "
                     f"{min(seen)}..{max(seen)} give the classifier {data.num_classes} "
                     f"outputs, {len(skipped)} never trained (a larger, slower model)",
                     loc=f"{loc} ({data.name} -> train)",
                     hint="map the labels to 0..K-1, e.g. "
                          "y = numpy.unique(y, return_inverse=True)[1] over all splits")


def batches(split: Split, batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None = None):
    """Yield (x, y, idx) mini-batches; ``idx`` indexes cached teacher logits."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield split.x[idx], split.y[idx], idx


def scale_hint(x: torch.Tensor) -> str:
    """Why a teacher may stay at chance: inputs far from 0..1 (8-bit images as 0..255).

    >>> scale_hint(torch.tensor([0.0, 255.0]))[:44], scale_hint(torch.tensor([-80.0, 0.0]))[:27]
    ('; the inputs range 0..255: scale them to abo', '; the inputs range -80..0: ')
    >>> scale_hint(torch.tensor([0.0, 1.0]))
    ''
    """
    lo, hi = float(x.min()), float(x.max())
    return (f"; the inputs range {lo:g}..{hi:g}: scale them to about 0..1 (8-bit images: "
            "x / 255)") if max(-lo, hi) > 10 else ""
