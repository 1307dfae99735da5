"""How well the sampler learned the budgets: the fraction of its proposals that were
infeasible (over budget, never trained), over time. Baselines are not proposals and are
left out; so are the ``spread`` start-up design's trials (picked within budget, not by the
sampler: ``search/initial.py``) and trials interrupted by a crash."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autocompress.search.records import interrupted


@dataclass(frozen=True, kw_only=True)
class InfeasibleTrend:
    cumulative: tuple[float, ...]     # after proposal i: fraction infeasible so far
    windowed: tuple[float, ...]       # fraction infeasible among the last `window` proposals
    first_half: float
    second_half: float

    def summary(self) -> str:
        n = len(self.cumulative)
        if not n:
            return "infeasible proposals: none sampled"
        return (f"infeasible proposals: {self.cumulative[-1]:.0%} of {n} "
                f"(first half {self.first_half:.0%}, second half {self.second_half:.0%})")


DESIGN_NOTE = "initial design"    # how search/initial.py's NOTE starts


def proposals(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The sampler's own proposals, in trial order.

    >>> [r["number"] for r in proposals([{"number": 1}, {"number": 0, "baseline": "fp32"},
    ...     {"number": 2, "note": "initial design: spread over x"},
    ...     {"number": 3, "error": "interrupted (the run was killed)"}])]
    [1]
    """
    return sorted((r for r in records if not r.get("baseline")
                   and not str(r.get("note") or "").startswith(DESIGN_NOTE)
                   and not interrupted(r)),
                  key=lambda r: int(r["number"]))


def infeasible_trend(records: Sequence[Mapping[str, Any]], window: int = 10
                     ) -> InfeasibleTrend:
    """Fraction of sampled proposals that were infeasible, cumulative and windowed.

    >>> infeasible_trend([{"number": 0, "state": "infeasible"},
    ...                   {"number": 1, "state": "complete"}]).cumulative
    (1.0, 0.5)
    """
    flags = [r["state"] == "infeasible" for r in proposals(records)]
    cumulative, windowed = [], []
    for i in range(len(flags)):
        cumulative.append(sum(flags[:i + 1]) / (i + 1))
        last = flags[max(0, i + 1 - window):i + 1]
        windowed.append(sum(last) / len(last))
    half = len(flags) // 2

    def frac(part: list[bool]) -> float:
        return sum(part) / len(part) if part else 0.0

    return InfeasibleTrend(cumulative=tuple(cumulative), windowed=tuple(windowed),
                           first_half=frac(flags[:half]), second_half=frac(flags[half:]))
