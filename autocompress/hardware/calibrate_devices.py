"""Fit the phone and Jetson analytic constants to published whole-model latency.

Sources are rows of ``shared/data/published-model-latency/published_model_latency.csv``
(line numbers below count the header as line 1). Each device fits a few constants, one per
published figure, by Gauss-Seidel bisection (``calibrate._refit``); the other figures are
held out and only predicted. Print refitted constants and fresh tables with
``python -m autocompress.hardware.calibrate_devices``.

- ``pixel4`` (TFLite CPU, 4 big-core threads): fp32 MAC rate <- MobileNetV1 float 14.0 ms,
  int8 MAC rate <- MobileNetV1 quant 5.0 ms; SqueezeNet (float) held out.
- ``jetson_nano`` (TensorRT fp16 via torch2trt): fp16 MAC rate <- ResNet-18 11.4 ms,
  per-op overhead <- SqueezeNet 1.1 4.34 ms; ResNet-34/50/101/152, VGG-11/13/16 (and their
  ``_bn`` variants, the same graph once BN is folded), AlexNet and SqueezeNet 1.0 held out.
- ``stm32h743`` (TinyEngine, int8, Cortex-M7 @480 MHz): the int8 MAC rate <- ProxylessNAS
  w0.3 at 176 (176 ms); the depthwise int8 rate is tied to it by the STM32F746 fit's
  depthwise/regular ratio (same Cortex-M7 core), memory bandwidth and per-op overhead are
  the F746's scaled by clock, fp32 from the H7A3ZI fp32/int8 ratios
  (``calibrate.fit_fp32_from_ratios``); MobileNetV2 w0.3 and ProxylessNAS w0.3 at 64 held
  out. The MCUNet models of the same table have no architecture in this repo: not used.
- ``jetson_orin_nano``: no published measurement in ``shared/data``; its constants are the
  Nano's fitted efficiencies (fraction of spec peak) times the Orin Nano's spec peaks
  (:func:`orin_from_nano`). It has no calibration rows: treat it as uncalibrated.

>>> from autocompress.hardware.profile import load_profile
>>> rows = calibration_table(load_profile("jetson_nano"))
>>> sum(row["held_out"] for row in rows) >= 5
True
"""
from __future__ import annotations

from dataclasses import replace

from autocompress.hardware.calibrate import (
    Published,
    _refit,
    _set,
    calibration_table,
    fit_fp32_from_ratios,
    predict_ms,
)
from autocompress.hardware.spec import AnalyticSpec, CalibrationPoint, HardwareProfile

__all__ = ["DEVICES", "calibration_points", "calibration_table", "fit_device", "orin_from_nano"]

CSV = "shared/data/published-model-latency/published_model_latency.csv"

PIXEL4 = (   # Pixel 4, TFLite CPU 4 threads, Android 10 (tensorflow measurement.md @12d3eaa7)
    Published(model="mobilenet_v1_1.0_224-fp32", published_ms=14.0,
              source=f"{CSV} line 476 (Pixel 4, TFLite CPU 4 threads, float)"),
    Published(model="mobilenet_v1_1.0_224-int8", published_ms=5.0,
              source=f"{CSV} line 481 (Pixel 4, TFLite CPU 4 threads, quant)"),
    Published(model="squeezenet1_0-fp32", published_ms=23.9, held_out=True,
              source=f"{CSV} line 490 (Pixel 4, TFLite CPU 4 threads, float; SqueezeNet "
              "variant not stated, 1.0 assumed)"),
)
_NANO_ROWS = {"resnet18": (11.4, 209), "squeezenet1_1": (4.34, 205), "resnet34": (20.2, 213),
              "resnet50": (29.8, 217), "resnet101": (51.1, 221), "resnet152": (72.3, 225),
              "vgg11": (55.1, 245), "vgg16": (85.1, 253), "squeezenet1_0": (7.6, 201),
              "alexnet": (14.7, 197), "vgg13": (68.7, 249)}
_NANO_BN_ROWS = {"vgg11": (54.8, 257), "vgg13": (68.5, 261), "vgg16": (84.3, 265)}
JETSON_NANO = tuple(   # torch2trt benchmarks/JETSON_NANO.md @4e820ae3, TensorRT fp16, batch 1
    Published(model=f"{name}-fp16", published_ms=ms, held_out=name not in ("resnet18",
                                                                           "squeezenet1_1"),
              source=f"{CSV} line {line} (Jetson Nano, TensorRT via torch2trt, fp16)")
    for name, (ms, line) in _NANO_ROWS.items()) + tuple(
    Published(model=f"{name}-fp16", published_ms=ms, held_out=True,
              source=f"{CSV} line {line} (Jetson Nano, TensorRT via torch2trt, fp16, "
              f"{name}_bn: BN folded, same graph)")
    for name, (ms, line) in _NANO_BN_ROWS.items())
_H743 = "STM32H743, TinyEngine @0363956, int8"
STM32H743 = (   # mit-han-lab/tinyengine README "Measured Results" @47bb283c
    Published(model="proxyless-w0.3-r176", published_ms=176.0,
              source=f"{CSV} line 41 ({_H743})"),
    Published(model="mbv2-w0.3-r64", published_ms=23.0, held_out=True,
              source=f"{CSV} line 45 ({_H743})"),
    Published(model="proxyless-w0.3-r64", published_ms=23.0, held_out=True,
              source=f"{CSV} line 37 ({_H743}; the README prints the unit as kB)"),
)

