"""Close the loop with your device: predicted against measured latency of your own models,
and a profile rescaled to your measurements (``autocompress calibrate``).

You export a few front points, time them on the device (``benchmark_model``, ``trtexec``,
a cycle counter) and list them in a CSV (``model,measured_ms`` and, for a float ONNX file the
device runs in another format than the profile's native one, ``format``). The command costs
each file on the profile, reports the errors, fits one scale (the median of measured /
predicted in log space, so one outlier does not drag it) and checks it honestly: each model is
also predicted with a scale fitted on the others only (leave-one-out). With ``--out`` it
writes a copy of the profile whose every time constant is multiplied by that scale (LUT
entries, per-op and per-run overheads; MAC rates and bandwidths divided), so every prediction
it makes is the old one times the scale. One scale corrects a device that is uniformly faster
or slower than the profile (another clock, runtime version, thermal state); where the errors
of your models differ among themselves, the leave-one-out error says so and no scale fixes it.

>>> fit_scale([1.0, 2.0, 4.0], [1.5, 3.0, 5.0])
1.5
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocompress.errors import AutocompressError

# analytic constants: time grows with the ones in TIME, shrinks with the ones in RATE
TIME = ("per_op_overhead_us",)
RATE = ("mem_bw_gbps", "act_bw_gbps")
RATE_TABLES = ("macs_per_cycle", "depthwise_macs_per_cycle", "gmacs_per_s",
               "depthwise_gmacs_per_s")


@dataclass(frozen=True, kw_only=True)
class Measured:
    model: Path
    measured_ms: float
    fmt: str | None
    line: int          # in the CSV


def read_measurements(path: Path) -> list[Measured]:
    """The CSV's rows (model paths relative to the CSV's folder); a user error names its
    file:line."""
    if not path.is_file():
        raise AutocompressError(f"measurements file not found: {path}", loc="--measured",
                                hint="a CSV with a header line model,measured_ms")
    try:
        text = path.read_text(encoding="utf-8-sig")      # a spreadsheet's byte-order mark too
    except (OSError, UnicodeDecodeError) as exc:
        raise AutocompressError(f"cannot read the measurements: {exc}", loc=str(path),
                                hint="save it as UTF-8 text (CSV)") from None
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"model", "measured_ms"} - set(reader.fieldnames or ())
        if missing:
            raise AutocompressError(f"the header lacks {', '.join(sorted(missing))}",
                                    loc=f"{path}:1", hint="header: model,measured_ms[,format]")
        rows = []
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if row.get(None):      # more fields than the header: a decimal comma (2,41)?
                n_header = len(reader.fieldnames or ())
                raise AutocompressError(
                    f"this line has {n_header + len(row[None])} fields, the header {n_header}",
                    loc=where, hint="write decimals with a point (2.41, not 2,41), or quote "
                    "a field that holds a comma")
            model = (row.get("model") or "").strip()
            try:
                ms = float(row.get("measured_ms") or "")
            except ValueError:
                ms = math.nan
            if not 0 < ms < math.inf:
                raise AutocompressError(f"measured_ms: expected a positive number of "
                                        f"milliseconds, got {row.get('measured_ms')!r}", loc=where)
            file = (path.parent / model) if model else path.parent
            if not model.endswith(".onnx") or not file.is_file():
                raise AutocompressError(f"model: expected an ONNX file, got {model!r}"
                                        + ("" if not model.endswith(".onnx") else
                                           f" (no file {file})"), loc=where,
                                        hint="an export's model.onnx or model.int8.onnx, its "
                                        "path relative to the CSV's folder")
            rows.append(Measured(model=file, measured_ms=ms, line=reader.line_num,
                                 fmt=(row.get("format") or "").strip() or None))
    if not rows:
        raise AutocompressError("no measurements", loc=str(path),
                                hint="one line per timed model: model,measured_ms")
    return rows


def fit_scale(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """The median of ``measured / predicted`` in log space."""
    return math.exp(statistics.median(math.log(m / p) for p, m in zip(predicted, measured,
                                                                         strict=True)))


def errors(predicted: Sequence[float], measured: Sequence[float], scale: float = 1.0
           ) -> list[float]:
    """Relative errors (scale x predicted - measured) / measured."""
    return [(scale * p - m) / m for p, m in zip(predicted, measured, strict=True)]


def leave_one_out(predicted: Sequence[float], measured: Sequence[float]) -> list[float] | None:
    """Each model's error with the scale fitted on the other models (None for one model)."""
    if len(predicted) < 2:
        return None
    out = []
    for i in range(len(predicted)):
        rest = [j for j in range(len(predicted)) if j != i]
        scale = fit_scale([predicted[j] for j in rest], [measured[j] for j in rest])
        out.append(errors([predicted[i]], [measured[i]], scale)[0])
    return out


