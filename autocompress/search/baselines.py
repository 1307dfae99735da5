"""Baselines trained in every run (same teacher, same training budget as searched trials):
the reference student (the space's ``reference:`` arch values; the largest value of every knob
it leaves out) unpruned at fp32, uniform int8 and uniform int4, and at uniform 25% and 50%
structured sparsity (int8 weights).

A baseline whose values all lie inside the space's distributions is *enqueued* in the
study (Optuna evaluates exactly those values, and the sampler learns from the result). One
that lies outside (e.g. fp32 when 32 bits is not among a layer's choices) cannot be an
Optuna trial of that space — Optuna would resample the out-of-range values. It is evaluated
from its own parameters instead, recorded ``complete`` with a ``note`` saying so, and told
to Optuna as FAIL so the sampler never learns from a point it cannot propose.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autocompress.space import ResolvedSpace
from autocompress.space.distributions import Choice, Fixed, Range

OUTSIDE = "outside the searched space ({why}): evaluated from its own parameters and told " \
          "to Optuna as FAIL, so the sampler ignores it"


@dataclass(frozen=True, kw_only=True)
class Baseline:
    name: str
    params: Mapping[str, Any]
    in_space: bool
    note: str | None = None


def largest_arch(rspace: ResolvedSpace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, dist in rspace.dists.items():
        if name.startswith("arch/") and not isinstance(dist, Fixed):
            out[name] = max(dist.values())
    return out


def reference_arch(rspace: ResolvedSpace) -> dict[str, Any]:
    """Arch parameters of the student the baselines compress (see the module docstring)."""
    out = largest_arch(rspace)
    for name in out:
        _, knob, *stage = name.split("/")
        ref = rspace.space.reference.get(knob)
        if ref is not None:
            out[name] = ref[int(stage[0])] if isinstance(ref, list) else ref
    return out


def outside_reason(rspace: ResolvedSpace, params: Mapping[str, Any]) -> str | None:
    """Why ``params`` cannot be an Optuna trial of this space (None: it can)."""
    for name, value in params.items():
        dist = rspace.dists.get(name)
        if dist is None and name.startswith("quant/"):
            return f"no rule quantizes {name.removeprefix('quant/')}; a uniform baseline does"
        if dist is None:
            return f"{name} is not a parameter of the space"
        if isinstance(dist, Choice) and value not in dist.choices:
            return f"{name}={value} is not among the choices {list(dist.choices)}"
        if isinstance(dist, Range) and not dist.low <= value <= dist.high:
            return f"{name}={value} is outside {dist.low}..{dist.high}"
        if isinstance(dist, Fixed) and value != dist.value:
            return f"{name} is fixed at {dist.value} by the space"
    return None


def baselines(rspace: ResolvedSpace) -> list[Baseline]:
    """The reference points, uniform-int8 first."""
    ref = reference_arch(rspace)
    pinned = {n: d.value for n, d in rspace.dists.items()
              if isinstance(d, Fixed) and n.startswith("quant/")}
    specs: list[tuple[str, dict[str, Any]]] = [
        ("uniform-int8", rspace.uniform_params(bits=8, base=ref)),
        ("fp32", {**rspace.uniform_params(bits=32, base=ref), **dict.fromkeys(pinned, 32)}),
        ("uniform-int4", rspace.uniform_params(bits=4, base=ref)),
    ]
    if any(n.startswith("prune/") for n in rspace.dists):
        for pct in (25, 50):
            specs.append((f"sparse-{pct}",
                          rspace.uniform_params(bits=8, ratio=pct / 100, base=ref)))
    out = []
    for name, params in specs:
        why = outside_reason(rspace, params)
        notes = [OUTSIDE.format(why=why)] if why else []
        kept = {n: v for n, v in pinned.items() if name != "fp32" and v != _bits(name)}
        if kept and _bits(name) is not None:
            notes.append("layers the space pins keep their bits: " +
                         ", ".join(f"{n.removeprefix('quant/')}={v}" for n, v in kept.items()))
        out.append(Baseline(name=name, params=params, in_space=why is None,
                            note="; ".join(notes) or None))
    return out


def _bits(name: str) -> int | None:
    return {"uniform-int8": 8, "uniform-int4": 4, "fp32": 32}.get(name)


def suggest_all(trial: Any, dists: Mapping[str, Any]) -> dict[str, Any]:
    """Suggest every distribution on an asked trial (what ``study.ask(dists)`` does), so a
    trial can first be inspected (an out-of-space baseline suggests nothing)."""
    import optuna.distributions as od

    for name, dist in dists.items():
        if isinstance(dist, od.CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, od.IntDistribution):
            trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return dict(trial.params)
