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