def summary(errs: Sequence[float]) -> str:
    """Median |error| and how many are within 10% (nn-Meter's figure) and 25%."""
    a = [abs(e) for e in errs]
    n = len(a)
    return (f"median |error| {100 * statistics.median(a):.1f}%, within ±10%: "
            f"{sum(x <= 0.10 for x in a)}/{n}, within ±25%: {sum(x <= 0.25 for x in a)}/{n}")


def scaled_profile(data: dict[str, Any], scale: float, *, name: str, note: str) -> dict[str, Any]:
    """A profile document (as parsed) whose every prediction is ``scale`` times the original:
    LUT times and overheads multiplied, rates divided. Its ``calibration`` rows compare the
    original device with published figures, so they are left out."""
    out = {k: v for k, v in data.items() if k != "calibration"}
    out["name"] = name
    runtime = dict(out["runtime"])
    runtime["overhead_ms"] = float(runtime.get("overhead_ms", 0.0)) * scale
    out["runtime"] = runtime
    if out.get("analytic"):
        analytic = dict(out["analytic"])
        for key in TIME:
            if analytic.get(key) is not None:
                analytic[key] = float(analytic[key]) * scale
        for key in RATE:
            if analytic.get(key) is not None:
                analytic[key] = float(analytic[key]) / scale
        for key in RATE_TABLES:
            if analytic.get(key):
                analytic[key] = {f: float(v) / scale for f, v in analytic[key].items()}
        out["analytic"] = analytic
    out["entries"] = {key: {"mean_ms": float(e["mean_ms"]) * scale,
                            "std_ms": float(e.get("std_ms", 0.0)) * scale, "n": int(e.get("n", 1))}
                      for key, e in (data.get("entries") or {}).items()}
    measurement = dict(out["measurement"])
    measurement["notes"] = note + (f" | before: {measurement['notes']}"
                                   if measurement.get("notes") else "")
    measurement["date"] = dt.date.today().isoformat()
    out["measurement"] = measurement
    out["description"] = f"{data.get('description', '').strip()} [{note}]".strip()
    return out


def profile_document(path: Path) -> dict[str, Any]:
    """A profile file as a plain dict, LUT entries as ``{mean_ms, std_ms, n}``."""
    from dataclasses import asdict

    from autocompress.errors import ProfileError
    from autocompress.hardware._lut_text import split_entries
    from autocompress.yamlio import parse_yaml

    head, fast = split_entries(path.read_text(encoding="utf-8"), str(path))
    data = dict(parse_yaml(head, str(path), cls=ProfileError).data)
    if fast is not None:
        data["entries"] = {key: asdict(e) for key, e in fast.items()}
    return data


