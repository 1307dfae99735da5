"""``autocompress export``: choose a trial, rebuild it from its plan and trained weights,
and write a deployable folder: plan.json, model.pt, model.onnx, model.int8.onnx and
manifest.json (accuracy re-measured on the test split, predicted cost on every profile,
measured host latency, parity, seed, profile sha256, versions).

The folder is written under a temporary name and renamed at the end: nothing
half-written is left looking complete.
"""
from __future__ import annotations

import copy
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from autocompress.compress import CompressionPlan, QuantConfig, bake
from autocompress.compress.actquant import input_ranges, layer_order, remove_act_quant
from autocompress.compress.checkpoint import save_packed
from autocompress.compress.size import stored_bytes
from autocompress.config import SearchConfig, lead_profile
from autocompress.errors import AutocompressError, ExportError, load_problem
from autocompress.export.choose import choice_notes, choose_record, export_limits, int8_file_alternative
from autocompress.export.io_quant import io_quantization
from autocompress.export.islands import island_report
from autocompress.export.load import load_weights, rebuild_info
from autocompress.export.mcu_memory import mcu_memory
from autocompress.export.staging import named_for, staging_folder
from autocompress.export.summary import (
    MODEL_PT_NOTE,
    host_prediction_error,
    int8_file_cost,
    over_budget,
    print_summary,
)
from autocompress.graph import inspect_model
from autocompress.hardware.formats import INT8_ACTIVATIONS
from autocompress.search.objective import build_compressed, estimate
from autocompress.search.reduce import NONE
from autocompress.search.rundir import (
    check_run_files,
    environment,
    load_run,
    search_environment,
    write_json,
)
from autocompress.search.setup import SearchContext, build_context
from autocompress.search.user_code import code_changes
from autocompress.train import accuracy

_RUN_OWNED = ("trials", "report", "ray", "ray_tmp")     # folders of a run dir its search writes


