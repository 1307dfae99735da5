"""One live line per trial: n/N, state, accuracy, cost, front size, best so far, ETA.
Plain lines (no carriage-return tricks), so logs and terminals read the same."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from autocompress.search.records import TrialRecord

WINDOW = 10   # lines the ETA's pace is measured over


@dataclass
class Progress:
    total: int
    profile: str                # whose cost the lines show (the first of the run's)
    quiet: bool = False         # --quiet: no per-trial lines (warnings still shown)
    label: bool = False         # name it on each line (the run has several profiles)
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    start: float = field(default_factory=time.perf_counter)
    done: int = 0
    best: float | None = None
    first: int | None = None    # the run's count before this process's first trial
    seen: list[tuple[float, int]] = field(default_factory=list)   # (time, done) per line

    closed: bool = False        # the reader went away (`search ... | head`)

    def __getstate__(self) -> dict[str, object]:
        """Without its stream: Ray Tune pickles the searcher that holds this, and a
        stdout that cannot be pickled (pytest's capture) failed the Ray backend."""
        return {**self.__dict__, "stream": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state, stream=state["stream"] or sys.stdout)

    def say(self, text: str) -> None:
        """An informational line (hidden by ``--quiet``)."""
        if not self.quiet:
            self.warn(text)

    def warn(self, text: str) -> None:
        """A line ``--quiet`` does not hide: a warning, a trial interrupted, a time limit."""
        if not self.closed:
            try:
                print(text, file=self.stream, flush=True)
            except BrokenPipeError:      # `search ... | head`: the search goes on, silent
                self.closed = True
                if self.stream is sys.stdout:     # what is left goes nowhere (Python docs)
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def trial(self, rec: TrialRecord, front_size: int, best: float | None = None) -> None:
        """Print the line for ``rec``; ``best``: the run's best feasible accuracy, if known
        (else this process's own)."""
        self.done += 1
        acc = rec.metrics.get("accuracy")
        if best is not None:
            self.best = best
        elif acc is not None and rec.feasible and rec.state == "complete":
            self.best = max(self.best or 0.0, acc)
        cost = rec.cost.get(self.profile, {})
        if self.first is None:                    # a resumed run starts past 0
            self.first = self.done - 1
            if rec.started_at:   # the set-up (teacher, Ray) is no trial's time: ETA from here
                began = time.perf_counter() - max(0.0, time.time() - rec.started_at)
                self.start = max(self.start, began)
        now = time.perf_counter()
        # the pace of the last WINDOW lines (the run's, every worker's trials counted), not
        # of the whole run: trials that slow down as a run goes on (a GP sampler's asks grow)
        # gave an ETA 4x short
        if not self.seen:
            self.seen.append((self.start, self.first))
        then, before = self.seen[-min(WINDOW, len(self.seen))]
        self.seen.append((now, self.done))
        eta = (now - then) / max(1, self.done - before) * max(0, self.total - self.done)
        width = len(str(self.total))
        parts = [f"[{self.done:>{width}}/{self.total}] trial {rec.number:<3} {rec.state:<10}",
                 f"acc {acc:.3f}" if acc is not None else "acc   -  ",
                 f"{self.profile}:" * (self.label and bool(cost))
                 + (f"{cost.get('latency_ms', float('nan')):7.4g} ms" if cost else ""),
                 f"{cost.get('flash_kb', float('nan')):7.1f} KB flash" if cost else "",
                 f"{cost.get('peak_sram_kb', float('nan')):6.1f} KB sram" if cost else "",
                 f"front {front_size}",
                 f"best {self.best:.3f}" if self.best is not None else "best  -  ",
                 f"{rec.duration_s:5.1f}s", f"eta {eta:4.0f}s"]
        parts.insert(1, f"{f'<{rec.baseline}>' if rec.baseline else '':<14}")   # aligned
        if rec.state == "failed" and rec.error:
            parts.append(f"error: {rec.error.splitlines()[0][:80]}")
        if rec.state == "pruned" and rec.rung is not None:
            at = rec.metrics.get(f"rung_accuracy/{rec.rung}")
            parts.append(f"stopped at rung {rec.rung}"
                         + (f" (acc {at:.3f})" if at is not None else ""))
        self.say("  ".join(p for p in parts if p))
