"""Shipped device profiles against published whole-model latencies they were NOT fitted on.

For every shipped analytic profile (``hardware_profiles/*.yaml`` except measured ones), the
held-out rows of its ``calibration`` list (``held_out: true``; the fitting code in
``autocompress.hardware.calibrate`` / ``calibrate_devices`` records which rows it fits and
never reads the others) are predicted afresh from the profile's constants with the
reference graphs (``hardware/reference_models.py``, ``reference_zoo.py``). Where a
``source`` names a CSV line in ``shared/data``, the published figure is re-read from that
line and must match. Published figures for a device that this repo cannot cost (no
architecture for the model, or no latency in the source) are listed with the reason, not
invented.

    python benchmarks/published_check.py [--target 0.25]

Prints one markdown table (device, model, predicted ms, published ms, error %, within
target, source), one summary line per device, and the figures not checked and why. (The
cost model's speed is ``benchmarks/cost_speed.py``'s.)
"""
from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autocompress.hardware.calibrate import predict_ms  # noqa: E402
from autocompress.hardware.profile import list_profiles, load_profile  # noqa: E402
from autocompress.hardware.spec import CalibrationPoint, HardwareProfile  # noqa: E402

SHARED = ROOT.parent / "shared"       # sources say "shared/data/..."; the repo sits beside it
MIN_HELD_OUT = 3                      # fewer held-out figures than this: say the check is thin

PML = SHARED / "data/published-model-latency/published_model_latency.csv"
# profile -> (device substring, runtime substring) of its rows in PML: same device, same
# runtime. Their latency rows with no calibration point are listed as not checked.
SAME_RUNTIME = {"stm32h743": ("STM32H743", "TinyEngine"),
                "jetson_nano": ("Jetson Nano", "TensorRT"),
                "pixel4": ("Pixel 4", "TFLite CPU")}
# PML model name -> reference graph name, where they differ
ALIASES = {"squeezenet": "squeezenet1_0"}     # Pixel 4 row: variant not stated, 1.0 assumed
# Why the remaining published figures are not checked (see shared/data's READMEs).
REMARKS = (
    ("stm32f746", "MCUNet zoo rows (F746) have MACs/params/SRAM/Flash only: the MCUNet README "
     "gives no latency column"),
    ("stm32f746", "MLPerf Tiny IC/KWS/AD by the same engine in v1.0 re-measure the three "
     "fitted models (not independent); other engines (Bosch HALE, Plumerai 2023.05) are "
     "other runtimes (VWW spans 34-59 ms across them)"),
    ("stm32h743", "mcunet-* models: no architecture in this repo (the MCUNet zoo ships its net "
     "configs as downloads); CMSIS-NN / X-CUBE-AI / TF-Lite Micro rows are other runtimes"),
    ("pixel4", "MobileNetV1 fp32/int8 are the fitted figures; there is no Pixel 4 MobileNetV2 "
     "figure; NASNet / Inception have no graph in reference_zoo"),
    ("jetson_nano", "DenseNets have no graph in reference_zoo; PyTorch rows are another runtime"),
    ("jetson_orin_nano", "shared/data has no Orin Nano figure: the profile is uncalibrated"),
)


def unmatched_rows(profile: HardwareProfile) -> list[str]:
    """Models with a same-device, same-runtime latency in PML but no calibration point."""
    if profile.name not in SAME_RUNTIME or not PML.is_file():
        return []
    device, runtime = SAME_RUNTIME[profile.name]
    known = {point.model.rsplit("-", 1)[0] if point.model.endswith(("-fp16", "-fp32", "-int8"))
             else point.model for point in profile.calibration}
    with PML.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if device in r["device"] and runtime in r["runtime"]
                and r["metric"] == "latency_ms"]
    out = []
    for r in rows:
        name = r["model"].split(" (")[0]
        name = ALIASES.get(name, name)
        if name not in known and name.removesuffix("_bn") not in known:
            out.append(f"{r['model']} {r['value'] or '(' + r['note'] + ')'} ms")
    return out