def _within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (links and ``..`` resolved)."""
    return path.resolve().is_relative_to(folder.resolve())


def export_run(run_dir: str | Path, *, trial: int | None = None,
               max_latency_ms: float | None = None, device: str | None = None,
               min_accuracy: float | None = None, out: str | Path | None = None,
               max_flash_kb: float | None = None, max_peak_sram_kb: float | None = None,
               activations: str | None = None, quiet: bool = False) -> Path:
    """Export a trial of the run in ``run_dir`` (``trial``, or the most accurate front point
    within ``max_latency_ms``, ``max_flash_kb`` and ``max_peak_sram_kb`` on ``device`` with at
    least ``min_accuracy``; none: the most accurate front point) to ``out`` (default
    ``run_dir/export/<trial>``): plan.json, model.pt, model.onnx, model.int8.onnx and
    manifest.json. ``activations``: the int8 file's activation form, one of
    ``INT8_ACTIVATIONS`` (default: the form ``device``'s runtime takes, its profile's
    ``formats.int8_activations``). Returns ``out``."""
    from autocompress.budgets import budgets_of
    from autocompress.export.onnx_io import (
        count_onnx_params,
        export_onnx,
        measure_latency,
        onnx_accuracy,
        opset_of,
        parity,
    )
    from autocompress.export.quant_ort import check_activations, quantize_int8

    run_dir, out = Path(run_dir), None if out is None else Path(out)
    memory = {m: v for m, v in (("flash_kb", max_flash_kb), ("peak_sram_kb", max_peak_sram_kb))
              if v is not None}
    given = {"--max-latency-ms": max_latency_ms, "--max-flash-kb": max_flash_kb,
             "--max-peak-sram-kb": max_peak_sram_kb, "--min-accuracy": min_accuracy}
    if trial is not None and (flag := next((f for f, v in given.items() if v is not None), None)):
        raise ExportError(f"{flag} chooses among front points, so it does not apply to --trial",
                          loc=flag, hint="drop it, or drop --trial")
    if activations is not None:
        check_activations(activations, "--activations")
    for metric, value in memory.items():
        if not value > 0:                                             # also rejects nan
            raise ExportError(f"expected a limit above 0 KB, got {value:g}",
                              loc=f"--max-{metric.replace('_', '-')}")
    if min_accuracy is not None and not 0.0 <= min_accuracy <= 1.0:
        raise ExportError(f"expected an accuracy between 0 and 1, got {min_accuracy:g}",
                          loc="--min-accuracy",
                          hint=f"accuracy is a fraction: {min_accuracy / 100:g} means "
                               f"{min_accuracy:g}%" if 1 < min_accuracy <= 100 else None)
    if max_latency_ms is not None and not max_latency_ms > 0:     # also rejects nan
        raise ExportError(f"expected a latency limit above 0 ms, got {max_latency_ms:g}",
                          loc="--max-latency-ms", hint="give the limit in milliseconds, e.g. "
                          "--max-latency-ms 5, or pick a trial with --trial N")
    owned = next((d for d in _RUN_OWNED if out is not None and _within(out, run_dir / d)), None)
    if owned is not None:
        raise ExportError(f"--out is inside the run dir's {owned}/ folder, whose files the "
                          "search and report write (a resumed run's trials/<n>/model.pt would "
                          "replace the export's)", loc="--out", hint="export outside it, e.g. "
                          f"under {run_dir / 'export'} (the default --out)")
    cfg, records = load_run(run_dir)
    check_run_files(run_dir)          # an edited profile changed the predicted costs
    device = device or lead_profile(cfg)     # the one the progress lines and fronts lead with
    if device not in cfg.hardware.profiles:
        raise ExportError(f"unknown device '{device}' for this run", loc="--device",
                          hint=f"the run was costed on: {', '.join(cfg.hardware.profiles)}; "
                          "for another runtime's int8 file, give --activations "
                          f"{'|'.join(INT8_ACTIVATIONS)} instead")
    rec = choose_record(records, trial=trial, max_latency_ms=max_latency_ms, device=device,
                        budgets=budgets_of(cfg), min_accuracy=min_accuracy, memory=memory)
    number = int(rec["number"])
    if max_latency_ms is not None and not quiet:
        for line in choice_notes(records, rec, device, max_latency_ms, budgets_of(cfg), memory):
            print(line)
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
        tmp, held = staging_folder(out.parent, f".{out.name}.")
    except OSError as exc:
        raise ExportError(f"cannot write the output folder: {exc.strerror}", loc=str(out),
                          hint="choose a writable --out") from None
    try:    # from here on, any failure (Ctrl-C included) removes the temporary folder
        ctx, plan, model = trial_model(cfg, rec, weights, "the model is rebuilt and tested "
                                       "with it as it is, not as the trial was trained")
        graph = inspect_model(model, ctx.example())
        form = activations or ctx.profiles[device].formats.int8_activations  # the run's copy
        costs = estimate(ctx, plan, graph)
        test = ctx.data.test
        size = stored_bytes(model, plan)
        weight_bits = {f: c.get("bits") for f, cs in plan.to_dict()["layers"].items()
                       for c in cs if c["kind"] == "quant"}
        x_test, y_test = test.x.numpy(), test.y.numpy()
        (tmp / "plan.json").write_text(plan.to_json() + "\n")
        packed = save_packed(model, plan, tmp / "model.pt")
        # Activation fake quant stays out of the fp32 graph (the int8 file quantizes
        # activations: over the torch-calibrated ranges where the plan quantizes them, else
        # from ORT's own calibration); parity is checked against that same network.
        deploy = remove_act_quant(copy.deepcopy(model))
        fp32 = export_onnx(deploy, ctx.example(), tmp / "model.onnx")
        calib = ctx.data.train.x[:1024].numpy()   # calibration: training data only
        ranges = input_ranges(model, ctx.example())   # activation ranges calibrated in torch
        float_layers = {f for f, c in plan.configs(QuantConfig).items()
                        if isinstance(c, QuantConfig) and c.bits == 32}
        order = layer_order(deploy, ctx.example())
        keep = [f in float_layers or f.rsplit(".", 1)[0] in float_layers   # low-rank factors
                for f in order]
        int8 = quantize_int8(fp32, tmp / "model.int8.onnx", calib, input_ranges=ranges,
                             keep_float=keep, activations=form)
        used = [r for r, k in zip(ranges, keep, strict=True) if not k]   # int8 layers'
        islands = island_report(int8, form, ctx.profiles[device].device.kind,
                                float_layers=any(keep))
        diff = parity(deploy, fp32, test.x)
        example = x_test[:1].astype(np.float32)
        repeats = [v for k, v in rec["metrics"].items() if k.startswith("repeat_accuracy/")]
        acc = {"val_trial": rec["metrics"].get("accuracy"),     # the mean of train.repeats
               **({"val_trainings": len(repeats),                       # and the best's,
                   "val_exported_weights": max(repeats)} if repeats else {}),  # exported
               "test_torch": accuracy(model, test),
               "test_onnx_fp32": onnx_accuracy(fp32, x_test, y_test),
               "test_onnx_int8": onnx_accuracy(int8, x_test, y_test)}
        host = {"fp32": measure_latency(fp32, example), "int8": measure_latency(int8, example)}
        host_check = host_prediction_error(graph, host, cfg.profile_dirs(), int8, form)
        manifest = {
            "trial": number, "plan_id": plan.plan_id, "seed": rec["seed"],  # the trial's
            "run_seed": cfg.seed,     # the config's; trial seed = it + n (a re-run baseline: its first n)
            "rebuild": rebuild_info(ctx.source, ctx.round_to, ctx.ignored, int(rec["seed"])),
            "baseline": rec.get("baseline"), "over_budget": over_budget(rec, budgets_of(cfg)),
            "accuracy": acc,
            "data": data_info(cfg, ctx.data),     # what the accuracies were measured on
            "params": graph.params, "macs": graph.macs,
            "stored_bytes": size.total_bytes,
            "model_pt": {**packed.to_dict(), "stored_bytes": size.total_bytes,
                         "note": MODEL_PT_NOTE},
            "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())},
            "onnx_params": count_onnx_params(fp32),
            "onnx_opset": opset_of(fp32),            # both files'; DEPLOY_OPSET unless dynamo
            "parity_max_abs_diff": diff,
            "predicted": {n: c.summary() for n, c in costs.items()},
            "predicted_int8_onnx": (as_int8 := int8_file_cost(int8, ctx.cost_models)),
            # the limits the file breaks (it stores sub-8-bit weights at 8 bits): the run's,
            # then export's own, named by their flag
            "int8_onnx_over_budget": (broken := over_budget({"cost": as_int8}, budgets_of(cfg))
                                      + [{**o, "budget": f"--max-{b.metric.replace('_', '-')}"}
                                         for b in export_limits(device, max_latency_ms, memory)
                                         for o in over_budget({"cost": as_int8}, [b])]),
            "int8_file_alternative": (broken and int8_file_alternative(records, rec, device, [
                *budgets_of(cfg), *export_limits(device, max_latency_ms, memory)])) or None,
            "predicted_at_search": {n: {k: v for k, v in c.items() if k in
                                        ("latency_ms", "flash_kb", "peak_sram_kb")}
                                    for n, c in rec.get("cost", {}).items()},
            "host_latency_ms": host,
            "host_predicted_vs_measured": host_check,
            "weight_bits": weight_bits,
            "onnx_int8_activation_type": form,    # the form the target runtime takes
            "onnx_int8_activation_type_from": "--activations" if activations else device,
            "exported_for": device,       # the limits' and the int8 form's profile
            "onnx_int8_io": io_quantization(int8),     # for firmware with int8 input/output
            "activation_bits": {f: c.act_bits for f, c in plan.configs(QuantConfig).items()
                                if isinstance(c, QuantConfig) and c.act_bits < 32
                                and c.bits < 32},          # a float layer runs float ones
            "onnx_int8_activation_ranges": {      # a layer kept float uses neither
                "from_torch": sum(r is not None for r in used),
                "from_onnxruntime_minmax": sum(r is None for r in used)},
            "onnx_int8_weight_bits": {f: 8 for f, k in zip(order, keep, strict=True) if not k},
            "int8_onnx_float_islands": islands,     # what an integer-only runtime cannot run
            "mcu_memory": mcu_memory(int8, as_int8, device, ctx.profiles[device].device.kind),
            "notes": ["sub-8-bit weights are stored packed at their bit-width in model.pt and "
                      "counted so in stored_bytes; model.int8.onnx runs every quantized layer, "
                      "sub-8-bit ones included, as int8 (8-bit weights in the file: ONNX "
                      "Runtime has no faster sub-8-bit kernels), so it is larger than "
                      "stored_bytes for sub-8-bit plans"] if not all(keep) else [
                      "the plan quantizes no layer: model.int8.onnx is the float model"],
            **environment(int(rec["seed"]), {n: p.sha256 for n, p in ctx.profiles.items()}),
            "search_environment": search_environment(run_dir),  # the trial was trained under
        }
        write_json(tmp / "manifest.json", manifest)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except AutocompressError as exc:   # it may name a file of the staging folder, removed now
        shutil.rmtree(tmp, ignore_errors=True)
        raise named_for(exc, tmp, out) from exc.__cause__
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(held)
    print_summary(out, manifest, device, warnings_only=quiet)
    return out


def data_info(cfg: SearchConfig, data: Any) -> dict[str, Any]:
    """The manifest's ``data``: the source the accuracies were measured on, the seed it was
    split with (``data.split_seed``, else the run's) and each split's size; the fractions
    split the built-in digits only (your own data returns its own splits)."""
    out: dict[str, Any] = {"source": cfg.data.source, "split_seed": cfg.data_seed(),
                           "sizes": {name: len(getattr(data, name))
                                     for name in ("train", "val", "test")}}
    if cfg.data.source == "digits":
        out.update(val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction)
    return out


def trial_model(cfg: SearchConfig, rec: Mapping[str, Any], weights: Path, doing: str
                ) -> tuple[SearchContext, CompressionPlan, nn.Module]:
    """(search context, plan, trained model in eval mode) of the trial ``rec``, its weights
    read from ``weights`` (``trials/<n>/model.pt``). Your modules that changed since the
    search are warned about on stderr, saying what the caller is ``doing`` with them, and
    named when the weights no longer fit."""
    changed = code_changes(weights.parents[2], cfg, doing)     # RUN_DIR/trials/<n>/model.pt
    for line in changed:
        print(line, file=sys.stderr)
    ctx = build_context(cfg, reduction=NONE)     # the record's plan says it all
    plan = CompressionPlan.from_dict(rec["plan"])
    model = bake(build_compressed(ctx, plan, int(rec["seed"])))
    try:
        load_weights(model, weights)
    except Exception as exc:   # unreadable, truncated, newer format, or not this trial's
        if changed and "loading state_dict" in str(exc):   # read, but it fits no longer:
            # the model's code changed, the file is most likely fine
            raise ExportError(f"trial {rec['number']}'s saved weights do not fit the model "
                              f"built from your code now ({load_problem(exc)})",
                              loc=str(weights), hint="; ".join(
                                  c.removeprefix("warning: ").split(" since the search")[0]
                                  for c in changed) + " since the search started: restore "
                              "your code as it was then (env.json keeps its sha256)") from None
        raise ExportError(f"not a valid checkpoint for trial {rec['number']}, cannot read the "
                          f"trial's saved weights ({load_problem(exc)})", loc=str(weights),
                          hint="restore the file from a copy of the run dir, or export "
                               "another complete trial: report/trials.csv lists them") from None
    return ctx, plan, model.eval()
