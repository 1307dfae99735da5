"""Multi-fidelity, multi-objective early stopping (successive-halving style rungs, Pareto
criterion instead of one metric).

The dense (KD) phase of a trial is checked at *rungs* (epoch counts, e.g. 1, 2 and 3). At a
rung the candidate's validation accuracy *so far* is paired with its predicted cost (the
non-accuracy objectives, known before training); the candidate stops — state ``pruned``,
with the rung — when at least ``min_dominating`` (default 1) candidates that already *passed*
that rung dominate it (accuracy ≥, every cost ≤, one strictly better) *measurably*:
- their accuracy leads by ``margin_se`` (default 1) standard errors of an accuracy
  difference on the validation split, sqrt(2 p (1 - p) / n_val) at the candidate's accuracy
  p (racing-style: stop only a candidate measurably worse);
- their own rung accuracy is above the *floor*, the majority class's share c of the
  validation split plus ``chance_se`` (default 3) binomial standard errors,
  c + chance_se sqrt(c (1 - c) / n_val). On hard data the first epochs leave most candidates
  near chance, where dominance would cull almost at random by cost; a rung where every
  candidate is still at chance stops nobody, so early rungs cost only an evaluation.
Baselines are never stopped, but count as candidates that passed. ``margin_se: 0,
chance_se: 0, min_dominating: 2`` is the plain rule measured before these defaults; the
README (search quality) has both, and ``benchmarks/early_stop_replay.py`` the replays that
chose the defaults.

The accuracy at a rung is the dense student's (before pruning/quantization); its cost is
the compressed candidate's. That pairing is optimistic for heavily compressed candidates, so
the rule errs towards letting them continue, and such candidates, passed, stop others. With
``rung_score: compressed`` the rung accuracy is instead a compressed copy's (the plan applied
to the weights so far, without the fine-tuning the trial will give it): pessimistic for them.

The rung table lives in ``rungs.jsonl`` in the run dir, read and appended under a file lock:
several worker processes share it, and a resumed run keeps it. The Ray backend reaches the
same file through one actor on the driver's node (``runner_ray``).

>>> dominated_by([0.5, -1.0], [[0.6, -0.8], [0.52, -0.9]], margin=0.05)  # (acc, -cost) pairs
1
>>> dominated_by([0.09, -2.0], [[0.12, -1.0], [0.3, -1.0]], floor=0.15)   # 0.12: at chance
1
"""
from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from autocompress.search.records import append_line, file_lock
from autocompress.stats import binomial_se


class Pruned(Exception):
    """Raised inside training when a candidate is stopped at a rung."""

    def __init__(self, rung: int, accuracy: float) -> None:
        super().__init__(f"stopped at rung {rung} (accuracy {accuracy:.4f})")
        self.rung = rung
        self.accuracy = accuracy


@dataclass(frozen=True, kw_only=True)
class EarlyStopping:
    rungs: tuple[int, ...]
    min_dominating: int = 1
    margin_se: float = 1.0
    chance_se: float = 3.0
    rung_score: str = "dense"          # or "compressed": the plan applied, no fine-tuning

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> EarlyStopping | None:
        """The policy of a validated ``search.early_stopping`` mapping (None: off); keys it
        leaves out take the defaults above."""
        if not raw or not raw.get("rungs"):
            return None
        kinds = {"min_dominating": int, "margin_se": float, "chance_se": float,
                 "rung_score": str}
        return cls(rungs=tuple(int(r) for r in raw["rungs"]),
                   **{key: kind(raw[key]) for key, kind in kinds.items() if key in raw})

    def margin(self, accuracy: float, n_val: int) -> float:
        """The accuracy lead a dominating candidate needs (see the module docstring)."""
        n = max(2, n_val)                  # p kept one image off 0 and 1: no zero margin
        p = min(max(accuracy, 1 / n), 1 - 1 / n)
        return self.margin_se * math.sqrt(2) * binomial_se(p, n)

    def floor(self, chance: float, n_val: int) -> float:
        """The rung accuracy a candidate must exceed to count as dominating another."""
        if self.chance_se == 0:
            return -1.0
        return chance + self.chance_se * binomial_se(chance, max(2, n_val))


