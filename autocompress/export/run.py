"""``autocompress export``: choose a trial, rebuild it from its plan and trained weights,
and write a deployable folder: plan.json, model.pt, model.onnx, model.int8.onnx and
manifest.json (accuracy re-measured on the test split, predicted cost on every profile,
measured host latency, parity, seed, profile sha256, versions).

The folder is written under a temporary name and renamed at the end: nothing
half-written is left looking complete.
"""
from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from autocompress.compress import CompressionPlan, bake
from autocompress.compress.actquant import input_ranges, remove_act_quant
from autocompress.compress.checkpoint import load_state, save_packed
from autocompress.compress.size import stored_bytes
from autocompress.errors import ExportError
from autocompress.graph import inspect_model
from autocompress.pareto import Objective, ParetoFront
from autocompress.search.objective import build_compressed, estimate
from autocompress.search.reduce import NONE
from autocompress.search.rundir import environment, load_run, write_json
from autocompress.search.setup import build_context
from autocompress.train import accuracy

PARITY_TOL = 1e-3        # max |torch - ORT fp32| logits difference accepted silently
INT8_DROP_WARN = 0.005   # warn when int8 ONNX test accuracy drops more than 0.5 points


def choose_record(records: list[dict[str, Any]], *, trial: int | None,
                  max_latency_ms: float | None, device: str, budgets: list[Any],
                  min_accuracy: float | None) -> dict[str, Any]:
    by_number = {r["number"]: r for r in records}
    if trial is not None:
        rec = by_number.get(trial)
        if rec is None:
            raise ExportError(f"trial {trial} does not exist", loc="--trial",
                              hint=f"trials are 0..{max(by_number)}" if by_number
                              else "the run has no recorded trial yet")
        if rec["state"] != "complete":
            raise ExportError(f"trial {trial} is {rec['state']}, it has no trained model",
                              loc="--trial", hint="pick a complete trial (see report/trials.csv)")
        return rec
    objectives = [Objective.accuracy(), Objective.latency(device)]
    front = ParetoFront.from_records(records, objectives, budgets)
    limits = {f"{device}.latency_ms": float(max_latency_ms)} if max_latency_ms else {}
    choice = front.select(max_values=limits,
                          min_values={"accuracy": min_accuracy} if min_accuracy else {})
    if choice is None:
        fastest = min((p["cost"][device]["latency_ms"] for p in front.points), default=None)
        within = [p["metrics"]["accuracy"] for p in front.points
                  if p["cost"][device]["latency_ms"] <= float(max_latency_ms or "inf")]
        hint = ("the run has no feasible complete trial" if fastest is None
                else f"the fastest front point needs {fastest:.2f} ms" if not within
                else f"the most accurate front point within it reaches {max(within):.4f}")
        raise ExportError(f"no front point meets latency <= {max_latency_ms} ms on {device}"
                          + (f" and accuracy >= {min_accuracy}" if min_accuracy else ""),
                          loc="--max-latency-ms", hint=hint)
    return dict(choice)


def better_over_budget(records: list[dict[str, Any]], chosen: dict[str, Any], device: str,
                       max_latency_ms: float) -> list[dict[str, Any]]:
    """Complete trials within the latency limit and more accurate than the chosen one: the
    front left them out because they break the run's budgets (e.g. the baselines, which are
    trained whatever the budget)."""
    acc = chosen["metrics"]["accuracy"]
    return [r for r in records if r.get("state") == "complete"
            and r.get("metrics", {}).get("accuracy", 0.0) > acc
            and r.get("cost", {}).get(device, {}).get("latency_ms", float("inf"))
            <= max_latency_ms]


