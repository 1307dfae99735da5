"""Fit the STM32F746 analytic constants to published MLPerf Tiny latencies.

Target rows: the slowest published engine on the DISCO-F746NG for every benchmark, which is
the same submission for all four (Plumerai Inference Engine, MLPerf Tiny v0.7; no
TFLite-Micro reference run exists for this board). Fitted, one constant per model, by
Gauss-Seidel bisection: int8 ``macs_per_cycle`` to ResNet-8 (IC), int8
``depthwise_macs_per_cycle`` to DS-CNN (KWS), ``mem_bw_gbps`` to the FC autoencoder (AD).
MobileNetV1 (VWW, v0.7 and v1.0 of the same engine) is held out. fp32 constants come from
the fp32/int8 latency ratios of the same Cortex-M7 core on the NUCLEO-H7A3ZI (Bosch HALE
v1.2; IC -> fp32 MAC rate, VWW -> fp32 depthwise rate; the AD ratio is held out).
``fit_fp32_from_ratios`` is shared with the STM32H743 fit (``calibrate_devices``).

>>> from autocompress.hardware.profile import load_profile
>>> rows = calibration_table(load_profile("stm32f746"))
>>> all(abs(row["error"]) < 0.30 for row in rows)
True
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from autocompress.errors import did_you_mean
from autocompress.hardware.cost import CostModel
from autocompress.hardware.formats import LayerFormat
from autocompress.hardware.reference_models import REFERENCE_MODELS
from autocompress.hardware.reference_zoo import ZOO
from autocompress.hardware.spec import AnalyticSpec, CalibrationPoint, HardwareProfile

CSV = "shared/data/mlperf-tiny/mlperf_tiny_performance.csv"
FP32 = LayerFormat(weight_bits=32, act_bits=32)
# model-name suffix -> format every layer runs in (no suffix: the profile's preferred format)
SUFFIX_FORMATS = {"-fp32": FP32, "-fp16": LayerFormat(weight_bits=16, act_bits=16),
                  "-int8": LayerFormat(weight_bits=8, act_bits=8)}


@dataclass(frozen=True, kw_only=True)
class Published:
    model: str                    # key of REFERENCE_MODELS
    published_ms: float
    source: str
    held_out: bool = False


# DISCO-F746NG, MLPerf Tiny v0.7 closed, plumerai, "Plumerai Inference Engine" (int8).
STM32F746_INT8 = (
    Published(model="resnet8-ic", published_ms=65.1508, source=f"{CSV} line 29 (v0.7 plumerai "
              "DISCO_F746NG ic)"),
    Published(model="ds-cnn-kws", published_ms=19.5545, source=f"{CSV} line 30 (v0.7 plumerai "
              "DISCO_F746NG kws)"),
    Published(model="fc-autoencoder-ad", published_ms=2.4227, source=f"{CSV} line 28 (v0.7 "
              "plumerai DISCO_F746NG ad)"),
    Published(model="mobilenetv1-0.25-vww", published_ms=59.3965, held_out=True,
              source=f"{CSV} line 31 (v0.7 plumerai DISCO_F746NG vww)"),
    # the same engine a round later (v1.0); its IC/KWS/AD rows re-measure fitted models
    Published(model="mobilenetv1-0.25-vww", published_ms=57.0288, held_out=True,
              source=f"{CSV} line 85 (v1.0 plumerai DISCO_F746NG vww)"),
)
# NUCLEO-H7A3ZI (Cortex-M7 @280 MHz), MLPerf Tiny v1.2, bosch HALE 1.0.175: fp32 / int8.
H7A3_FP32_RATIO = {
    "resnet8-ic": (124.2236 / 45.8484, f"{CSV} lines 256/259 (v1.2 bosch H7A3ZI float/int8 ic)"),
    "mobilenetv1-0.25-vww": (81.42 / 43.7637, f"{CSV} lines 257/261 (vww float/int8)"),
    "fc-autoencoder-ad": (5.2299 / 1.3594, f"{CSV} lines 255/258 (ad float/int8), held out"),
}


def unknown_reference(model: str) -> str | None:
    """None when :func:`predict_ms` knows ``model``; else a hint naming the models it knows.

    >>> unknown_reference("resnet8-ic-fp32") is None, unknown_reference("resnet8-i")
    (True, "did you mean 'resnet8-ic'?")
    """
    known = [*REFERENCE_MODELS, *ZOO]
    base = next((model.removesuffix(s) for s in SUFFIX_FORMATS if model.endswith(s)), model)
    if base in known:
        return None
    return did_you_mean(model, known) or (f"one of {', '.join(known)} (a -fp32, -fp16 or "
                                          "-int8 suffix sets its format)")


def predict_ms(profile: HardwareProfile, model: str, fmt: LayerFormat | None = None) -> float:
    """Predicted whole-model latency of a reference model, all layers in ``fmt``.

    A ``-fp32``/``-fp16``/``-int8`` suffix on ``model`` sets the format
    (``fc-autoencoder-ad-fp32``); names come from REFERENCE_MODELS or the ImageNet ZOO.
    """
    for suffix, suffix_fmt in SUFFIX_FORMATS.items():
        if model.endswith(suffix):
            model, fmt = model.removesuffix(suffix), suffix_fmt
    build = REFERENCE_MODELS.get(model) or ZOO[model]
    return CostModel(profile).estimate(build(), default=fmt).latency_ms


def _solve(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Bisection (log scale) for a monotone ``f`` on [lo, hi]."""
    rising = f(hi) > f(lo)
    for _ in range(50):
        mid = (lo * hi) ** 0.5
        if (f(mid) < target) == rising:
            lo = mid
        else:
            hi = mid
    return float((lo * hi) ** 0.5)