# (constant, format or None, published row index, bounds) fitted in this order, per device
FITS: dict[str, tuple[tuple[str, str | None, int, tuple[float, float]], ...]] = {
    "pixel4": (("gmacs_per_s", "fp32", 0, (0.1, 1e4)), ("gmacs_per_s", "int8", 1, (0.1, 1e4))),
    "jetson_nano": (("gmacs_per_s", "fp16", 0, (0.1, 1e4)),
                    ("per_op_overhead_us", None, 1, (0.01, 1e4))),
    "stm32h743": (("macs_per_cycle", "int8", 0, (0.005, 10.0)),),
}
# STM32F746 fit (stm32f746.yaml): depthwise / regular int8 MAC-per-cycle on the same core.
F746_DW_RATIO = 0.1851 / 0.9012
# (constant, format, source constant, source format, factor): set after every fitted step
TIES: dict[str, tuple[tuple[str, str, str, str, float], ...]] = {
    # Maxwell: fp32 at half the fp16 rate (spec 236 vs 472 GFLOPS)
    "jetson_nano": (("gmacs_per_s", "fp32", "gmacs_per_s", "fp16", 0.5),),
    "stm32h743": (("depthwise_macs_per_cycle", "int8", "macs_per_cycle", "int8",
                   F746_DW_RATIO),),
}
FP32_FROM_RATIOS = frozenset({"stm32h743"})   # fp32 rates via calibrate.fit_fp32_from_ratios
DEVICES: dict[str, tuple[Published, ...]] = {"pixel4": PIXEL4, "jetson_nano": JETSON_NANO,
                                             "stm32h743": STM32H743}

# Spec peaks, MAC/s (1 MAC = 2 FLOP) and B/s; sources in hardware_profiles/jetson_*.yaml.
NANO_PEAK = {"fp16": 236e9, "fp32": 118e9, "bw": 25.6e9}   # 128 Maxwell cores @ 921.6 MHz
ORIN_NANO_PEAK = {"fp16": 1280e9, "fp32": 640e9, "int8": 2560e9, "bw": 68e9}  # 1024 Ampere
# cores @ 625 MHz on CUDA cores (fp16 2x fp32; int8 dp4a 4x fp32); batch-1 convs of this
# size rarely fill the 32 tensor cores, so their 20 dense TOPS are not used as the peak.
ORIN_OVERHEAD_SCALE = 0.5   # per-op launch cost vs Nano: Cortex-A78AE vs A57 host (assumed)


def fit_device(profile: HardwareProfile, rounds: int = 6) -> AnalyticSpec:
    """Refit ``profile``'s fitted constants against ``DEVICES[profile.name]``."""
    rows, steps = DEVICES[profile.name], FITS[profile.name]
    p = _tie(profile)
    for _ in range(rounds):
        for name, fmt, index, bounds in steps:
            p = _refit(p, name, fmt, rows[index].model, rows[index].published_ms,
                       bounds=bounds, then=_tie)
    if profile.name in FP32_FROM_RATIOS:
        p = fit_fp32_from_ratios(p)
    assert p.analytic is not None
    return p.analytic


def _tie(profile: HardwareProfile) -> HardwareProfile:
    """Apply ``TIES[profile.name]``: constants set as a fixed factor of another (inside the
    solve, so a tied constant moves with the one being fitted)."""
    for name, fmt, src, src_fmt, factor in TIES.get(profile.name, ()):
        assert profile.analytic is not None
        value = getattr(profile.analytic, src)[src_fmt] * factor
        profile = _set(profile, name, fmt, value)
    return profile


def orin_from_nano(nano: AnalyticSpec) -> dict[str, float]:
    """Orin Nano constants: the Nano's fitted fraction of peak times the Orin's peaks."""
    eff = nano.gmacs_per_s["fp16"] * 1e9 / NANO_PEAK["fp16"]
    bw_eff = nano.mem_bw_gbps * 1e9 / NANO_PEAK["bw"]
    out = {f"gmacs_per_s.{fmt}": round(eff * ORIN_NANO_PEAK[fmt] / 1e9, 1)
           for fmt in ("fp16", "fp32", "int8")}
    out["mem_bw_gbps"] = round(bw_eff * ORIN_NANO_PEAK["bw"] / 1e9, 2)
    out["per_op_overhead_us"] = round(nano.per_op_overhead_us * ORIN_OVERHEAD_SCALE, 1)
    return out


def calibration_points(profile: HardwareProfile) -> tuple[CalibrationPoint, ...]:
    """The device's published rows, predicted afresh by ``profile``."""
    return tuple(CalibrationPoint(model=row.model, published_ms=row.published_ms,
                                  predicted_ms=round(predict_ms(profile, row.model), 2),
                                  source=row.source, held_out=row.held_out)
                 for row in DEVICES[profile.name])


def _yaml_row(point: CalibrationPoint) -> str:
    held = ", held_out: true" if point.held_out else ""
    return (f"  - {{model: {point.model}, published_ms: {point.published_ms}, predicted_ms: "
            f"{point.predicted_ms}{held}, source: \"{point.source}\"}}")


if __name__ == "__main__":   # print refitted constants and YAML calibration rows
    from autocompress.hardware.profile import load_profile

    for device in DEVICES:
        base = load_profile(device)
        fitted = replace(base, analytic=fit_device(base))
        print(f"# {device}: {fitted.analytic}")
        for point in calibration_points(fitted):
            print(_yaml_row(point))
        if device == "jetson_nano":
            assert fitted.analytic is not None
            print("# jetson_orin_nano:", orin_from_nano(fitted.analytic))
    print(calibration_table(load_profile("jetson_orin_nano")))
