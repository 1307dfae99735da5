"""Ray backend scaling, measured side by side in one run: the same search (same config,
seed and trial count, ``search.threads`` = 1 thread per trial) with 1 and with 2 workers on
a local Ray. Prints the driver's set-up (context, teacher, study), trials per hour of the
Tune phase (from the end of set-up to Ray's shutdown) and the
search overhead: the share of worker time that is not inside a trial
(1 - sum of trial durations / (workers x Tune-phase wall time)), which counts Ray start-up,
actor start-up, scheduling and the driver's record/tell work. From each record's
``started_at`` and ``worker`` it splits that overhead into start-up (Tune phase start to each
worker's first trial: Ray, the actor, its search context), gaps between one worker's
consecutive trials (scheduling, the driver's record/tell), and the tail (a worker idle after
its last trial while another finishes, plus shutdown).

Two ways to get a Ray, both measured by default (``--ray local,running``):
- ``local``: each search starts and stops its own local Ray (``--backend ray`` without
  ``--address``: the laptop path). The Ray starts in the background during the driver's
  set-up; the Tune phase includes whatever of ``ray.init`` outlasts the set-up, and
  ``ray.shutdown``. With both modes measured, the set-up's slow-down from that start (local
  minus running) is printed and counted as overhead too;
- ``running``: one Ray head is started before the measurements (``ray start --head`` with
  ``workers`` CPUs, its own temp dir) and each search joins it with ``--address`` (the cluster
  path, or a laptop that keeps a Ray up between searches). Leaving the Ray (0.3 s) replaces
  the shutdown; joining it (0.3 s) comes before the driver's set-up, outside both.

    python benchmarks/scaling.py [--trials 32] [--epochs 20] [--ray local,running]
                                 [--out runs/bench_scaling]

The defaults (about 6 s per trial, ~6 min in all) are the README's protocol; with short trials
(--trials 16 --epochs 6: ~2 s each) Ray and actor start-up dominate the Tune phase.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autocompress.config import load_config  # noqa: E402
from autocompress.search import runner_ray  # noqa: E402

CONFIG = """\
name: scaling
seed: 0
data: digits
model: {{space: {space}}}
teacher: {{widths: [32, 64, 128], epochs: 5}}
train: {{epochs: {epochs}, finetune_epochs: {finetune}}}
hardware:
  profiles: [stm32f746]
  budgets: {{stm32f746: {{max_latency_ms: 50}}}}
