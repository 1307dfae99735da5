"""Per-batch image augmentation (``train.augment``): a random horizontal flip and a random
crop after zero padding (the CIFAR recipe: ``{hflip: true, crop: 4}``), drawn anew for every
batch of every epoch from the training run's own generator, so a seed repeats a run. Off by
default: flipping a digit or a letter changes what it is. It runs where the batch is (the
training device), the draws on the CPU.

>>> x = torch.arange(16.).reshape(1, 1, 4, 4)
>>> aug = Augment(hflip=True)
>>> out = aug(x.repeat(8, 1, 1, 1), torch.Generator().manual_seed(0))
>>> sorted({tuple(o[0, 0].tolist()) for o in out})
[(0.0, 1.0, 2.0, 3.0), (3.0, 2.0, 1.0, 0.0)]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True, kw_only=True)
class Augment:
    hflip: bool = False
    crop: int = 0          # zero padding on each side before a random crop back to size

    @property
    def on(self) -> bool:
        return self.hflip or self.crop > 0

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """``x`` (N, C, H, W) augmented; the random draws come from ``gen`` (CPU)."""
        n, _, h, w = x.shape
        if self.hflip:
            flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.crop > 0:
            p = self.crop
            padded = F.pad(x, (p, p, p, p))
            dy, dx = (torch.randint(0, 2 * p + 1, (n,), generator=gen).to(x.device)
                      for _ in range(2))
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, chans, rows, cols]
        return x


def from_config(value: object) -> Augment:
    """``train.augment`` (checked by ``config_checks``) as an Augment (null: off)."""
    return Augment(**value) if isinstance(value, dict) else Augment()
