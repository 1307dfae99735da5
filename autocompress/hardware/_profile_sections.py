"""The sections of a hardware profile below its top level (formats, analytic, calibration,
LUT entries), each read and checked by a :class:`Reader` (errors name file:line and field)."""
from __future__ import annotations

from autocompress.hardware._validate import Reader
from autocompress.hardware.formats import INT8_ACTIVATIONS, is_format
from autocompress.hardware.keys import check_canonical
from autocompress.hardware.spec import AnalyticSpec, CalibrationPoint, FormatSpec, LutEntry
from autocompress.yamlio import PathKey

KIND_INT8_ACTIVATIONS = {"mcu": "int8", "phone": "int8", "jetson": "int8-symmetric"}


def format_spec(r: Reader) -> FormatSpec:
    r.section(("formats",), required=("weights", "activations"),
              optional=("sparse_kernels", "packed_weights", "int8_activations"))
    # absent (a profile written before the field, e.g. a run dir's copy): the form the kind's
    # usual runtime takes (TFLite / CMSIS-NN on MCUs and phones, TensorRT on Jetsons)
    form = r.get(("formats", "int8_activations"), "str",
                 KIND_INT8_ACTIVATIONS.get(r.get(("device", "kind"), "str"), "uint8"))
    if form not in INT8_ACTIVATIONS:
        raise r.error(("formats", "int8_activations"), f"unknown int8 activation form {form!r}",
                      hint=f"one of {', '.join(INT8_ACTIVATIONS)}: uint8 for ONNX Runtime on "
                      "x86, int8 for TFLite / CMSIS-NN, int8-symmetric for TensorRT")
    return FormatSpec(weights=_formats(r, ("formats", "weights")),
                      activations=_formats(r, ("formats", "activations")),
                      sparse_kernels=r.get(("formats", "sparse_kernels"), "bool", False),
                      packed_weights=r.get(("formats", "packed_weights"), "bool", True),
                      int8_activations=form)  # type: ignore[arg-type]  # checked above


def _formats(r: Reader, path: PathKey) -> tuple[str, ...]:
    names = r.str_list(path)
    if not names:
        raise r.error(path, "needs at least one format", hint="e.g. [int8]")
    for i, name in enumerate(names):
        if not is_format(name):
            raise r.error((*path, i), f"unknown format '{name}'",
                          hint="formats are int<bits> or fp<bits>, e.g. int8, fp32")
    return names


_ANALYTIC_KEYS = ("clock_mhz", "macs_per_cycle", "depthwise_macs_per_cycle", "gmacs_per_s",
                  "depthwise_gmacs_per_s", "mem_bw_gbps", "act_bw_gbps", "per_op_overhead_us",
                  "rel_std")


def analytic_spec(r: Reader, formats: FormatSpec) -> AnalyticSpec:
    path: PathKey = ("analytic",)
    r.section(path, required=("mem_bw_gbps", "per_op_overhead_us"), optional=_ANALYTIC_KEYS)
    tables = {k: r.number_map((*path, k), {}) for k in _ANALYTIC_KEYS if "macs" in k}
    spec = AnalyticSpec(clock_mhz=r.get((*path, "clock_mhz"), "number", None, positive=True),
                        mem_bw_gbps=r.get((*path, "mem_bw_gbps"), "number", positive=True),
                        act_bw_gbps=r.get((*path, "act_bw_gbps"), "number", None,
                                          positive=True),
                        per_op_overhead_us=r.get((*path, "per_op_overhead_us"), "number",
                                                 minimum=0),
                        rel_std=r.get((*path, "rel_std"), "number", 0.25, minimum=0), **tables)
    if (spec.macs_per_cycle or spec.depthwise_macs_per_cycle) and spec.clock_mhz is None:
        raise r.error(path, "macs_per_cycle needs clock_mhz", hint="add clock_mhz: <MHz>")
    for fmt in sorted({*formats.weights, *formats.activations}):
        if spec.macs_per_s(fmt) is None:
            raise r.error(path, f"no compute throughput for native format '{fmt}'",
                          hint="add it to macs_per_cycle (with clock_mhz) or gmacs_per_s")
    return spec


def calibration(r: Reader) -> tuple[CalibrationPoint, ...]:
    items = r.raw(("calibration",), [])
    if not isinstance(items, list):
        raise r.error(("calibration",), "expected a list of {model, published_ms, source}")
    from autocompress.hardware.calibrate import unknown_reference  # imports this module

    out = []
    for i in range(len(items)):
        p: PathKey = ("calibration", i)
        r.section(p, required=("model", "published_ms", "source"),
                  optional=("predicted_ms", "held_out", "note"))
        model = r.get((*p, "model"), "str")
        if (hint := unknown_reference(model)) is not None:     # a KeyError in calibration
            raise r.error((*p, "model"), f"unknown reference model {model!r}", hint=hint)
        out.append(CalibrationPoint(model=model,
                                    published_ms=r.get((*p, "published_ms"), "number", minimum=0),
                                    predicted_ms=r.get((*p, "predicted_ms"), "number", None),
                                    source=r.get((*p, "source"), "str"),
                                    held_out=r.get((*p, "held_out"), "bool", False),
                                    note=r.get((*p, "note"), "str", None)))
    return tuple(out)


def entries(r: Reader) -> dict[str, LutEntry]:
    keys = r.section(("entries",), default={}, any_keys=True)
    out: dict[str, LutEntry] = {}
    for key in keys:
        p: PathKey = ("entries", key)
        try:
            check_canonical(key)
        except ValueError as exc:
            raise r.error(p, f"malformed LUT key: {exc}",
                          hint="keys look like conv2d|in=16x32x32|out=32x32x32|k=3|s=1|g=1|"
                          "w=int8|a=int8") from None
        r.section(p, required=("mean_ms",), optional=("std_ms", "n"))
        out[key] = LutEntry(mean_ms=r.get((*p, "mean_ms"), "number", minimum=0),
                            std_ms=r.get((*p, "std_ms"), "number", 0.0, minimum=0),
                            n=r.get((*p, "n"), "int", 1, minimum=1))
    return out
