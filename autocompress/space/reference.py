"""``reference:`` in a search space: the student the baselines compress (see
``search/baselines.py``), validated against the space's ``arch`` distributions."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autocompress.errors import SpaceError, did_you_mean
from autocompress.space.distributions import Distribution, Range, takes
from autocompress.yamlio import Located


def parse_reference(doc: Located, raw: Any, arch: Mapping[str, Distribution]
                    ) -> dict[str, Any]:
    """``reference:``: arch values of the student the baselines compress (one value, or one
    per stage; knobs left out take their largest value). Each must be a value of ``arch``."""
    if not isinstance(raw, dict):
        raise doc.error(("reference",), "'reference' must be a mapping of arch knobs",
                        cls=SpaceError, hint="e.g. reference: {kernel: 3}")
    for knob, value in raw.items():
        if knob not in arch:
            raise doc.error(("reference", knob), f"'{knob}' is not searched under 'arch'",
                            cls=SpaceError, hint=did_you_mean(knob, list(arch))
                            or f"arch knobs here: {', '.join(arch) or 'none'}")
        if isinstance(value, list) and knob == "width_mult":
            raise doc.error(("reference", knob), "width_mult takes one value", cls=SpaceError,
                            hint="e.g. reference: {width_mult: 1.0}")
        for i, v in enumerate(value if isinstance(value, list) else [value]):
            dist = arch[knob]
            where = ("reference", knob, i) if isinstance(value, list) else ("reference", knob)
            integer = isinstance(dist, Range) and dist.integer
            if isinstance(v, bool) or not isinstance(v, int | float) or (
                    integer and not float(v).is_integer()):
                raise doc.error(where, f"expected {'an integer' if integer else 'a number'}, "
                                f"got {v!r}", cls=SpaceError,
                                hint=f"one value, or a list with one per stage, e.g. {knob}: "
                                f"{max(dist.values())}")
            if not takes(dist, v):
                allowed = (f"{dist.low}..{dist.high}" if isinstance(dist, Range)
                           else ", ".join(map(str, dist.values())))
                raise doc.error(where, f"{v!r} is not a value arch.{knob} can take",
                                cls=SpaceError, hint=f"arch.{knob} takes {allowed}")
    return dict(raw)
