"""An example user dataset: digits upsampled to 16x16 with seeded noise.

Signature autocompress expects: ``make_data(seed) -> {"train": (x, y), "val": (x, y),
"test": (x, y)}`` with x float N x C x H x W and y integer class ids (tensors or arrays, or
``torch.utils.data.Dataset`` objects yielding ``(x, y)``).
"""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits


def make_data(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    digits = load_digits()
    x = digits.images.astype(np.float32) / 16.0
    x = x.repeat(2, axis=1).repeat(2, axis=2)[:, None]          # 1 x 16 x 16
    x = np.clip(x + rng.normal(0.0, 0.15, x.shape).astype(np.float32), 0.0, 1.0)
    y = digits.target.astype(np.int64)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    a, b = int(0.7 * len(y)), int(0.85 * len(y))
    return {"train": (x[:a], y[:a]), "val": (x[a:b], y[a:b]), "test": (x[b:], y[b:])}
