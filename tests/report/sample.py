"""Hand-made trial records shared by the report tests."""
from __future__ import annotations

from typing import Any

from autocompress.pareto import Budget

BUDGET = Budget(profile="mcu", metric="latency_ms", limit=10.0)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# execution order of the hand-made model; "add" is costed but never in a plan
ORDER = ["stem.conv", "stages.0.0.expand.conv", "stages.0.0.dw.conv", "add",
         "stages.0.1.expand.conv", "head.conv", "classifier"]


def rec(number: int, state: str, acc: float | None = None, costs: dict[str, float] | None = None,
        **extra: Any) -> dict[str, Any]:
    """``costs`` maps profile -> latency_ms (flash = 2x latency, std = 0.1)."""
    cost = {p: {"latency_ms": lat, "flash_kb": 2 * lat, "peak_sram_kb": 18.0, "std_ms": 0.1,
                "provenance": {"analytic": 12, "lut": 3}} for p, lat in (costs or {}).items()}
    return {"number": number, "state": state,
            "params": {"arch/width_mult": 0.5, "quant/stem": 4},
            "plan_id": f"plan{number}", "plan": {"layers": {}},
            "metrics": {} if acc is None else {"accuracy": acc, "params": 5120},
            "cost": cost,
            "constraints": {f"{p}.max_latency_ms": lat - 10.0 for p, lat in (costs or {}).items()
                            if p == "mcu"},
            "duration_s": 1.5, "seed": 7, "error": None, "baseline": None, "rung": None,
            **extra}


def planned(number: int, state: str, acc: float | None, lat: float,
            layers: dict[str, list[dict[str, Any]]], *, order: list[str] | None = None,
            **extra: Any) -> dict[str, Any]:
    """A record with a plan and a per-layer cost list (execution order ``order``)."""
    r = rec(number, state, acc, {"mcu": lat}, **extra)
    r["plan"] = {"arch": {"width_mult": 0.5}, "layers": layers}
    r["cost"]["mcu"]["layers"] = [{"fqn": name, "latency_ms": lat / 10, "op": "conv2d"}
                                  for name in (order or ORDER)]
    return r


def q(bits: int) -> dict[str, Any]:
    return {"kind": "quant", "bits": bits, "per_channel": True, "symmetric": True}


def pr(ratio: float) -> dict[str, Any]:
    return {"kind": "prune", "ratio": ratio, "criterion": "l1"}


def run_records() -> list[dict[str, Any]]:
    """A small search: three front points (one with an unknown technique and a shallower
    model), a dominated one, a baseline, an untrained infeasible one and a failed one."""
    shallow = [n for n in ORDER if n != "stages.0.1.expand.conv"]
    return [
        planned(0, "complete", 0.95, 12.0, {n: [q(8)] for n in ORDER if n != "add"},
                baseline="uniform-int8"),
        planned(1, "complete", 0.90, 3.0, {
            "stem.conv": [pr(0.5), q(4)], "stages.0.0.expand.conv": [q(2)],
            "stages.0.0.dw.conv": [{"kind": "lowrank", "rank_ratio": 0.25}, q(4)],
            "head.conv": [{"kind": "cluster", "k": 16}], "classifier": [q(8)]},
            order=shallow),
        planned(2, "complete", 0.93, 6.0, {
            "stem.conv": [q(8)], "stages.0.1.expand.conv": [pr(0.25), q(4)],
            "head.conv": [{"kind": "mystery", "enabled": True, "strength": 0.7}],
            "classifier": [q(8)]}),
        planned(3, "complete", 0.85, 7.0, {"stem.conv": [q(2)]}),
        planned(4, "complete", 0.96, 9.5, {"stem.conv": [q(8)], "classifier": [q(8)]}),
        rec(5, "infeasible", None, {"mcu": 14.0}),
        rec(6, "failed", error="RuntimeError: <shape> & boom"),
    ]
