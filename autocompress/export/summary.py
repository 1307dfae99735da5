"""What ``autocompress export`` reports beside the files: the host profile's predicted vs
measured latency, the run budgets the exported trial breaks, and the printed summary."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from autocompress.export.islands import island_line
from autocompress.export.mcu_memory import mcu_line
from autocompress.export.onnx_io import DEPLOY_OPSET

PARITY_TOL = 1e-3        # max |torch - ORT fp32| logits difference accepted silently
INT8_DROP_WARN = 0.005   # warn when int8 ONNX test accuracy drops more than 0.5 points

NO_HOST = ("no host profile: run `autocompress profile --out hardware_profiles/host.yaml` to "
           "compare predicted and measured latency")


def host_prediction_error(graph: Any, measured: dict[str, dict[str, Any]],
                          dirs: Any = (), int8: Path | None = None, form: str = "uint8"
                          ) -> dict[str, Any]:
    """Predicted (``host`` profile, made by ``autocompress profile``) vs measured ORT latency
    of the exported files on this machine; ``host`` is looked up in ``dirs`` (the run's
    profiles), ``./hardware_profiles``, then the repo's. Without a host profile, says how to
    make one; with a malformed one, says what is wrong with it (the export goes on either
    way). ``int8``: the int8 file, costed as written (its float layers float); without it,
    ``graph`` with every layer int8. ``form``: the file's int8 activations; only ``uint8`` is
    what a host profile measures (ONNX Runtime runs signed ones with other, slower kernels),
    so the int8 file is compared only then."""
    from autocompress.errors import ProfileError
    from autocompress.hardware import CostModel, LayerFormat, load_profile
    from autocompress.hardware.profile import profile_path

    try:
        path = profile_path("host", dirs)
    except ProfileError:
        return {"note": NO_HOST}
    try:
        profile = load_profile("host", dirs)
    except (ProfileError, OSError, ValueError) as exc:
        where, problem = str(path), str(exc)
        if isinstance(exc, ProfileError):     # its loc is file:line (or the field)
            where, problem = exc.loc or where, exc.raw_message + (
                f" ({exc.hint})" if exc.hint else "")
        return {"note": f"malformed host profile {where}: {problem}; fix it, or re-create it "
                        f"with `autocompress profile --out {path}`",
                "malformed": str(path), "problem": problem}
    out: dict[str, Any] = {"profile_sha256": profile.sha256,
                           "quick_grid": profile.quick_note() is not None}
    for name, fmt in (("fp32", LayerFormat(weight_bits=32, act_bits=32)),
                      *([("int8", LayerFormat(weight_bits=8, act_bits=8))]
                        if form == "uint8" else [])):
        if name == "int8" and int8 is not None:
            from autocompress.hardware.onnx_graph import onnx_to_graph

            predicted = CostModel(profile).estimate(*onnx_to_graph(int8)).latency_ms
        else:
            predicted = CostModel(profile).estimate(graph, default=fmt).latency_ms
        real = float(measured[name]["median_ms"])
        out[name] = {"predicted_ms": predicted, "measured_ms": real,
                     "error": (predicted - real) / real if real > 0 else None}
    return out


MODEL_PT_NOTE = ("model.pt = the weights packed as stored_bytes counts them (sub-8-bit codes "
                 "at their bit-width, codebooks, sparse encodings) + per-channel scales + the "
                 "other state-dict tensors as float (BatchNorm unfolded: 4 values per "
                 "channel, where stored_bytes counts one folded bias) + its index; read it "
                 "with autocompress.compress.checkpoint.load_state, or the whole model with "
                 "autocompress.load_export(folder)")


def int8_file_cost(int8: Path, cost_models: Any) -> dict[str, dict[str, Any]]:
    """Predicted cost of ``model.int8.onnx`` as written (read back from the file: every
    quantized layer int8, sub-8-bit ones included), per profile. The plan's own prediction
    stores sub-8-bit weights packed, which needs a runtime with such kernels (e.g. CMSIS-NN's
    int4 ones); this is the figure for a flow fed the int8 file."""
    from autocompress.hardware.onnx_graph import onnx_to_graph

    out: dict[str, dict[str, Any]] = {}
    try:
        graph, formats = onnx_to_graph(int8)
    except Exception as exc:  # a note in the manifest, not a failed export
        return {name: {"error": f"{type(exc).__name__}: {exc}"} for name in cost_models}
    for name, cm in cost_models.items():
        try:
            out[name] = {k: float(v) for k, v in cm.estimate(graph, cm.deployed(formats))
                         .summary().items()
                         if k in ("latency_ms", "flash_kb", "peak_sram_kb")}
        except Exception as exc:  # e.g. a LUT miss on a profile without fallback
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def over_budget(record: dict[str, Any], budgets: list[Any]) -> list[dict[str, Any]]:
    """The run's budgets (``hardware.budgets``) the record breaks, as the front judges them:
    a budget's cost over its limit, or a stored constraint above 0."""
    out: list[dict[str, Any]] = []
    for b in budgets:
        if (excess := b.violation(record)) is not None and excess > 0:
            out.append({"budget": b.key, "value": float(b.limit + excess),
                        "limit": float(b.limit)})
    known = {b.key for b in budgets}
    for key, excess in (record.get("constraints") or {}).items():
        if key not in known and isinstance(excess, (int, float)) and excess > 0:
            out.append({"budget": key, "over_by": float(excess)})
    return out