def dominated_by(point: Sequence[float], others: Sequence[Sequence[float]], *,
                 margin: float = 0.0, floor: float = -1.0) -> int:
    """How many of ``others`` dominate ``point``; every coordinate is *maximised* (pass
    costs negated), the first (accuracy) must lead by at least ``margin`` and be above
    ``floor``."""
    count = 0
    for other in others:
        if other[0] > floor and other[0] >= point[0] + margin and \
                all(o >= p for o, p in zip(other, point, strict=True)) and \
                any(o > p for o, p in zip(other, point, strict=True)):
            count += 1
    return count


def chance_level(labels: Any) -> float:
    """Accuracy of always predicting the majority class (``labels``: an integer tensor)."""
    return float(labels.bincount().max()) / max(1, len(labels))


def rung_report(entries: Sequence[Mapping[str, Any]], policy: EarlyStopping, chance: float,
                n_val: int, ended: Collection[int] | None = None) -> str:
    """One line on what early stopping did: stops per rung (among the searched candidates:
    baselines are never stopped), and a hint when a rung's stops
    came while its median candidate was not measurably above chance (3 standard errors).
    ``ended``: the trial numbers that ended (not interrupted), when only those count."""
    if ended is not None:
        entries = [e for e in entries if e["number"] in ended]
    stops = {r: sum(1 for e in entries if e["rung"] == r and not e["passed"])
             for r in policy.rungs}
    seen = len({e["number"] for e in entries if not e.get("protected")})   # baselines: never
    line = (f"early stopping: {sum(stops.values())} of {seen} searched candidates stopped ("
            + ", ".join(f"rung {r}: {n}" for r, n in stops.items()) + ")")
    at_chance = replace(policy, chance_se=3.0).floor(chance, n_val)
    for rung, n in stops.items():
        accs = sorted(e["point"][0] for e in entries if e["rung"] == rung)
        median = accs[len(accs) // 2] if accs else 1.0
        if n and policy.chance_se == 0 and median <= at_chance:
            line += (f"; at rung {rung} the median candidate scored {median:.1%} against "
                     f"{chance:.1%} for chance, so its stops were close to random by cost "
                     "(a later first rung, or the default early_stopping.chance_se: 3, avoids that)")
    return line


def point_of(accuracy: float, costs: Sequence[float]) -> list[float]:
    return [float(accuracy), *(-float(c) for c in costs)]


class Board(Protocol):
    def decide(self, rung: int, number: int, accuracy: float, costs: Sequence[float],
               protected: bool, margin: float = 0.0, floor: float = -1.0) -> bool:
        """Record the candidate at ``rung``; True means continue, False means stop."""
        ...


class FileBoard:
    """Rung table in a JSON-lines file shared by processes (decision and append under a
    lock, so two workers cannot both pass on stale information)."""

    def __init__(self, path: Path, policy: EarlyStopping) -> None:
        self.path = path
        self.policy = policy

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:          # a torn last line after a kill
                continue
        return out

    def decide(self, rung: int, number: int, accuracy: float, costs: Sequence[float],
               protected: bool = False, margin: float = 0.0, floor: float = -1.0) -> bool:
        point = point_of(accuracy, costs)
        with file_lock(self.path.with_name(f".{self.path.name}.lock")):
            passed = [e["point"] for e in self.entries()
                      if e["rung"] == rung and e["passed"] and e["number"] != number]
            n_dom = dominated_by(point, passed, margin=margin, floor=floor)
            go_on = protected or n_dom < self.policy.min_dominating
            entry = {"rung": rung, "number": number, "point": point, "passed": go_on,
                     "dominated_by": n_dom, "margin": round(margin, 6),
                     "floor": round(floor, 6), "protected": protected}
            append_line(self.path, json.dumps(entry))
        return go_on