def host_prediction_error(graph: Any, measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Predicted (``host`` profile, made by ``autocompress profile``) vs measured ORT latency
    of the exported files on this machine. Without a host profile, says how to make one."""
    from autocompress.errors import ProfileError
    from autocompress.hardware import CostModel, LayerFormat, load_profile

    try:
        profile = load_profile("host")
    except ProfileError:
        return {"note": "no host profile: run `autocompress profile --out "
                        "hardware_profiles/host.yaml` to compare predicted and measured latency"}
    out: dict[str, Any] = {"profile_sha256": profile.sha256}
    for name, fmt in (("fp32", LayerFormat(weight_bits=32, act_bits=32)),
                      ("int8", LayerFormat(weight_bits=8, act_bits=8))):
        predicted = CostModel(profile).estimate(graph, default=fmt).latency_ms
        real = float(measured[name]["median_ms"])
        out[name] = {"predicted_ms": predicted, "measured_ms": real,
                     "error": (predicted - real) / real if real > 0 else None}
    return out


def export_run(run_dir: Path, *, trial: int | None = None, max_latency_ms: float | None = None,
               device: str | None = None, min_accuracy: float | None = None,
               out: Path | None = None, quiet: bool = False) -> Path:
    from autocompress.config import budgets_of
    from autocompress.export.onnx_io import (
        count_onnx_params,
        export_onnx,
        measure_latency,
        onnx_accuracy,
        parity,
    )
    from autocompress.export.quant_ort import quantize_int8

    if trial is not None and (min_accuracy is not None or device is not None):
        flag = "--min-accuracy" if min_accuracy is not None else "--device"
        raise ExportError(f"{flag} chooses among front points, so it does not apply to --trial",
                          loc=flag, hint="drop it, or choose with --max-latency-ms")
    if min_accuracy is not None and not 0.0 <= min_accuracy <= 1.0:
        raise ExportError(f"expected an accuracy between 0 and 1, got {min_accuracy:g}",
                          loc="--min-accuracy",
                          hint=f"accuracy is a fraction: {min_accuracy / 100:g} means "
                               f"{min_accuracy:g}%" if 1 < min_accuracy <= 100 else None)
    cfg, records = load_run(run_dir)
    device = device or cfg.hardware.profiles[0]
    if device not in cfg.hardware.profiles:
        raise ExportError(f"unknown device '{device}' for this run", loc="--device",
                          hint=f"the run was costed on: {', '.join(cfg.hardware.profiles)}")
    rec = choose_record(records, trial=trial, max_latency_ms=max_latency_ms, device=device,
                        budgets=budgets_of(cfg), min_accuracy=min_accuracy)
    number = int(rec["number"])
    if max_latency_ms is not None and not quiet and (
            over := better_over_budget(records, rec, device, max_latency_ms)):
        print("note: more accurate within the limit, but over the run's budgets: " + ", ".join(
            f"trial {r['number']}" + (f" ({r['baseline']})" if r.get("baseline") else "")
            + f" {r['metrics']['accuracy']:.4f} at {r['cost'][device]['latency_ms']:.2f} ms"
            for r in over) + "; export one with --trial N")
    weights = run_dir / "trials" / str(number) / "model.pt"
    if not weights.is_file():
        raise ExportError(f"trial {number} has no saved weights", loc=str(weights))
    out = out or run_dir / "export" / str(number)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError("output folder exists and is not empty" if out.is_dir() else
                          "output path is a file, not a folder", loc=str(out),
                          hint="choose another --out or delete it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise ExportError(f"cannot write the output folder: {exc.strerror}", loc=str(out),
                          hint="choose a writable --out") from None

    ctx = build_context(cfg, reduction=NONE)     # the record's plan says it all
    plan = CompressionPlan.from_dict(rec["plan"])
    model = bake(build_compressed(ctx, plan, int(rec["seed"])))
    try:
        model.load_state_dict(load_state(weights))
    except Exception as exc:   # unreadable, truncated, newer format, or not this trial's
        raise ExportError(f"cannot read the trial's saved weights: {type(exc).__name__}: "
                          f"{str(exc)[:300]}", loc=str(weights)) from None
    model.eval()
    graph = inspect_model(model, ctx.example())
    costs = estimate(ctx, plan, graph)
    test = ctx.data.test
    size = stored_bytes(model, plan)
    weight_bits = {f: c.get("bits") for f, cs in plan.to_dict()["layers"].items()
                   for c in cs if c["kind"] == "quant"}
    x_test, y_test = test.x.numpy(), test.y.numpy()
    try:
        (tmp / "plan.json").write_text(plan.to_json() + "\n")
        packed = save_packed(model, plan, tmp / "model.pt")
        # Activation fake quant stays out of the fp32 graph (the int8 file quantizes
        # activations: over the torch-calibrated ranges where the plan quantizes them, else
        # from ORT's own calibration); parity is checked against that same network.
        deploy = remove_act_quant(copy.deepcopy(model))
        fp32 = export_onnx(deploy, ctx.example(), tmp / "model.onnx")
        calib = ctx.data.train.x[:1024].numpy()   # calibration: training data only
        ranges = input_ranges(model, ctx.example())   # activation ranges calibrated in torch
        int8 = quantize_int8(fp32, tmp / "model.int8.onnx", calib, input_ranges=ranges)
        diff = parity(deploy, fp32, test.x)
        example = x_test[:1].astype(np.float32)
        acc = {"val_trial": rec["metrics"].get("accuracy"), "test_torch": accuracy(model, test),
               "test_onnx_fp32": onnx_accuracy(fp32, x_test, y_test),
               "test_onnx_int8": onnx_accuracy(int8, x_test, y_test)}
        host = {"fp32": measure_latency(fp32, example), "int8": measure_latency(int8, example)}
        host_check = host_prediction_error(graph, host)
        manifest = {
            "trial": number, "plan_id": plan.plan_id, "seed": rec["seed"],
            "baseline": rec.get("baseline"), "accuracy": acc,
            "params": graph.params, "macs": graph.macs,
            "stored_bytes": size.total_bytes,
            "model_pt": {**packed.to_dict(), "stored_bytes": size.total_bytes,
                         "note": "model.pt = the weights packed as stored_bytes counts them "
                                 "(sub-8-bit codes at their bit-width, codebooks, sparse "
                                 "encodings) + per-channel scales + the other state-dict "
                                 "tensors as float (BatchNorm unfolded: 4 values per channel, "
                                 "where stored_bytes counts one folded bias) + its index; "
                                 "read it with autocompress.compress.checkpoint.load_state"},
            "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())},
            "onnx_params": count_onnx_params(fp32),
            "parity_max_abs_diff": diff,
            "predicted": {n: c.summary() for n, c in costs.items()},
            "predicted_at_search": {n: {k: v for k, v in c.items() if k in
                                        ("latency_ms", "flash_kb", "peak_sram_kb")}
                                    for n, c in rec.get("cost", {}).items()},
            "host_latency_ms": host,
            "host_predicted_vs_measured": host_check,
            "weight_bits": weight_bits,
            "onnx_int8_activation_ranges": {
                "from_torch": sum(r is not None for r in ranges),
                "from_onnxruntime_minmax": sum(r is None for r in ranges)},
            "onnx_int8_weight_bits": {f: 8 for f, b in weight_bits.items() if b is not None
                                      and b < 32},
            "notes": ["sub-8-bit weights are stored packed at their bit-width in model.pt and "
                      "counted so in stored_bytes; model.int8.onnx runs every quantized layer, "
                      "sub-8-bit ones included, as int8 (8-bit weights in the file: ONNX "
                      "Runtime has no faster sub-8-bit kernels), so it is larger than "
                      "stored_bytes for sub-8-bit plans"],
            **environment(int(rec["seed"]), {n: p.sha256 for n, p in ctx.profiles.items()}),
        }
        write_json(tmp / "manifest.json", manifest)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        _summary(out, manifest, device)
    return out


def _summary(out: Path, m: dict[str, Any], device: str) -> None:
    acc, pred, host = m["accuracy"], m["predicted"][device], m["host_latency_ms"]
    files = m["files"]
    lines = [
        f"exported trial {m['trial']} (plan {m['plan_id']}) to {out}",
        f"  accuracy   val (search) {acc['val_trial']:.4f} | test torch {acc['test_torch']:.4f}"
        f" | onnx fp32 {acc['test_onnx_fp32']:.4f} | onnx int8 {acc['test_onnx_int8']:.4f}",
        f"  {device:<10} predicted {pred['latency_ms']:.2f} ms, flash {pred['flash_kb']:.1f} KB,"
        f" peak SRAM {pred['peak_sram_kb']:.1f} KB",
        f"  host ORT   fp32 {host['fp32']['median_ms']*1000:.1f} us, "
        f"int8 {host['int8']['median_ms']*1000:.1f} us (median, 1 thread)",
        f"  files      model.onnx {files['model.onnx']/1024:.1f} KB, model.int8.onnx "
        f"{files['model.int8.onnx']/1024:.1f} KB, params {m['params']}",
        f"  parity     max |torch - onnx| = {m['parity_max_abs_diff']:.2e}",
    ]
    check = m.get("host_predicted_vs_measured", {})
    if "fp32" in check:
        lines.append("  host model " + ", ".join(
            f"{k} predicted {check[k]['predicted_ms']*1000:.1f} us ({check[k]['error']:+.0%})"
            for k in ("fp32", "int8")))
    elif check.get("note"):
        lines.append(f"  host model {check['note']}")
    if m["parity_max_abs_diff"] > PARITY_TOL:
        lines.append(f"  WARNING: ONNX differs from torch by more than {PARITY_TOL}")
    if acc["test_torch"] - acc["test_onnx_int8"] > INT8_DROP_WARN:
        lines.append("  WARNING: int8 ONNX loses more than 0.5 points of test accuracy")
    print("\n".join(lines))