def calibrate(profile: str, measured: Path, out: Path | None = None) -> dict[str, Any]:
    """Predicted against measured latency of the CSV's models on ``profile``, the fitted
    scale, and with ``out`` the rescaled profile written there (its own predictions checked).
    JSON-ready."""
    from autocompress.hardware.commands import predict, profile_arg, profile_yaml
    from autocompress.hardware.profile import PROFILE_DIR
    from autocompress.yamlio import dump_yaml

    loaded = profile_arg(profile)
    source, src_path = loaded.name, Path(str(loaded.path))
    rows = read_measurements(measured)
    if out is not None:
        if out.suffix not in (".yaml", ".yml"):
            raise AutocompressError("the profile file must end in .yaml", loc="--out")
        shipped = {p.stem for p in PROFILE_DIR.glob("*.yaml")}
        if out.resolve() == src_path.resolve() or out.stem in shipped:
            raise AutocompressError(
                "--out is the profile being calibrated" if out.resolve() == src_path.resolve()
                else f"--out {out} would replace or shadow a shipped profile", loc="--out",
                hint=f"write a profile of a new name, e.g. --out my_{source}.yaml (beside your "
                     "config or in hardware_profiles/ under the folder you run from)")
    pred = [_predict(r, str(src_path), measured, predict) for r in rows]
    meas = [r.measured_ms for r in rows]
    scale = fit_scale(pred, meas)
    result: dict[str, Any] = {
        "profile": source, "measurements": str(measured), "scale": scale,
        "rows": [{"model": str(r.model), "line": r.line, "format": r.fmt, "predicted_ms": p,
                  "measured_ms": r.measured_ms} for r, p in zip(rows, pred, strict=True)],
        "before": errors(pred, meas), "after": errors(pred, meas, scale),
        "leave_one_out": leave_one_out(pred, meas), "out": None}
    if out is not None:
        note = (f"{source} scaled x{scale:.4f} to {len(rows)} measured model(s) of "
                f"{measured.name} by `autocompress calibrate`")
        data = scaled_profile(profile_document(src_path), scale, name=out.stem, note=note)
        text = profile_yaml(data, header=f"# {note}.") if data["entries"] else \
            dump_yaml({k: v for k, v in data.items() if k != "entries"}, sort_keys=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".yaml.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
        now = [_predict(r, str(out), measured, predict) for r in rows]   # what it really says
        result.update(out=str(out), after=errors(now, meas), rows=[
            {**row, "new_predicted_ms": n} for row, n in zip(result["rows"], now, strict=True)])
    return result


def _predict(row: Measured, profile: str, csv_path: Path, predict: Any) -> float:
    try:
        return float(predict(str(row.model), profile, fmt=row.fmt)["latency_ms"])
    except AutocompressError as exc:        # the file is the user's: name its CSV line
        if exc.loc == "--profile":
            raise
        hint = exc.hint                     # predict's hint names its --format flag
        if exc.loc == "--format":           # the message says why; the hint, what to do
            hint = (f"leave the row's format column empty; {row.fmt} is for a float file, such "
                    "as model.onnx" if "QDQ" in exc.raw_message else
                    "a format name in the format column, such as fp32, fp16, int8 or int4")
        raise type(exc)(f"{row.model.name}: {exc.raw_message}", loc=f"{csv_path}:{row.line}",
                        hint=hint) from None


def print_result(result: dict[str, Any]) -> None:
    rows = result["rows"]
    width = max(len("model"), *(len(r["model"]) for r in rows))
    print(f"{result['profile']} against {len(rows)} measurement(s) in {result['measurements']}:")
    print(f"  {'model':<{width}} {'predicted':>10} {'measured':>10} {'error':>8} {'after':>8}")
    for r, before, after in zip(rows, result["before"], result["after"], strict=True):
        print(f"  {r['model']:<{width}} {r['predicted_ms']:>7.3f} ms {r['measured_ms']:>7.3f} ms "
              f"{100 * before:>+7.1f}% {100 * after:>+7.1f}%")
    print(f"scale {result['scale']:.4f} (median of measured / predicted, in log space)")
    print(f"  before: {summary(result['before'])}")
    print(f"  after:  {summary(result['after'])}"
          + (" (the new profile's own predictions)" if result["out"] else ""))
    loo = result["leave_one_out"]
    if loo is None:
        print("  leave-one-out: needs two models or more (one model always fits one scale)")
    else:
        print(f"  leave-one-out (each model at the scale of the others): {summary(loo)}")
        if statistics.median(abs(e) for e in loo) > 0.25:
            print("warning: one scale does not fit these models (leave-one-out error over "
                  "25%): their errors differ in kind, e.g. a format the device runs otherwise "
                  "(give `format` for float files) or ops the profile costs otherwise")
    if result["out"]:
        print(f"wrote {result['out']}: use it as profiles: [{Path(result['out']).stem}] "
              f"in a config beside it (or with it in hardware_profiles/), and as "
              f"--profile {result['out']} with predict, profiles and calibrate")
    else:
        print("(no --out: nothing written)")


EXAMPLE = ("autocompress calibrate --profile pixel4 --measured measured.csv "
           "--out hardware_profiles/my_pixel4.yaml")


def add_command(add: Any) -> None:
    """The ``calibrate`` subparser (``add(name, help)`` as in cli.py)."""
    c = add("calibrate", "Compare a profile's predicted latency with your own measured models "
                         "and write the profile rescaled to them.")
    c.add_argument("--profile", required=True, help="profile name or YAML path")
    c.add_argument("--measured", type=Path, required=True,
                   help="CSV with a header model,measured_ms[,format]: an ONNX file (path "
                        "relative to the CSV), its measured latency in ms, and for a float "
                        "file the format the device ran it in (default: the profile's native)")
    c.add_argument("--out", type=Path, help="write the rescaled profile here (its name is the "
                                            "file name); without it only the table")
    c.add_argument("--json", action="store_true", help="print one JSON object")


def run_command(args: Any) -> int:
    import json

    result = calibrate(args.profile, args.measured, args.out)
    if args.json:
        print(json.dumps(result))
    else:
        print_result(result)
    return 0
