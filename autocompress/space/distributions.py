"""Distributions of the search space YAML (bounds inclusive).

- a list            -> categorical choices: ``[2, 4, 8]``
- ``{low, high}``   -> int range if both are ints, else float; optional ``step``, ``log``
- a scalar          -> fixed value (not searched)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autocompress.errors import SpaceError
from autocompress.yamlio import Located, PathKey


@dataclass(frozen=True, kw_only=True)
class Choice:
    choices: tuple[Any, ...]

    def to_optuna(self) -> Any:
        import optuna

        return optuna.distributions.CategoricalDistribution(list(self.choices))

    def values(self) -> tuple[Any, ...]:
        return self.choices


@dataclass(frozen=True, kw_only=True)
class Range:
    low: float
    high: float
    step: float | None = None
    log: bool = False
    integer: bool = False

    def to_optuna(self) -> Any:
        import optuna

        if self.integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high),
                                                        log=self.log, step=int(self.step or 1))
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log,
                                                      step=self.step)

    def values(self) -> tuple[Any, ...]:
        return (self.low, self.high)


@dataclass(frozen=True, kw_only=True)
class Fixed:
    value: Any

    def values(self) -> tuple[Any, ...]:
        return (self.value,)


Distribution = Choice | Range | Fixed


def parse_distribution(doc: Located, path: PathKey, value: Any, *,
                       allowed: tuple[Any, ...] | None = None,
                       bounds: tuple[float, float] | None = None,
                       integer: bool = False, expect: str = "a value") -> Distribution:
    """Parse one knob; ``allowed``/``bounds``/``integer`` validate every value it can take
    (``integer``: whole numbers only, so a range is sampled as integers)."""
    def bad(msg: str) -> SpaceError:
        err = doc.error(path, msg, hint=f"expected {expect}", cls=SpaceError)
        assert isinstance(err, SpaceError)
        return err

    if isinstance(value, list):
        if not value:
            raise bad("empty list of choices")
        dist: Distribution = Choice(choices=tuple(value))
    elif isinstance(value, dict):
        unknown = set(value) - {"low", "high", "step", "log"}
        if unknown or not {"low", "high"} <= set(value):
            raise bad(f"a range needs keys low and high (optional step, log), got {sorted(value)}")
        low, high = value["low"], value["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise bad(f"range bounds must be numbers, got low={low!r} high={high!r}")
        if low > high:
            raise bad(f"range low {low} is above high {high}")
        integral = isinstance(low, int) and isinstance(high, int)
        step, log = value.get("step"), value.get("log", False)
        _check_step(bad, low, high, step, log, integral)
        dist = Range(low=low, high=high, step=step, log=log, integer=integral)
    else:
        dist = Fixed(value=value)
    checked = dist.values()
    if isinstance(dist, Range) and allowed is not None:   # a set of values: all must be valid
        if not dist.integer:
            raise bad(f"a range of {dist.low}..{dist.high} takes fractional values; this knob "
                      "takes a list, e.g. [4, 8]")
        checked = tuple(range(int(dist.low), int(dist.high) + 1, int(dist.step or 1)))
    for v in checked:
        if allowed is not None and v not in allowed:
            raise bad(f"value {v!r} is not supported" + (
                f" (the range {dist.low}..{dist.high} takes it; give a list instead)"
                if isinstance(dist, Range) else ""))
        if bounds is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad(f"value {v!r} is not a number")
            if not bounds[0] <= v <= bounds[1]:
                raise bad(f"value {v!r} is out of range")
        if integer and (isinstance(v, bool) or not isinstance(v, int)):
            raise bad(f"value {v!r} is not a whole number")
    return dist


def _check_step(bad: Any, low: float, high: float, step: Any, log: Any, integral: bool) -> None:
    """A range's ``step`` and ``log``: Optuna would refuse them mid-search, after the teacher
    trained (a step of 0), or quietly cut the range (a step that does not divide it)."""
    if not isinstance(log, bool):
        raise bad(f"range log must be true or false, got {log!r}")
    if log and low <= 0:
        raise bad(f"a log range needs low > 0, got {low}")
    if step is None:
        return
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
        raise bad(f"range step must be a positive number, got {step!r}")
    if integral and not isinstance(step, int):
        raise bad(f"a range of whole numbers takes a whole step, got {step!r}")
    if log:
        raise bad("a range takes step or log, not both")
    count = (high - low) / step
    if abs(count - round(count)) > 1e-9:
        raise bad(f"step {step} does not divide the range {low}..{high} (high - low = "
                  f"{high - low:g}); pick a step that does, or move high")


def takes(dist: Distribution, value: Any) -> bool:
    """Whether ``dist`` can take ``value``."""
    if value is None:
        return False
    if isinstance(dist, Choice):
        return value in dist.choices
    if isinstance(dist, Range):
        return bool(dist.low <= value <= dist.high)
    return bool(value == dist.value)
