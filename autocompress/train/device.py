"""Where training runs (``train.device``): ``auto`` (a CUDA GPU when torch sees one, else
the CPU), ``cpu``, ``cuda`` or ``cuda:N``.

Only training and evaluation use it (``fit``, ``predict``): a model goes to the device for
them and comes back to the CPU after, so that everything else (pruning, quantization,
calibration, costing, checkpoints, export) sees CPU models, as it does without a GPU. The data
stays in CPU memory and moves one batch at a time.

>>> resolve_device("cpu")
device(type='cpu')
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def device_problem(spec: str) -> str | None:
    """Why ``spec`` cannot run in this process (a GPU it does not see), or None."""
    if not spec.startswith("cuda"):
        return None
    if not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else \
            "torch sees no GPU (no driver, or CUDA_VISIBLE_DEVICES hides it)"
    elif int(spec.partition(":")[2] or 0) >= torch.cuda.device_count():
        why = f"torch sees {torch.cuda.device_count()} GPU(s)"
    else:
        return None
    return f"{spec!r} needs a GPU, but {why}"


def resolve_device(spec: str) -> torch.device:
    """The device ``spec`` means here (``auto``: the first GPU torch sees, else the CPU).
    Raises RuntimeError where it cannot run (:func:`device_problem`)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if (problem := device_problem(spec)) is not None:
        raise RuntimeError(f"train.device {problem}")
    return torch.device(spec)


def training_device(spec: str) -> str:
    """:func:`resolve_device` as the text ``TrainSettings.device`` takes; on a GPU, cuDNN is
    set to its deterministic kernels (other CUDA kernels may still vary between runs, and no
    GPU run matches the CPU's bit for bit)."""
    device = resolve_device(spec)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return str(device)


def where(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for one without any)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def placed(device: torch.device | str | None, *modules: nn.Module | None) -> Iterator[None]:
    """Inside the block, ``modules`` are on ``device`` (None: left where they are); after it,
    even on an error, each is back where it was. Parameters keep their identity (``.to``
    swaps their data), so an optimizer made before still holds them."""
    if device is None:
        yield
        return
    device = torch.device(device)
    moved = [(m, at) for m in modules if m is not None and (at := where(m)) != device]
    for module, _ in moved:
        module.to(device)
    try:
        yield
    finally:
        for module, before in moved:
            module.to(before)
