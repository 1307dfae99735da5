from __future__ import annotations

from typing import Any

import pytest

from tests.report.sample import rec


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return [
        rec(0, "complete", 0.90, {"mcu": 5.0, "phone": 1.0}),
        rec(1, "complete", 0.85, {"mcu": 6.0, "phone": 0.5}),   # dominated on mcu, front on phone
        rec(2, "complete", 0.97, {"mcu": 9.0, "phone": 2.0}),
        rec(3, "infeasible", None, {"mcu": 14.0, "phone": 3.0}),
        rec(4, "failed", error="RuntimeError: boom"),
        rec(5, "complete", 0.95, {"mcu": 7.0, "phone": 1.5}, baseline="uniform-int8"),
        rec(6, "complete", 0.80, {"mcu": 8.0, "phone": 2.5}, baseline="prune-50"),
        rec(7, "pruned", None, {"mcu": 3.0, "phone": 0.4}),
    ]
