"""CLI commands of the hardware package: ``autocompress profile`` and ``autocompress predict``.

``add_commands(sub, add)`` registers both subparsers (``add(name, help)`` is cli.py's helper
that makes a subparser with an example epilog); ``HANDLERS`` and ``EXAMPLES`` are merged into
cli.py's tables (``HANDLERS`` also holds ``profiles``, whose subparser cli.py makes). Heavy
imports (onnx, onnxruntime, torch) happen inside the handlers.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autocompress.errors import AutocompressError, ModelError, ProfileError
from autocompress.hardware.text import (
    layer_table,
    profile_details,
    profiles_lines,
    progress_printer,
)

EXAMPLES = {
    "profile": "autocompress profile --out hardware_profiles/host.yaml --threads 1",
    # a glob, not a trial number: which trial `autocompress export` picks depends on the run
    "predict": "autocompress predict runs/demo/export/best/model.int8.onnx --profile stm32f746 "
               "--json",
}


def add_commands(sub: Any, add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add the ``profile`` and ``predict`` subparsers (``sub`` is unused; kept for symmetry)."""
    p = add("profile", "Time the search space's ops on this machine with onnxruntime and write "
                       "a measured hardware profile (LUT).")
    p.add_argument("--out", type=Path, required=True, help="profile YAML to write")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--quick", action="store_true", help="small grid, few runs (about a second)")
    p.add_argument("--name", help="profile name: must be the file name without .yaml")
    q = add("predict", "Predict latency, Flash and peak SRAM of an ONNX file or a "
                       "module:callable PyTorch model on a hardware profile.")
    q.add_argument("model", help="model.onnx, or pkg.module:build returning an nn.Module")
    q.add_argument("--profile", required=True, help="profile name or YAML path")
    q.add_argument("--input-shape", help="C,H,W without batch (required for PyTorch models)")
    q.add_argument("--num-classes", type=int, default=10,
                   help="passed to a model.builder-style build(input_shape, num_classes)")
    q.add_argument("--format", help="format of every layer of a PyTorch model or a float "
                                    "ONNX file, e.g. fp32, int8 (default: the profile's "
                                    "native one; a QDQ file's nodes say its own)")
    q.add_argument("--json", action="store_true", help="print one JSON object")


_MEASURED_HEADER = "# Measured with `autocompress profile`"   # what --out may replace


def profile_yaml(data: dict[str, Any], header: str = _MEASURED_HEADER + "; regenerate rather "
                 "than edit by hand.") -> str:
    """YAML text of a profile dict: sections via PyYAML, one flow line per LUT entry."""
    from autocompress.yamlio import dump_yaml

    body = {k: v for k, v in data.items() if k != "entries"}
    lines = [header,
             dump_yaml(body, sort_keys=False, width=100).rstrip(), "entries:"]
    for key, e in sorted(data["entries"].items()):
        lines.append(f'  "{key}": {{mean_ms: {e["mean_ms"]:.9f}, std_ms: {e["std_ms"]:.9f}, '
                     f'n: {e["n"]}}}')   # fixed point: YAML 1.1 reads 7e-05 as a string
    return "\n".join(lines) + "\n"


def _profile(args: argparse.Namespace) -> int:
    from autocompress.hardware.measure import measure_profile
    from autocompress.hardware.profile import load_profile

    out: Path = args.out
    if args.threads < 1:
        raise AutocompressError(f"must be >= 1, got {args.threads}", loc="--threads")
    if out.suffix not in (".yaml", ".yml"):
        raise AutocompressError("the profile file must end in .yaml", loc=str(out))
    if out.is_dir():
        raise AutocompressError("a folder, not a file", loc="--out",
                                hint=f"name the file, e.g. --out {out / 'host.yaml'}")
    if out.is_file() and not _written_by_profile(out):   # a shipped or hand-made profile
        raise AutocompressError("the file exists and is not a profile `autocompress profile` "
                                "wrote (its figures would be replaced by this machine's)",
                                loc="--out", hint="give a new file name, e.g. --out "
                                "hardware_profiles/host.yaml")
    if args.name is not None and args.name != out.stem:
        raise AutocompressError(f"the name '{args.name}' differs from the file name "
                                f"'{out.name}', so the profile could not be found by name",
                                loc="--name", hint=f"leave --name out, or write to "
                                f"{out.with_name(args.name + out.suffix)}")

    progress, finish = progress_printer(sys.stderr)
    data = measure_profile(name=args.name or out.stem, threads=args.threads, quick=args.quick,
                           progress=progress)
    finish()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".yaml.tmp")
    tmp.write_text(profile_yaml(data), encoding="utf-8")
    tmp.replace(out)
    prof = load_profile(out)          # validate what we wrote
    print(f"wrote {out}: {len(prof.entries)} LUT entries, onnxruntime {prof.runtime.version}, "
          f"{prof.runtime.threads} thread(s), run overhead {prof.runtime.overhead_ms * 1e3:.1f} "
          f"us, sha256 {prof.sha256[:12]}")
    return 0