search: {{trials: {trials}, sampler: random, threads: 1}}
"""


@contextlib.contextmanager
def ray_head(cpus: int) -> Iterator[str]:
    """A Ray head on this machine for the duration (``ray start --head`` on a free port, a
    temp dir of its own, no dashboard or auth token); yields its address. Stops exactly this
    head afterwards (``ray stop`` would stop every Ray of the user)."""
    from autocompress.search.ray_reap import kill_processes_using

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = Path(tempfile.mkdtemp(prefix="ac-bench-", dir="/tmp"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    try:
        subprocess.run([str(Path(sys.executable).with_name("ray")), "start", "--head",
                        f"--port={port}", f"--num-cpus={cpus}", f"--temp-dir={temp}",
                        "--include-dashboard=false", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        kill_processes_using(temp, rounds=20)
        shutil.rmtree(temp, ignore_errors=True)


def measure(cfg_path: Path, run_dir: Path, workers: int, address: str | None = None
            ) -> dict[str, Any]:
    phase: dict[str, float] = {}
    inner = runner_ray._run_tune

    def timed(*a: Any, **k: Any) -> None:
        phase["start"] = time.time()
        inner(*a, **k)
        phase["end"] = time.time()
        phase["wall_s"] = phase["end"] - phase["start"]

    def opened(*a: Any, **k: Any) -> Any:
        phase["setup"] = time.time()
        return session(*a, **k)

    session = runner_ray.open_session
    runner_ray._run_tune, runner_ray.open_session = timed, opened
    try:
        res = runner_ray.run_search_ray(load_config(cfg_path), run_dir, quiet=True,
                                        baselines=False, workers=workers, address=address, report=False)
    finally:
        runner_ray._run_tune, runner_ray.open_session = inner, session
    busy = sum(r["duration_s"] for r in res.records)
    n = len(res.records)
    total = workers * phase["wall_s"]
    parts = breakdown(res.records, phase["start"], phase["end"], workers)
    return {"ray": "running" if address else "local", "workers": workers, "trials": n,
            "tune_wall_s": phase["wall_s"], "setup_s": phase["start"] - phase["setup"],
            "trials_per_hour": 3600 * n / phase["wall_s"], "trial_s_sum": busy,
            "overhead": 1 - busy / total, **{k: v / total for k, v in parts.items()},
            "startup_s_per_worker": parts["startup"] / workers,
            "gap_ms_median": 1000 * statistics.median(parts_gaps(res.records) or [0.0])}


def _by_worker(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r["started_at"]):
        out.setdefault(r["worker"], []).append(r)
    return out


def parts_gaps(records: list[dict[str, Any]]) -> list[float]:
    """Seconds between the end of one trial and the start of the next on the same worker."""
    return [b["started_at"] - a["started_at"] - a["duration_s"]
            for runs in _by_worker(records).values() for a, b in itertools.pairwise(runs)]


def breakdown(records: list[dict[str, Any]], start: float, end: float, workers: int
              ) -> dict[str, float]:
    """Worker-seconds outside trials, by cause. A worker slot that never ran a trial counts
    as start-up for the whole phase."""
    runs = _by_worker(records).values()
    first = sum(r[0]["started_at"] - start for r in runs)
    last = sum(end - r[-1]["started_at"] - r[-1]["duration_s"] for r in runs)
    idle_slots = max(0, workers - len(runs)) * (end - start)
    return {"startup": first + idle_slots, "gaps": sum(parts_gaps(records)), "tail": last}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--finetune", type=int, default=2)
    p.add_argument("--ray", default="local,running",
                   help="local: each search starts its own Ray; running: the searches join "
                        "a Ray head started once before them (comma-separated, in order)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_scaling")
    args = p.parse_args(argv)
    modes = args.ray.split(",")
    if bad := [m for m in modes if m not in ("local", "running")]:
        p.error(f"--ray: unknown {', '.join(bad)} (expected local and/or running, "
                "comma-separated)")
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = args.out / "config.yaml"
    cfg.write_text(CONFIG.format(space=ROOT / "search_spaces/mobilenet_digits.yaml",
                                 epochs=args.epochs, finetune=args.finetune,
                                 trials=args.trials))
    with tempfile.TemporaryDirectory() as tmp:     # first-use costs (imports, kernels) go
        runner_ray.open_session(load_config(cfg), Path(tmp) / "run", quiet=True)  # here
    rows = []
    for mode in modes:
        with ray_head(2) if mode == "running" else contextlib.nullcontext() as address:
            for workers in (1, 2):
                run_dir = args.out / f"{mode}-workers{workers}-{int(time.time())}"
                rows.append(measure(cfg, run_dir, workers, address))
                print(json.dumps(rows[-1]), flush=True)
    print("\n| Ray | workers | trials | set-up s | Tune phase s | trials/hour | overhead | "
          "start-up (s per worker) | gaps (median per trial) | tail |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['ray']} | {r['workers']} | {r['trials']} | {r['setup_s']:.1f} | "
              f"{r['tune_wall_s']:.1f} | "
              f"{r['trials_per_hour']:.0f} | {r['overhead']:.1%} | {r['startup']:.1%} "
              f"({r['startup_s_per_worker']:.1f} s) | {r['gaps']:.1%} "
              f"({r['gap_ms_median']:.0f} ms) | {r['tail']:.1%} |")
    for one, two in itertools.pairwise(rows):
        if one["ray"] == two["ray"] and (one["workers"], two["workers"]) == (1, 2):
            print(f"\n{one['ray']} Ray: speed-up 2 vs 1 workers "
                  f"{two['trials_per_hour'] / one['trials_per_hour']:.2f}x (target >= 1.7x on "
                  f"an idle 2-core machine), overhead with 2 workers {two['overhead']:.1%} "
                  "(target <= 5%)")
    by = {(r["ray"], r["workers"]): r for r in rows}
    for workers in (1, 2):
        if (local := by.get(("local", workers))) and (run := by.get(("running", workers))):
            slower = local["setup_s"] - run["setup_s"]      # the local Ray's start in set-up
            idle = local["overhead"] * workers * local["tune_wall_s"] + workers * max(0, slower)
            print(f"local Ray, {workers} worker(s): set-up {slower:+.1f} s against a running "
                  f"Ray's (the local Ray starts during it); overhead with that counted "
                  f"{idle / (workers * (local['tune_wall_s'] + max(0, slower))):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