def _budget_text(o: dict[str, Any]) -> str:
    if "value" in o:
        return f"{o['budget']} {o['value']:.4g} > {o['limit']:g}"
    return f"{o['budget']} over by {o['over_by']:.4g}"


def cost_drift(m: dict[str, Any], tolerance: float = 0.005) -> str:
    """Where the manifest's ``predicted`` (the model rebuilt now) and ``predicted_at_search``
    (the record) differ by more than ``tolerance``: '' when they agree."""
    out = []
    for name, now in m["predicted"].items():
        then = m.get("predicted_at_search", {}).get(name, {})
        for key, unit in (("latency_ms", "ms"), ("flash_kb", "KB"), ("peak_sram_kb", "KB")):
            if key in then and abs(now[key] - then[key]) > tolerance * max(abs(then[key]), 1e-9):
                out.append(f"{name} {now[key]:.4g} {unit} now, {then[key]:.4g} {unit} then")
    return "; ".join(out)


def print_summary(out: Path, m: dict[str, Any], device: str, warnings_only: bool = False
                  ) -> None:
    """The export's summary on stdout; ``warnings_only``: its budget and warning lines alone,
    on stderr (``export --quiet``)."""
    acc, host = m["accuracy"], m["host_latency_ms"]
    files = m["files"]
    lines = [f"exported trial {m['trial']} (plan {m['plan_id']}) to {out}"]
    if m.get("baseline"):
        lines.append(f"  baseline   trial {m['trial']} is the '{m['baseline']}' baseline, a "
                     "reference point, not a searched plan")
    if m.get("over_budget"):
        lines.append("  budget     over the run's budget: "
                     + ", ".join(_budget_text(o) for o in m["over_budget"]))
    float_file = _float_file(m)
    if float_file:
        lines.append("  int8 file  the plan quantizes no layer: model.int8.onnx is the float "
                     "model (no Q/DQ nodes)")
    else:
        lines += island_line(m.get("int8_onnx_float_islands"), any(
            b == 32 for b in m.get("weight_bits", {}).values()))
    if m.get("int8_onnx_over_budget"):
        sub8 = any(isinstance(b, int) and b < 8 for b in m.get("weight_bits", {}).values())
        lines.append("  warning    model.int8.onnx breaks "
                     + ", ".join(_budget_text(o) for o in m["int8_onnx_over_budget"])
                     + (" (as the float model it is)" if float_file else
                        " (it stores sub-8-bit weights at 8 bits and costs as written; "
                        "model.pt keeps them packed, for a runtime with sub-8-bit kernels)"
                        if sub8 else " (as the plan does)"))
    if alt := m.get("int8_file_alternative"):
        lines.append(f"  instead    trial {alt['trial']} ({alt['accuracy']:.4f}, "
                     + ", ".join(f"{alt[k]:.4g} {unit}" for k, unit in (
                         ("latency_ms", "ms"), ("flash_kb", "KB flash"),
                         ("peak_sram_kb", "KB SRAM")) if k in alt)
                     + ") stores 8-bit or float weights only, so its int8 file meets them: "
                     f"export it with --trial {alt['trial']}")
    if m.get("onnx_opset", DEPLOY_OPSET) > DEPLOY_OPSET:   # the dynamo exporter's fallback
        lines.append(f"  warning    the ONNX files are at opset {m['onnx_opset']}, not "
                     f"{DEPLOY_OPSET} (torch's TorchScript exporter failed on this model): "
                     "TensorRT before 10 may refuse them")
    if drift := cost_drift(m):
        lines.append(f"  warning    the rebuilt model costs otherwise than at the search "
                     f"({drift}): its code (model.builder) or this package changed since")
    lines += [
        f"  accuracy   val (search) {acc['val_trial']:.4f}"
        + (f" (mean of {acc['val_trainings']} trainings; these weights "
           f"{acc['val_exported_weights']:.4f})" if "val_exported_weights" in acc else "")
        + f" | test torch {acc['test_torch']:.4f}"
        f" | onnx fp32 {acc['test_onnx_fp32']:.4f} | onnx int8 {acc['test_onnx_int8']:.4f}",
        *(line for d in [device, *(d for d in m["predicted"] if d != device)]   # chosen first
          for line in _device_lines(m, d)),
        *([f"  {'':<10} test torch runs the plan's 4-7-bit activations; the ONNX files run "
           "them at 8 bits"] if any(b < 8 for b in m.get("activation_bits", {}).values())
          else []),
        f"  host ORT   fp32 {host['fp32']['median_ms']*1000:.1f} us, "
        f"int8 {host['int8']['median_ms']*1000:.1f} us (median, 1 thread)",
        *_form_line(m),
        f"  files      model.onnx {files['model.onnx']/1024:.1f} KB, model.int8.onnx "
        f"{files['model.int8.onnx']/1024:.1f} KB, params {m['params']}",
        f"  parity     max |torch - onnx| = {m['parity_max_abs_diff']:.2e}",
        *_io_line(m.get("onnx_int8_io")),
        *mcu_line(m),
    ]
    check = m.get("host_predicted_vs_measured", {})
    if "fp32" in check:
        lines.append("  host model " + ", ".join(
            f"{k} predicted {check[k]['predicted_ms']*1000:.1f} us ({check[k]['error']:+.0%})"
            for k in ("fp32", "int8") if k in check)
            + ("" if "int8" in check else f" (int8 not compared: the host profile times uint8 "
               f"activations, this file has {m.get('onnx_int8_activation_type')})"))
        if check.get("quick_grid"):
            lines.append("  host model the host profile is a --quick smoke test (quick grid): "
                         "rough predictions; run `autocompress profile` without --quick")
    elif check.get("note"):
        lines.append(f"  host model {check['note']}")
    if m["parity_max_abs_diff"] > PARITY_TOL:
        lines.append(f"  WARNING: ONNX differs from torch by more than {PARITY_TOL}")
    drop = acc["test_torch"] - acc["test_onnx_int8"]
    if drop > INT8_DROP_WARN + 1e-6:      # accuracies come as float32: 0.795 - 0.79 > 0.005
        lines.append(f"  WARNING: int8 ONNX loses {100 * drop:.1f} points of test accuracy "
                     "(more than 0.5)")
    if warnings_only:
        for line in lines:
            if line.lstrip().lower().startswith(("warning", "budget", "instead")):
                print(line.strip(), file=sys.stderr)
        return
    print("\n".join(lines))


