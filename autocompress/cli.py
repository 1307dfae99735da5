"""Command line: ``autocompress search | report | export | profiles | profile | predict``.

Exit codes: 0 ok, 2 user error or a full disk (one message, no traceback), 1 bug.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from autocompress.config_checks import SAMPLERS
from autocompress.errors import AutocompressError, is_disk_full, one_line
from autocompress.hardware.commands import EXAMPLES as HW_EXAMPLES
from autocompress.hardware.commands import HANDLERS as HW_HANDLERS
from autocompress.hardware.commands import add_commands
from autocompress.hardware.formats import INT8_ACTIVATIONS
from autocompress.hardware.recalibrate import EXAMPLE as CALIBRATE_EXAMPLE
from autocompress.hardware.recalibrate import add_command as add_calibrate
from autocompress.hardware.recalibrate import run_command as calibrate
from autocompress.sensitivity import EXAMPLE as SENSITIVITY_EXAMPLE
from autocompress.sensitivity import add_command as add_sensitivity
from autocompress.sensitivity import run_command as sensitivity

EXAMPLES = {
    "search": "autocompress search experiments/digits_mcu/config.yaml --trials 20 "
              "--run-dir runs/demo --set hardware.budgets.stm32f746.max_latency_ms=5",
    "report": "autocompress report runs/demo",
    "export": "autocompress export runs/demo --max-latency-ms 5 --out runs/demo/export/best",
    "profiles": "autocompress profiles",
    **HW_EXAMPLES,
    "calibrate": CALIBRATE_EXAMPLE,
    "sensitivity": SENSITIVITY_EXAMPLE,
}


_TERMINATED: list[int] = []      # SIGTERM seen (Ray Tune re-raises it as a plain Ctrl-C)


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler or preemption stopping the job) is handled as Ctrl-C is."""
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def _interrupt_code() -> int:
    return 143 if _TERMINATED else 130