def published_from_source(source: str) -> float | None:
    """The value at ``<file>.csv line N`` named in ``source`` (None if there is no such
    reference or the data folder is absent)."""
    match = re.search(r"(shared/data/\S+\.csv) lines? (\d+)", source)
    path = SHARED.parent / match.group(1) if match else None
    if match is None or path is None or not path.is_file():
        return None
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    row = rows[int(match.group(2)) - 2]          # line 1 is the header
    return float(row.get("value") or row["latency_ms"])


def check(profile: HardwareProfile) -> list[dict[str, object]]:
    """One row per held-out calibration point of ``profile``, predicted now."""
    rows = []
    for point in profile.calibration:
        if not point.held_out:
            continue
        rows.append(_row(profile, point))
    return rows


def _row(profile: HardwareProfile, point: CalibrationPoint) -> dict[str, object]:
    predicted = predict_ms(profile, point.model)
    reread = published_from_source(point.source)
    if reread is not None and abs(reread - point.published_ms) > 1e-3 * point.published_ms:
        raise SystemExit(f"{profile.name} {point.model}: profile says {point.published_ms} ms, "
                         f"the source line says {reread}")
    return {"device": profile.name, "model": point.model, "predicted_ms": predicted,
            "published_ms": point.published_ms, "error": predicted / point.published_ms - 1,
            "source": point.source, "verified": reread is not None,
            "csv_line": re.search(r"\.csv lines? \d+", point.source) is not None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", type=float, default=0.25, help="relative error target")
    args = ap.parse_args()
    profiles = [load_profile(name) for name in list_profiles()]
    shipped = [p for p in profiles if p.measurement.method != "measured"]
    all_rows: list[dict[str, object]] = []
    if not (SHARED / "data").is_dir():
        print(f"note: {SHARED / 'data'} not found (it sits beside the repo in the development "
              "setup): published figures are taken from the profiles, not re-read from their "
              "CSV lines\n")
    print(f"| device | model | predicted ms | published ms | error % | within ±"
          f"{args.target:.0%} | source |")
    print("|---|---|---:|---:|---:|:---:|---|")
    for profile in shipped:
        for r in check(profile):
            all_rows.append(r)
            ok = abs(float(r["error"])) <= args.target  # type: ignore[arg-type]
            mark = "" if r["verified"] else " (not re-read: no data folder)" if r["csv_line"] \
                else " (derived, not one CSV line)"
            print(f"| {r['device']} | {r['model']} | {r['predicted_ms']:.2f} | "
                  f"{r['published_ms']:g} | {float(r['error']) * 100:+.1f} | "  # type: ignore[arg-type]
                  f"{'yes' if ok else '**no**'} | {r['source']}{mark} |")
    print()
    for profile in shipped:
        errs = [abs(float(r["error"])) for r in all_rows  # type: ignore[arg-type]
                if r["device"] == profile.name]
        fitted = sum(not p.held_out for p in profile.calibration)
        if not errs:
            print(f"{profile.name}: no held-out published figure ({fitted} fitted): "
                  "not checked; treat as uncalibrated")
            continue
        within = sum(e <= args.target for e in errs)
        thin = (f"; only {len(errs)} held-out figure(s): too few to judge the profile"
                if len(errs) < MIN_HELD_OUT else "")
        print(f"{profile.name}: {within}/{len(errs)} held-out figures within ±"
              f"{args.target:.0%}, median |error| {statistics.median(errs):.1%}, worst "
              f"{max(errs):.1%} ({fitted} figures fitted){thin}")
    total = sum(abs(float(r["error"])) <= args.target for r in all_rows)  # type: ignore[arg-type]
    print(f"all devices: {total}/{len(all_rows)} within ±{args.target:.0%}")
    print("\nPublished figures not checked, and why:")
    for profile in shipped:
        missing = unmatched_rows(profile)
        if missing:
            print(f"- {profile.name}, same device and runtime, no graph or fitted: "
                  + "; ".join(missing))
    for device, why in REMARKS:
        print(f"- {device}: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
