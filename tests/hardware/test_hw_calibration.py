"""The shipped MCU profile against published MLPerf Tiny latencies (STM32F746).

Calibration table (int8 unless noted; published = MLPerf Tiny v0.7 Plumerai, DISCO-F746NG):

| model                   | published ms | predicted ms | error  | role     |
|-------------------------|--------------|--------------|--------|----------|
| ResNet-8 (IC)           | 65.15        | 65.15        |  0.0 % | fitted   |
| DS-CNN (KWS)            | 19.55        | 19.56        | +0.1 % | fitted   |
| FC autoencoder (AD)     | 2.42         | 2.42         | -0.0 % | fitted   |
| MobileNetV1-0.25 (VWW)  | 59.40        | 54.66        | -8.0 % | held out |
| same, v1.0 of the engine| 57.03        | 54.66        | -4.2 % | held out |
| FC autoencoder fp32 (*) | 9.32         | 9.39         | +0.7 % | held out |

(*) derived: F746 int8 AD x the H7A3ZI fp32/int8 ratio (same Cortex-M7 core).
"""
from __future__ import annotations

import pytest

from autocompress.hardware import CostModel
from autocompress.hardware.calibrate import calibration_table, fit_stm32f746
from autocompress.hardware.reference_models import REFERENCE_MODELS
from autocompress.hardware.spec import HardwareProfile

FITTED_TOLERANCE = 0.02      # the fit solves these exactly; 2% absorbs rounding in the YAML
HELD_OUT_TOLERANCE = 0.30    # what we promise for models the fit never saw


def test_reference_model_macs_match_the_paper() -> None:
    mmacs = {name: sum(layer.macs for layer in build().compressible) / 1e6
             for name, build in REFERENCE_MODELS.items()}
    assert mmacs == pytest.approx({"resnet8-ic": 12.50, "ds-cnn-kws": 2.66,
                                   "mobilenetv1-0.25-vww": 7.49,
                                   "fc-autoencoder-ad": 0.264}, rel=0.005)


def test_calibration_residuals(mcu: HardwareProfile) -> None:
    rows = calibration_table(mcu)
    assert len(rows) == 6 and sum(row["held_out"] for row in rows) == 3
    for row in rows:
        limit = HELD_OUT_TOLERANCE if row["held_out"] else FITTED_TOLERANCE
        assert abs(row["error"]) <= limit, row
        # the YAML's recorded predictions are in sync with the constants
        assert row["recorded_ms"] == pytest.approx(row["predicted_ms"], abs=0.011), row


def test_refit_reproduces_shipped_constants(mcu: HardwareProfile) -> None:
    fitted = fit_stm32f746(mcu, rounds=4)
    assert mcu.analytic is not None
    for name in ("macs_per_cycle", "depthwise_macs_per_cycle"):
        assert getattr(fitted, name) == pytest.approx(getattr(mcu.analytic, name), rel=0.01)
    assert fitted.mem_bw_gbps == pytest.approx(mcu.analytic.mem_bw_gbps, rel=0.01)


def test_reference_models_fit_the_device(mcu: HardwareProfile) -> None:
    """Sanity: int8 weights fit in 1 MB Flash and activations in 320 KB SRAM."""
    for build in REFERENCE_MODELS.values():
        est = CostModel(mcu).estimate(build())
        assert est.flash_kb < mcu.device.flash_kb and est.peak_sram_kb < mcu.device.sram_kb


def test_depthwise_is_slower_per_mac(mcu: HardwareProfile) -> None:
    assert mcu.analytic is not None
    dw, regular = mcu.analytic.depthwise_macs_per_cycle, mcu.analytic.macs_per_cycle
    assert dw["int8"] < regular["int8"]