def _written_by_profile(path: Path) -> bool:
    """Whether ``path`` starts as ``autocompress profile`` writes a profile (so a rebuild may
    replace it)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(_MEASURED_HEADER)) == _MEASURED_HEADER.encode()
    except OSError:
        return False


def parse_shape(text: str | None, images: bool = True) -> tuple[int, ...] | None:
    """``"3,32,32"`` -> (3, 32, 32); AutocompressError on anything else. ``images``: a
    PyTorch model's C,H,W (an ONNX file's input keeps its own layout, tf2onnx's H,W,C too)."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise AutocompressError(f"bad --input-shape {text!r}", loc="--input-shape",
                                hint="positive ints without the batch, e.g. 3,32,32")
    if images and len(shape) == 2:            # built, then failed deep in the forward pass
        raise AutocompressError(f"--input-shape {text!r} has two sizes", loc="--input-shape",
                                hint=f"images are C,H,W: 1,{shape[0]},{shape[1]} for one "
                                "channel (a vector input is one size)")
    if images and len(shape) == 3 and shape[2] in (1, 3) and min(shape[0], shape[1]) >= 8:
        raise AutocompressError(f"--input-shape {text!r} looks channels-last (H,W,C)",
                                loc="--input-shape", hint=f"the models take C,H,W: "
                                f"{shape[2]},{shape[0]},{shape[1]}")
    return shape


def _call_builder(build: Callable[..., Any], input_shape: tuple[int, ...],
                  num_classes: int) -> Any:
    """``build()``, or ``build(input_shape, num_classes)`` for a ``model.builder`` of a
    config: chosen by the callable's required parameters."""
    import inspect

    try:
        required = [p for p in inspect.signature(build).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                           p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):                   # no signature (a C function)
        required = []
    return build(input_shape, num_classes) if len(required) == 2 else build()


def _is_onnx(spec: str) -> bool:
    return spec.endswith(".onnx") or Path(spec).is_file()


def load_graph(spec: str, input_shape: tuple[int, ...] | None,
               num_classes: int = 10) -> tuple[Any, dict[str, Any]]:
    """(ModelGraph, formats) of an ONNX path or a ``module:callable`` torch model: a
    no-argument callable, or ``build(input_shape, num_classes)`` as ``model.builder``."""
    if _is_onnx(spec):
        from autocompress.hardware.onnx_graph import onnx_to_graph

        return onnx_to_graph(spec, input_shape)
    if ":" not in spec:
        raise ModelError("not an ONNX file and not module:callable", loc=spec,
                         hint="give model.onnx or pkg.module:build_model")
    if input_shape is None:
        raise AutocompressError("a PyTorch model needs --input-shape", loc="--input-shape",
                                hint="e.g. --input-shape 3,32,32")
    import torch

    from autocompress.graph import inspect_model
    from autocompress.imports import load_callable

    build = load_callable(spec, loc=spec, base_dir=Path.cwd())
    try:
        model = _call_builder(build, tuple(input_shape), num_classes)
    except Exception as exc:
        raise ModelError(f"calling '{spec}' failed: {type(exc).__name__}: {exc}", loc=spec,
                         hint="predict calls build() or build(input_shape, num_classes)"
                         ) from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"'{spec}' returned {type(model).__name__}, not an nn.Module", loc=spec)
    try:
        graph = inspect_model(model.eval(), torch.zeros(1, *input_shape))
    except Exception as exc:
        why = exc.raw_message if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        raise ModelError(f"tracing with input shape {input_shape} failed: {why}", loc=spec,
                         hint="check --input-shape (C,H,W for images)") from exc
    return graph, {}


def profile_arg(profile: str) -> Any:
    """The HardwareProfile ``--profile`` names; an unknown name is an error at ``--profile``."""
    from autocompress.hardware.profile import load_profile

    try:
        return load_profile(profile)
    except ProfileError as exc:
        if exc.loc != "hardware":               # a bad profile file names its own file:line
            raise
        raise ProfileError(exc.raw_message, loc="--profile", hint=exc.hint) from None