class _Parser(argparse.ArgumentParser):
    """A command-line mistake is one line, like every other user mistake (argparse prints
    the whole usage first); exit code 2 as argparse's."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: command line: {self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autocompress",
        description="Hardware-aware compression search: prune, quantize and shrink a student "
                    "with distillation, under device latency/memory budgets.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text,
                              epilog=f"example:\n  {EXAMPLES[name]}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    s = add("search", "Run a compression search and write a run directory with a report.")
    s.add_argument("config", nargs="?", help="search config YAML (not needed with --resume)")
    s.add_argument("--trials", type=int, help="number of searched trials (overrides the config)")
    s.add_argument("--run-dir", type=Path, help="output folder (default runs/<name>-<time>)")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. search.sampler=nsga2 (repeatable)")
    s.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the study of an existing run directory")
    s.add_argument("--no-baselines", action="store_true",
                   help="skip the reference trials (fp32, uniform int8/int4, 25%%/50%% structured "
                        "pruning)")
    s.add_argument("--sampler", choices=SAMPLERS,
                   help="Optuna sampler (overrides search.sampler; random = random search)")
    s.add_argument("--backend", choices=("optuna", "ray"), default="optuna",
                   help="optuna: worker processes on this machine; ray: Ray Tune (local or "
                        "a cluster)")
    s.add_argument("--workers", type=int, default=1, metavar="N",
                   help="trials run in parallel (each uses search.threads CPU threads)")
    s.add_argument("--address", metavar="auto|HOST:PORT",
                   help="Ray cluster to join (--backend ray); default: start a local Ray")
    s.add_argument("--quiet", action="store_true",
                   help="no per-trial lines (warnings still shown)")

    r = add("report", "Rebuild report/ (Pareto plots, trials.csv, summary) from a run's records.")
    r.add_argument("run_dir", type=Path)

    e = add("export", "Export a trial: plan.json, model.pt, model.onnx, model.int8.onnx, "
                      "manifest.json.")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--trial", type=int, help="trial number to export")
    e.add_argument("--max-latency-ms", type=float,
                   help="export the most accurate front point within this latency")
    e.add_argument("--max-flash-kb", type=float, help="... within this Flash (KB)")
    e.add_argument("--max-peak-sram-kb", type=float, help="... within this peak SRAM (KB)")
    e.add_argument("--device", help="the profile exported for: the limits refer to it and "
                                    "model.int8.onnx takes its runtime's int8 form (default: "
                                    "the first objective's, else the run's first)")
    e.add_argument("--min-accuracy", type=float,
                   help="require at least this accuracy (alone: the fastest front point that "
                        "reaches it; no choice at all: the most accurate front point)")
    e.add_argument("--out", type=Path, help="output folder (default RUN_DIR/export/<trial>)")
    e.add_argument("--activations", choices=INT8_ACTIVATIONS,
                   help="model.int8.onnx's activations (default: the form --device's runtime "
                        "takes, its profile's formats.int8_activations): uint8 (fast in ONNX "
                        "Runtime on x86), int8 (a zero point per tensor: TFLite, CMSIS-NN) or "
                        "int8-symmetric (zero point 0, weights float behind Q/DQ: TensorRT)")
    e.add_argument("--quiet", action="store_true",
                   help="print only the export folder (for scripts); warnings still show")

    add("profiles", "List the known hardware profiles, or show and validate the named ones."
        ).add_argument("names", nargs="*", metavar="NAME",
                       help="profile names or files: load (validate) each and show its details")
    add_commands(sub, add)
    add_calibrate(add)
    add_sensitivity(add)
    return parser


def _search(args: argparse.Namespace) -> int:
    from autocompress.config import load_config
    from autocompress.search.entry import RESUME_SETTABLE
    from autocompress.search.rundir import default_run_dir, load_run_config
    from autocompress.search.runner_optuna import run_search
    from autocompress.yamlio import split_override

    if args.resume:
        if args.config:
            raise AutocompressError("give either CONFIG or --resume RUN_DIR, not both",
                                    loc="command line")
        for item in args.overrides:
            if split_override(item)[0] not in RESUME_SETTABLE:
                raise AutocompressError(f"a resumed run keeps its config; --set {item} would "
                                        "change it", loc="--set",
                                        hint=f"on resume --set takes only "
                                        f"{', '.join(RESUME_SETTABLE)} (speed and time; other threads score "
                                        "slightly differently); "
                                        "start a new run to change other settings (--trials "
                                        "may still raise the trial count)")
        for flag, given in (("--run-dir", args.run_dir), ("--no-baselines", args.no_baselines)):
            if given:
                raise AutocompressError("a resumed run keeps its run dir and baselines",
                                        loc=flag, hint=f"drop {flag}, or start a new run")
        run_dir, cfg = args.resume, load_run_config(args.resume, args.overrides)
    elif not args.config:
        raise AutocompressError("missing CONFIG", loc="command line",
                                hint="e.g. autocompress search experiments/digits_mcu/config.yaml")
    else:
        run_dir = args.run_dir
    for flag, count in (("--trials", args.trials), ("--workers", args.workers)):
        if count is not None and count < 1:
            raise AutocompressError(f"expected a whole number >= 1, got {count}", loc=flag)
    if args.address and args.backend != "ray":
        raise AutocompressError("joining a Ray cluster needs --backend ray", loc="--address")
    if args.sampler:
        if args.resume:
            raise AutocompressError("a resumed run keeps its sampler", loc="--sampler",
                                    hint="start a new run to change the sampler")
        args.overrides.append(f"search.sampler={args.sampler}")
    if not args.resume:
        cfg = load_config(Path(args.config), args.overrides)
    run_dir = run_dir or default_run_dir(cfg.name)
    try:
        if args.backend == "ray":
            from autocompress.search.runner_ray import run_search_ray

            result = run_search_ray(cfg, run_dir, trials=args.trials, quiet=args.quiet,
                                    baselines=not args.no_baselines, resume=bool(args.resume),
                                    workers=args.workers, address=args.address)
        else:   # a new run keeps --trials and --no-baselines in its resolved config
            result = run_search(cfg, run_dir, trials=args.trials, quiet=args.quiet,
                                baselines=not args.no_baselines, resume=bool(args.resume),
                                workers=args.workers)
    except KeyboardInterrupt:
        if (run_dir / "env.json").is_file():        # the run files are written: resumable
            saved = run_dir / "records.jsonl"
            what = (f"completed trials are saved in {saved}" if saved.is_file() else
                    "no trial had finished")
            print(f"interrupted: {what}; continue with: autocompress search --resume "
                  f"{run_dir}", file=sys.stderr)
            return _interrupt_code()
        raise
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        if not (run_dir / "env.json").is_file():    # the run files are not all written
            raise AutocompressError(f"{_disk_full(exc)}; the run dir is incomplete",
                                    loc=str(run_dir),
                                    hint=f"free some space, remove {run_dir} and run the "
                                         "command again") from None
        saved = run_dir / "records.jsonl"
        raise AutocompressError(f"{_disk_full(exc)}; " + (
            f"completed trials are saved in {saved}" if saved.is_file() else
            "no trial had finished"), loc=str(run_dir),
            hint=f"free some space, then continue with: autocompress search --resume "
                 f"{run_dir}") from None
    paths = result.report
    n, objs = len(result.front.points), [o.name for o in result.front.objectives]
    over = f" over {', '.join(objs)}" if len(objs) > 2 else ""   # a plot shows 2 of them
    print(f"front: {n} point{'s' * (n != 1)}{over}; report: "      # --quiet too: the one
          f"{', '.join(str(p) for p in paths)}")                     # line saying where
    return 0


def _report(args: argparse.Namespace) -> int:
    from autocompress.search.entry import report_run

    for path in report_run(args.run_dir):
        print(path)
    return 0


def _export(args: argparse.Namespace) -> int:
    from autocompress.export.run import export_run

    out = export_run(args.run_dir, trial=args.trial, max_latency_ms=args.max_latency_ms,
                     device=args.device, min_accuracy=args.min_accuracy, out=args.out,
                     max_flash_kb=args.max_flash_kb, max_peak_sram_kb=args.max_peak_sram_kb,
                     activations=args.activations, quiet=args.quiet)
    if args.quiet:
        print(out)
    return 0


def _disk_full(exc: OSError) -> str:
    where = f" writing {exc.filename}" if exc.filename else ""
    return f"{os.strerror(exc.errno or errno.ENOSPC)}{where}"


COMMANDS = {"search": _search, "report": _report, "export": _export, **HW_HANDLERS,
            "calibrate": calibrate, "sensitivity": sensitivity}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _TERMINATED.clear()
    handle = threading.current_thread() is threading.main_thread()   # signal's own rule
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if handle else None
    try:
        return COMMANDS[args.command](args)
    except AutocompressError as exc:
        print(one_line(exc), file=sys.stderr)
        return 2
    except BrokenPipeError:              # `autocompress predict ... | head`: not an error
        sys.stdout = open(os.devnull, "w")    # as the Python docs advise
        return 0
    except OSError as exc:               # (BrokenPipeError is one: caught above)
        if not is_disk_full(exc):
            raise
        print(f"error: {_disk_full(exc)} (free some space and run the command again)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return _interrupt_code()
    finally:
        if handle:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
