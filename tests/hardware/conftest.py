"""Fixtures for the hardware cost-model tests (helpers live in hw_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from autocompress.hardware.profile import load_profile
from autocompress.hardware.spec import HardwareProfile
from tests.hardware.hw_helpers import TINY_PROFILE, write_profile


@pytest.fixture
def tiny_profile(tmp_path: Path) -> HardwareProfile:
    """A 100 MHz, 1 MAC/cycle, int8-only device with three LUT entries."""
    return load_profile(write_profile(tmp_path, TINY_PROFILE))


@pytest.fixture
def mcu() -> HardwareProfile:
    return load_profile("stm32f746")