def predict(spec: str, profile: str, input_shape: tuple[int, ...] | None = None,
            num_classes: int = 10, fmt: str | None = None) -> dict[str, Any]:
    """JSON-ready cost of ``spec`` on ``profile``: totals, provenance, per-layer rows.
    ``fmt`` (a format name) costs every layer of a PyTorch model or a float ONNX file in it;
    default: the profile's native format (a Jetson builds its fp16 engine from the fp32
    file). A quantized (QDQ) ONNX file's formats come from its QDQ nodes."""
    from autocompress.hardware.cost import CostModel
    from autocompress.hardware.formats import LayerFormat, bits_of, is_format

    model = CostModel(profile_arg(profile))   # an unknown profile fails before the model
    if fmt is not None and not (is_format(fmt) and 1 <= bits_of(fmt) <= 32):
        raise AutocompressError(f"{fmt!r} is not a format name", loc="--format",
                                hint="a format name such as fp32, fp16, int8 or int4")
    graph, formats = load_graph(spec, input_shape, num_classes)
    qdq = any(f.weight_bits < 32 or f.act_bits < 32 for f in formats.values())
    if qdq and fmt is not None:
        raise AutocompressError("a quantized (QDQ) ONNX file's formats come from its QDQ "
                                "nodes", loc="--format", hint="leave --format out, or give "
                                "the float model.onnx to cost it in another format")
    default = fmt and LayerFormat(weight_bits=bits_of(fmt), act_bits=bits_of(fmt))
    est = model.estimate(graph, model.deployed(formats) if qdq else {}, default or None)
    float_note = f" (float layers in fp{model.profile.float_bits}, the profile's float)" \
        if model.profile.float_bits != 32 else ""
    used = f"the ONNX graph's QDQ formats{float_note}" if qdq else fmt or \
        f"{model.profile.default_format.weight_format} (the profile's native)"
    return {"model": spec, "profile": model.profile.name, "profile_sha256": model.profile.sha256,
            "format": used,
            "latency_ms": est.latency_ms, "std_ms": est.std_ms, "flash_kb": est.flash_kb,
            "peak_sram_kb": est.peak_sram_kb, "peak_at": est.peak_at,
            "provenance": dict(est.provenance), "note": "; ".join(filter(None, (
                (note := graph.uncosted_note()) and f"warning: {note}",
                model.profile.quick_note(), None if fmt is None or model.profile.supports(fmt)
                else f"{fmt} is not a format {model.profile.name} runs: costed at the "
                "next format it runs in time, at its own size in Flash"))) or None,
            "layers": [{"fqn": c.fqn, "op": c.op, "latency_ms": c.latency_ms,
                        "flash_kb": c.flash_kb, "provenance": c.provenance, "key": c.key}
                       for c in est.layers]}


def _predict(args: argparse.Namespace) -> int:
    if args.num_classes < 1:
        raise AutocompressError(f"expected a class count >= 1, got {args.num_classes}",
                                loc="--num-classes")
    shape = parse_shape(args.input_shape, images=not str(args.model).endswith(".onnx"))
    out = predict(args.model, args.profile, shape, args.num_classes,
                  args.format)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['model']} on {out['profile']}: {out['latency_ms']:.4f} ms "
          f"(± {out['std_ms']:.4f}), flash {out['flash_kb']:.1f} KB, peak SRAM "
          f"{out['peak_sram_kb']:.1f} KB at {out['peak_at']}")
    print(f"  formats: {out['format']}; provenance: "
          f"{', '.join(f'{k} {v}' for k, v in sorted(out['provenance'].items()))}")
    for line in layer_table(out["layers"]):
        print(line)
    if out["note"]:
        print(out["note"])
    return 0


def _profiles(args: argparse.Namespace) -> int:
    """``autocompress profiles [NAME ...]``: the known profiles, columns as wide as their
    entries; with names, each one loaded (validated) and shown in detail."""
    from autocompress.hardware.profile import load_profile

    for line in profiles_lines(args.names or None):
        print(line)
    for name in args.names:
        print("\n".join(profile_details(load_profile(name))))
    return 0


# "profiles" has its subparser in cli.py (with search, report and export); its handler is here.
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "profile": _profile, "predict": _predict, "profiles": _profiles}
