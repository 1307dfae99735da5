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
        dist = Range(low=low, high=high, step=value.get("step"), log=bool(value.get("log", False)),
                     integer=isinstance(low, int) and isinstance(high, int))
    else:
        dist = Fixed(value=value)
    for v in dist.values():
        if allowed is not None and v not in allowed:
            raise bad(f"value {v!r} is not supported")
        if bounds is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad(f"value {v!r} is not a number")
            if not bounds[0] <= v <= bounds[1]:
                raise bad(f"value {v!r} is out of range")
        if integer and (isinstance(v, bool) or not isinstance(v, int)):
            raise bad(f"value {v!r} is not a whole number")
    return dist


def takes(dist: Distribution, value: Any) -> bool:
    """Whether ``dist`` can take ``value``."""
    if value is None:
        return False
    if isinstance(dist, Choice):
        return value in dist.choices
    if isinstance(dist, Range):
        return bool(dist.low <= value <= dist.high)
    return bool(value == dist.value)