def _device_lines(m: dict[str, Any], device: str) -> list[str]:
    """The plan's predicted cost on ``device``, then the int8 file's where it differs."""
    pred = m["predicted"][device]
    own = [f"  {device}"] if len(device) > 10 else []   # a long name on a line of its own
    return [*own, f"  {'' if own else device:<10} predicted {pred['latency_ms']:.4g} ms, flash "
            f"{pred['flash_kb']:.1f} KB, peak SRAM {pred['peak_sram_kb']:.1f} KB",
            *_int8_line(m, device)]


def _int8_line(m: dict[str, Any], device: str) -> list[str]:
    """The int8 file's own predicted cost where it differs from the plan's: sub-8-bit weights
    stored as int8, layers no rule quantizes run int8, ..."""
    as_int8, pred = m.get("predicted_int8_onnx", {}).get(device), m["predicted"][device]
    keys = ("latency_ms", "flash_kb", "peak_sram_kb")
    if not as_int8 or "error" in as_int8 or all(
            abs(as_int8[k] - pred[k]) <= 0.005 * abs(pred[k]) for k in keys):
        return []
    sub8 = any(b is not None and b < 8 for b in m.get("weight_bits", {}).values())
    packed = abs(as_int8["flash_kb"] - pred["flash_kb"]) > 0.005 * abs(pred["flash_kb"])
    why = ("sub-8-bit layers at int8; the packed flash above needs a runtime with sub-8-bit "
           "kernels" if sub8 and packed else "the file as written")
    return [f"  {'':<10} as model.int8.onnx {as_int8['latency_ms']:.4g} ms, flash "
            f"{as_int8['flash_kb']:.1f} KB, peak SRAM {as_int8['peak_sram_kb']:.1f} KB ({why})"]


