"""A budget written with its unit (an MCU user's ``max_flash_kb: 1MB``) is refused with the
number to write, converted to the unit its key names."""
from __future__ import annotations

import pytest

from autocompress.config import load_config
from autocompress.config_checks import unit_hint
from autocompress.errors import ConfigError

from .conftest import TINY, write_config


@pytest.mark.parametrize("override, fix", [
    ("max_flash_kb=64KB", "write max_flash_kb: 64 (a plain number, in KB)"),
    ("max_flash_kb=1 MB", "write max_flash_kb: 1024 (a plain number, in KB)"),
    ("max_peak_sram_kb=320kib", "write max_peak_sram_kb: 320 (a plain number, in KB)"),
    ("max_latency_ms=15 ms", "write max_latency_ms: 15 (a plain number, in ms)"),
    ("max_latency_ms=0.02s", "write max_latency_ms: 20 (a plain number, in ms)"),
])
def test_a_budget_with_a_unit_gets_the_number_to_write(tmp_path, override, fix):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, TINY), [f"hardware.budgets.stm32f746.{override}"])
    assert "expected a positive number" in err.value.raw_message and err.value.hint == fix


def test_a_unit_of_the_other_kind_or_no_number_gets_no_conversion():
    assert unit_hint("max_latency_ms", "15KB") is None
    assert unit_hint("max_flash_kb", "15 ms") is None
    assert unit_hint("max_flash_kb", "lots") is None
    assert unit_hint("max_flash_kb", "1.2.3MB") is None