def _set(profile: HardwareProfile, name: str, fmt: str | None, value: float) -> HardwareProfile:
    """``profile`` with analytic constant ``name`` (or ``name[fmt]``) set to ``value``."""
    spec = profile.analytic
    assert spec is not None
    new: Any = value if fmt is None else {**getattr(spec, name), fmt: value}
    return replace(profile, analytic=replace(spec, **{name: new}))


def _refit(profile: HardwareProfile, name: str, fmt: str | None, model: str, target_ms: float,
           run: LayerFormat | None = None, bounds: tuple[float, float] = (0.005, 10.0),
           then: Callable[[HardwareProfile], HardwareProfile] | None = None,
           ) -> HardwareProfile:
    """Set one constant so that ``model`` run in ``run`` predicts ``target_ms``; ``then``
    (e.g. constants tied to the one fitted) is applied to every trial profile and the result.
    """
    def tied(value: float) -> HardwareProfile:
        p = _set(profile, name, fmt, value)
        return then(p) if then is not None else p

    return tied(_solve(lambda value: predict_ms(tied(value), model, run), target_ms, *bounds))


def fit_stm32f746(profile: HardwareProfile, rounds: int = 8) -> AnalyticSpec:
    """Refit the int8 and fp32 analytic constants of ``profile`` (others kept)."""
    target = {row.model: row.published_ms for row in STM32F746_INT8 if not row.held_out}
    p = profile
    for _ in range(rounds):   # Gauss-Seidel: each constant mostly moves one model
        p = _refit(p, "macs_per_cycle", "int8", "resnet8-ic", target["resnet8-ic"])
        p = _refit(p, "depthwise_macs_per_cycle", "int8", "ds-cnn-kws", target["ds-cnn-kws"])
        p = _refit(p, "mem_bw_gbps", None, "fc-autoencoder-ad", target["fc-autoencoder-ad"])
    p = fit_fp32_from_ratios(p)
    assert p.analytic is not None
    return p.analytic


def fit_fp32_from_ratios(profile: HardwareProfile) -> HardwareProfile:
    """Set a Cortex-M7 profile's fp32 MAC rates so that ResNet-8 (regular) and
    MobileNetV1-0.25 (depthwise) run ``H7A3_FP32_RATIO`` times slower in fp32 than in the
    profile's int8 (the H7A3ZI's measured fp32/int8 ratios on the same core)."""
    p = profile
    for name, model in (("macs_per_cycle", "resnet8-ic"),
                        ("depthwise_macs_per_cycle", "mobilenetv1-0.25-vww")):
        want = predict_ms(p, model) * H7A3_FP32_RATIO[model][0]
        p = _refit(p, name, "fp32", model, want, run=FP32)
    return p


def calibration_points(profile: HardwareProfile) -> tuple[CalibrationPoint, ...]:
    """The calibration figures (int8 rows + the derived fp32 AD check) predicted afresh."""
    ad_fp32 = STM32F746_INT8[2].published_ms * H7A3_FP32_RATIO["fc-autoencoder-ad"][0]
    rows = [*STM32F746_INT8, Published(
        model="fc-autoencoder-ad-fp32", published_ms=round(ad_fp32, 2), held_out=True,
        source="F746 int8 AD (line 28) x H7A3ZI fp32/int8 ratio (lines 255/258)")]
    return tuple(CalibrationPoint(model=row.model, published_ms=row.published_ms,
                                  predicted_ms=round(predict_ms(profile, row.model), 2),
                                  source=row.source, held_out=row.held_out) for row in rows)


def calibration_table(profile: HardwareProfile) -> list[dict[str, object]]:
    """One row per ``profile.calibration`` point: model, published_ms, predicted_ms (now),
    recorded_ms (what the YAML says), error = predicted / published - 1, held_out."""
    rows: list[dict[str, object]] = []
    for point in profile.calibration:
        predicted = predict_ms(profile, point.model)
        rows.append({"model": point.model, "published_ms": point.published_ms,
                     "predicted_ms": round(predicted, 2), "recorded_ms": point.predicted_ms,
                     "error": predicted / point.published_ms - 1.0, "held_out": point.held_out})
    return rows


if __name__ == "__main__":   # print refitted constants and fresh calibration rows
    from autocompress.hardware.profile import load_profile

    base = load_profile("stm32f746")
    fitted = replace(base, analytic=fit_stm32f746(base))
    print(fitted.analytic)
    for point in calibration_points(fitted):
        print(point)
