"""Per-layer sensitivity (``autocompress sensitivity RUN_DIR``): how much a trained trial's
validation accuracy drops when ONE layer alone is compressed, without fine-tuning, the rest of
the model as trained. What NNI's sensitivity analysis, AIMET's per-layer quantization analysis
and Neural Compressor report: which layers to keep at more bits or fewer cuts, and which take
any compression. Probes: the weights quantized post-training (per-channel, symmetric, min-max
ranges) to each of ``bits``; the layer's output channels pruned (structured, with the layers
coupled to it, as the search prunes: Torch-Pruning) at each ``prune`` ratio; its weights
sparsified (unstructured magnitude) at each ``sparsity`` ratio. Each probe applies a
one-layer plan with ``apply_plan``, the search's own path.

The default trial is the run's ``fp32`` baseline (dense, float: what sensitivity is usually
measured on), else its most accurate complete trial. Output: a table on stdout (layers in
execution order, the worst drop first with ``--sort``), ``RUN_DIR/sensitivity/<n>.json``
and a heatmap ``RUN_DIR/sensitivity/<n>.png``.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocompress.errors import AutocompressError

EXAMPLE = "autocompress sensitivity runs/demo --bits 8,4,2 --prune 0.25,0.5"
NARROWED_MARK = "narrowed by `autocompress sensitivity`"   # --narrow replaces only its own


@dataclass(frozen=True)
class Probe:
    label: str
    config: Any              # a TechniqueConfig (compress is imported lazily: a light CLI)


def probes(bits: Sequence[int], prune: Sequence[float], sparsity: Sequence[float]
           ) -> list[Probe]:
    """The probe of each value, in the order given.

    >>> [p.label for p in probes([8, 2], [0.5], [0.9])]
    ['int8', 'int2', 'prune 50%', 'sparse 90%']
    """
    from autocompress.compress.plan import PruneConfig, QuantConfig, SparsityConfig

    return ([Probe(f"int{b}", QuantConfig(bits=b, mode="ptq")) for b in dict.fromkeys(bits)]
            + [Probe(f"prune {100 * r:g}%", PruneConfig(ratio=r)) for r in dict.fromkeys(prune)]
            + [Probe(f"sparse {100 * r:g}%", SparsityConfig(ratio=r))
               for r in dict.fromkeys(sparsity)])


def default_record(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The run's complete fp32 baseline, else its most accurate complete trial."""
    done = [r for r in records if r.get("state") == "complete"]
    if not done:
        raise AutocompressError("the run has no complete trial", loc="RUN_DIR",
                                hint="run (or resume) the search first")
    from autocompress.pareto import Objective

    fp32 = [r for r in done if r.get("baseline") == "fp32"]
    return fp32[0] if fp32 else max(done, key=lambda r: Objective.accuracy().get(r) or 0.0)


def analyse(ctx: Any, plan: Any, model: Any, chosen: Sequence[Probe], *,
            progress: Any = None) -> dict[str, Any]:
    """Validation accuracy of ``model`` as it is, then with each probe on each weighted layer
    alone; a probe that cannot apply to a layer (the logits layer's channels, a layer too
    small to prune) is None with the reason."""
    from autocompress.compress import CompressionPlan, PruneConfig, apply_plan
    from autocompress.graph import inspect_model
    from autocompress.train import accuracy
    from autocompress.train.device import device_problem, training_device

    spec = ctx.cfg.train.device        # a run trained on a GPU is read on a machine without
    device = "cpu" if device_problem(spec) is not None else training_device(spec)
    val, example, calibration = ctx.data.val, ctx.example(), ctx.calibration()   # once
    base = accuracy(model, val, device=device)
    layers = [layer.fqn for layer in inspect_model(model, example).layers
              if layer.compressible and "#" not in layer.fqn]
    table: dict[str, dict[str, float | None]] = {}
    why: dict[str, dict[str, str]] = {}
    for i, fqn in enumerate(layers):
        table[fqn] = {}
        for probe in chosen:
            if isinstance(probe.config, PruneConfig) and fqn in ctx.ignored:
                table[fqn][probe.label] = None
                why.setdefault(fqn, {})[probe.label] = "writes the model's output"
                continue
            one = CompressionPlan(arch=plan.arch, layers={fqn: (probe.config,)})
            try:
                out = apply_plan(model, one, example, round_to=ctx.round_to,
                                 ignored=ctx.ignored, calibration=calibration)
            except (AutocompressError, ValueError, RuntimeError) as exc:
                table[fqn][probe.label] = None
                why.setdefault(fqn, {})[probe.label] = f"{type(exc).__name__}: {exc}"
                continue
            table[fqn][probe.label] = accuracy(out, val, device=device) - base
        if progress is not None:
            progress(i + 1, len(layers), fqn)
    return {"val_accuracy": base, "n_val": len(val), "layers": layers,
            "probes": [p.label for p in chosen], "drop": table, "not_applied": why}