FORMS = {"uint8": "uint8 activations with zero points (ONNX Runtime's fast x86 kernels)",
         "int8": "int8 activations with zero points (TFLite, TFLite Micro, CMSIS-NN); ONNX "
                 "Runtime on x86 runs them slower than uint8",
         "int8-symmetric": "int8 activations with zero point 0, weights float behind Q/DQ and "
                           "biases float (TensorRT quantizes them when it builds the engine)"}


def _float_file(m: dict[str, Any]) -> bool:
    """Whether the plan quantizes no layer, so model.int8.onnx is the float model (an export
    made before ``onnx_int8_weight_bits`` was kept: not)."""
    return not m.get("onnx_int8_weight_bits", {None: 8})


def _form_line(m: dict[str, Any]) -> list[str]:
    """The int8 file's activation form and whose it is (a profile's, or --activations)."""
    form, source = m.get("onnx_int8_activation_type"), m.get("onnx_int8_activation_type_from")
    if form not in FORMS or _float_file(m):
        return []
    return [f"  int8 form  {FORMS[form]}; "
            + ("as --activations asked" if source == "--activations" else
               f"the {source} profile's form (--activations to change)")]


def _io_line(io: dict[str, Any] | None) -> list[str]:
    """The int8 file's input and output quantization, for firmware with integer I/O."""
    if not io:
        return []
    def text(end: dict[str, Any], formula: str) -> str:
        if end.get("float"):
            return f"{end['name']} float"
        lo, hi, z = *end["float_range"], int(end["zero_point"])
        signs = {"plus": "-" if z < 0 else "+", "minus": "+" if z < 0 else "-"}  # not "+ -128"
        return (f"{end['name']} {end['dtype']} "
                f"{formula.format(s=end['scale'], z=abs(z), **signs)} (covers {lo:.4g}..{hi:.4g})")
    return [f"  int8 i/o   {text(io['input'], 'q = x/{s:.6g} {plus} {z}')}; "
            f"{text(io['output'], 'x = (q {minus} {z})*{s:.6g}')}"]
