"""benchmarks/wide_vs_reference.py: its candidates are what it says they are, and none costs
more than the reference on the STM32F746 (the benchmark compares at the reference's latency)."""
from __future__ import annotations

import sys

from autocompress.search.objective import cost_plan

from ..conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import wide_vs_reference as bench


def test_candidates_fit_within_the_reference_latency(tmp_path):
    ctx = bench.context(0, tmp_path)
    ref = bench.reference_params(ctx)
    assert ref["arch/width_mult"] == 1.0
    latency = {}
    for name, spec in bench.CANDIDATES.items():
        params = bench.params_of(ref, *spec)
        assert params["arch/width_mult"] == spec[0]
        assert {v for n, v in params.items() if n.startswith("prune/")} == {spec[1]}
        assert [params[f"arch/kernel/{s}"] for s in range(3)] == list(spec[2])
        assert {v for n, v in params.items() if n.startswith("quant/")} == {8}
        latency[name] = cost_plan(ctx, ctx.rspace.to_plan(params), 0)[1]["stm32f746"].latency_ms
    top = latency.pop("reference (uniform-int8)")
    assert all(ms <= top for ms in latency.values()), latency
    assert max(latency.values()) > 0.9 * top            # some compare at nearly its latency