def table_lines(result: Mapping[str, Any], sort: bool = False) -> list[str]:
    """The printed table: accuracy change in points per layer and probe."""
    layers = list(result["layers"])
    if sort:                          # by the mean change over the probes, worst first
        layers.sort(key=lambda f: _mean([v for v in result["drop"][f].values() if v is not None]))
    width = max(len("layer"), *(len(f) for f in layers)) if layers else len("layer")
    cols = result["probes"]
    lines = [f"  {'layer':<{width}} " + " ".join(f"{c:>10}" for c in cols)]
    for fqn in layers:
        cells = [result["drop"][fqn][c] for c in cols]
        lines.append(f"  {fqn:<{width}} " + " ".join(
            f"{'n/a':>10}" if v is None else f"{_points(v, '+'):>10}" for v in cells))
    return lines


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _points(change: float, sign: str = "") -> str:
    """An accuracy change in points, one decimal, never "-0.0".

    >>> _points(-0.0004, "+"), _points(-0.0123, "+"), _points(0.05)
    ('+0.0', '-1.2', '5.0')
    """
    text = f"{100 * change:{sign}.1f}"
    return text.replace("-0.0", "+0.0" if sign else "0.0") if text in ("-0.0",) else text


def render(result: Mapping[str, Any], title: str, path: Path) -> Path:
    """Heatmap: layers x probes, colour = accuracy lost (points), each cell labelled."""
    import numpy as np

    from autocompress.report.canvas import new_figure, save_figure

    layers, cols = result["layers"], result["probes"]
    data = np.array([[np.nan if (v := result["drop"][f][c]) is None else -100 * v
                      for c in cols] for f in layers], dtype=float)
    fig = new_figure(width=max(6.0, 1.1 * len(cols) + 3.5), height=max(3.0, 0.32 * len(layers) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    finite = data[np.isfinite(data)]
    top = max(1.0, float(finite.max())) if finite.size else 1.0
    from matplotlib import colormaps

    image = ax.imshow(np.ma.masked_invalid(np.clip(data, 0.0, top)), aspect="auto",
                      cmap=colormaps["Reds"].with_extremes(bad="#dddddd"), vmin=0.0, vmax=top)
    for (r, c), v in np.ndenumerate(data):
        ax.text(c, r, "n/a" if np.isnan(v) else _points(v / 100), ha="center", va="center",
                fontsize=7, color="white" if np.isfinite(v) and v > 0.6 * top else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    fig.colorbar(image, ax=ax, label="validation accuracy lost (points)")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path, 130)


def _numbers(text: str, flag: str, kind: type, lo: float, hi: float) -> list[Any]:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = [lo - 1]
    if any(not lo <= v <= hi for v in values):
        raise AutocompressError(f"expected comma-separated values in {lo:g}..{hi:g}, got "
                                f"{text!r}", loc=flag, hint=f"e.g. {flag} " +
                                ("8,4,2" if kind is int else "0.25,0.5"))
    return values


def add_command(add: Any) -> None:
    s = add("sensitivity", "Per-layer sensitivity of a trained trial: validation accuracy "
                           "lost when one layer alone is quantized, pruned or sparsified.")
    s.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    s.add_argument("--trial", type=int, help="trial number (default: the fp32 baseline, "
                                             "else the most accurate complete trial)")
    s.add_argument("--bits", default="8,4,2", help="weight bit-widths to probe (2..8; '' none)")
    s.add_argument("--prune", default="0.25,0.5", help="structured prune ratios ('' none)")
    s.add_argument("--sparsity", default="0.5,0.9", help="unstructured sparsity ratios ('' none)")
    s.add_argument("--sort", action="store_true", help="the most sensitive layer first")
    s.add_argument("--narrow", type=Path, metavar="OUT.yaml",
                   help="also write the run's search space without the values that lost more "
                        "than --max-drop points (search it with --set model.space=OUT.yaml)")
    s.add_argument("--max-drop", type=float, default=None, metavar="POINTS",
                   help="with --narrow: accuracy points a probe may lose and its value stay "
                        "in the space (default 5: the probes are not fine-tuned, the search is)")


def run_command(args: Any) -> int:
    from autocompress.export.run import trial_model
    from autocompress.search.rundir import check_run_files, load_run, write_json

    chosen = probes(_numbers(args.bits, "--bits", int, 2, 8),
                    _numbers(args.prune, "--prune", float, 0.01, 0.95),
                    _numbers(args.sparsity, "--sparsity", float, 0.01, 0.99))
    if not chosen:
        raise AutocompressError("no probe left", loc="--bits", hint="give --bits, --prune or "
                                "--sparsity values")
    run_dir = Path(args.run_dir)
    if args.max_drop is not None and args.narrow is None:   # it would be silently ignored
        raise AutocompressError("--max-drop applies only with --narrow (it chooses which "
                                "values the narrowed space keeps)", loc="--max-drop",
                                hint="add --narrow OUT.yaml, or drop --max-drop")
    max_drop = 5.0 if args.max_drop is None else args.max_drop
    if args.narrow is not None:
        _check_narrow_target(run_dir, args.narrow, max_drop)
    cfg, records = load_run(run_dir)
    check_run_files(run_dir)
    if args.trial is None:
        rec = default_record(records)
    else:
        rec = next((r for r in records if r.get("number") == args.trial), None)
        if rec is None or rec.get("state") != "complete":
            raise AutocompressError(f"trial {args.trial} is not a complete trial of this run",
                                    loc="--trial", hint="report/trials.csv lists them")
    number = int(rec["number"])
    weights = run_dir / "trials" / str(number) / "model.pt"
    if not weights.is_file():
        raise AutocompressError(f"trial {number} has no saved weights", loc=str(weights),
                                hint="give another complete trial with --trial N")
    ctx, plan, model = trial_model(cfg, rec, weights,
                                   "the probes run the model as the code builds it now")

    def progress(done: int, total: int, fqn: str) -> None:   # a live line on a terminal
        print(f"\r[{done}/{total}] {fqn}\033[K", end="" if done < total else "\r\033[K",
              file=sys.stderr, flush=True)

    result = analyse(ctx, plan, model, chosen,
                     progress=progress if sys.stderr.isatty() else None)
    name = rec.get("baseline") or "searched"
    result.update(trial=number, baseline=rec.get("baseline"))
    out = run_dir / "sensitivity"
    out.mkdir(exist_ok=True)
    write_json(out / f"{number}.json", result)
    title = (f"trial {number} ({name}), val accuracy {100 * result['val_accuracy']:.1f}% on "
             f"{result['n_val']}: points lost with one layer compressed, no fine-tuning")
    png = render(result, title, out / f"{number}.png")
    print(f"trial {number} ({name}): val accuracy {100 * result['val_accuracy']:.2f}% "
          f"({result['n_val']} images); accuracy change in points with one layer compressed, "
          "no fine-tuning:")
    for line in table_lines(result, sort=args.sort):
        print(line)
    for fqn, reasons in result["not_applied"].items():
        for label, reason in reasons.items():
            print(f"  n/a {fqn} {label}: {reason}")
    print(f"wrote {out / f'{number}.json'} and {png}")
    if args.narrow is not None:
        write_narrowed(run_dir, ctx.rspace, chosen, result, args.narrow, max_drop)
    return 0


def _check_narrow_target(run_dir: Path, out: Path, max_drop: float) -> None:
    from autocompress.search.rundir import RUN_FILES

    if not 0 <= max_drop <= 100:
        raise AutocompressError(f"expected accuracy points in 0..100, got {max_drop:g}",
                                loc="--max-drop", hint="e.g. --max-drop 5")
    if out.resolve() in {(run_dir / n).resolve() for n in RUN_FILES}:
        raise AutocompressError("the run's own files are what resume and export check",
                                loc="--narrow", hint="write the narrowed space elsewhere, e.g. "
                                "--narrow search_spaces/narrowed.yaml")
    if out.is_dir():
        raise AutocompressError("a folder, not a file", loc="--narrow",
                                hint=f"name the file, e.g. --narrow {out / 'narrowed.yaml'}")
    if out.is_file() and NARROWED_MARK not in out.read_text(errors="replace")[:2000]:
        raise AutocompressError("the file exists and is not a space --narrow wrote (your own "
                                "space, its comments, would be replaced)", loc="--narrow",
                                hint="give a new file name")
    if not out.resolve().parent.is_dir():
        raise AutocompressError(f"no folder {out.parent}", loc="--narrow",
                                hint="create it, or give a path in an existing folder")


def write_narrowed(run_dir: Path, rspace: Any, chosen: Sequence[Probe],
                   result: Mapping[str, Any], out: Path, max_drop: float) -> None:
    """Write the run's search space narrowed by ``result`` (``autocompress.space.narrow``)."""
    import datetime

    from autocompress.search.rundir import write_yaml
    from autocompress.space import SearchSpace
    from autocompress.space.narrow import measured_by_layer, narrow, narrowed_document
    from autocompress.yamlio import load_yaml

    narrowing = narrow(rspace, measured_by_layer(chosen, result), max_drop)
    source = load_yaml(run_dir / "space.yaml", what="search space")
    lines = narrowing.lines or ["nothing: no probe of a searched value lost more"]
    header = "".join(f"# {line}\n" for line in (
        f"{run_dir / 'space.yaml'} {NARROWED_MARK} on trial "
        f"{result['trial']} ({datetime.date.today()}): values that lost more than "
        f"{max_drop:g} points with one layer compressed, no fine-tuning, are removed.",
        *lines))
    write_yaml(out, narrowed_document(source.data, narrowing), header=header,
               default_flow_style=None)         # a list on one line, as people write them
    SearchSpace.load(out)                        # it reads back as a space
    print(f"narrowed space (values losing more than {max_drop:g} points removed):")
    for line in lines:
        print(f"  {line}")
    print(f"wrote {out}; search it with --set model.space={out.resolve()}")
