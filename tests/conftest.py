from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "mobilenet_digits.yaml"
DEMO_CONFIG = ROOT / "experiments" / "digits_mcu" / "config.yaml"


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def write_config(tmp_path: Path, body: str, name: str = "config.yaml") -> Path:
    """Write a config YAML into tmp_path whose space path points at the shipped space."""
    path = tmp_path / name
    path.write_text(body.replace("SPACE", str(SPACE)))
    return path


TINY = """\
name: tiny
seed: 0
data: digits
model: {space: SPACE}
teacher: {widths: [16, 32], epochs: 3}
train: {epochs: 1, finetune_epochs: 1}
hardware:
  profiles: [stm32f746]
  budgets: {stm32f746: {max_latency_ms: 50}}
search: {threads: 1, trials: 3, sampler: random}
"""


def wait_for_first_record(proc, records: Path, timeout: float = 300) -> None:
    """Wait until the search process ``proc`` has recorded a trial in ``records`` (and is
    still running: a test then stops it mid-run)."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_text().strip():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be stopped"


def tiny_resnet() -> tuple[torch.nn.Module, torch.Tensor]:
    """A two-stage ResNet student for 1x8x8 inputs (a shortcut conv in its second stage),
    eval mode, seeded, and 32 inputs for it."""
    from autocompress.models.resnet import ResNetArch, build_resnet

    torch.manual_seed(0)
    net = build_resnet(ResNetArch(width_mult=0.5, stage_channels=(16, 32), strides=(1, 2),
                                  depths=(1, 1), kernels=(3, 3)),
                       in_channels=1, num_classes=10).eval()
    return net, torch.rand(32, 1, 8, 8)
