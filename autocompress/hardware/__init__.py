"""Hardware cost model: profiles (YAML), the LUT key, latency, Flash and peak SRAM.

>>> from autocompress.hardware import CostModel, LayerFormat
>>> model = CostModel("stm32f746")       # hardware_profiles/stm32f746.yaml
>>> model.profile.formats.weights
('int8', 'fp32')

Nothing here imports torch at estimate time; only ``autocompress.graph`` types are used.
"""
from __future__ import annotations

from autocompress.hardware.cost import BUDGET_KEYS, CostEstimate, CostModel, LayerCost, check_budget
from autocompress.hardware.formats import LayerFormat, format_for_bits, runnable_format
from autocompress.hardware.keys import layer_key, parse_key
from autocompress.hardware.latency import LayerLatency, estimate_layer_latency
from autocompress.hardware.memory import PeakSram, layer_flash_bytes, peak_sram
from autocompress.hardware.profile import list_profiles, load_profile
from autocompress.hardware.spec import HardwareProfile

__all__ = ["BUDGET_KEYS", "CostEstimate", "CostModel", "HardwareProfile", "LayerCost",
           "LayerFormat", "LayerLatency", "PeakSram", "check_budget", "estimate_layer_latency",
           "format_for_bits", "layer_flash_bytes", "layer_key", "list_profiles", "load_profile",
           "parse_key", "peak_sram", "runnable_format"]
