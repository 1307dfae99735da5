"""Narrowing a search space by per-layer sensitivity (``autocompress.space.narrow``)."""
from __future__ import annotations

import pytest

from autocompress.space import SearchSpace, resolve
from autocompress.space.distributions import Choice, Fixed, Range
from autocompress.space.narrow import narrow, narrow_values, narrowed_document
from autocompress.yamlio import dump_yaml, parse_yaml
from tests.space.test_space import LAYERS, LEADERS, SPACE


def _resolved(text: str = SPACE):
    return resolve(SearchSpace.parse(parse_yaml(text, "space.yaml")), quant_layers=LAYERS,
                   prune_leaders=LEADERS, num_stages=2)


@pytest.mark.parametrize(("knob", "dist", "measured", "expected"), [
    # a bad width removes it and every narrower one; an unprobed wider one stays
    ("quant.bits", Choice(choices=(2, 3, 4, 8, 32)), [(4, 2.1)], [8, 32]),
    ("quant.bits", Choice(choices=(2, 4, 8)), [(2, 1.9), (4, 0.1)], None),       # all fine
    ("quant.bits", Choice(choices=(2, 4, 8)), [(2, None)], None),                # n/a
    ("quant.bits", Choice(choices=(2, 4)), [(4, 50.0)], [4]),     # never empty: the lightest
    ("quant.bits", Range(low=2, high=8, integer=True), [(2, 9.0), (4, 0.0)],
     {"low": 3, "high": 8}),
    ("quant.bits", Range(low=2, high=8, integer=True), [(8, 9.0)], [8]),
    ("quant.bits", Fixed(value=4), [(4, 90.0)], None),                          # not searched
    ("prune.ratio", Choice(choices=(0.0, 0.25, 0.5, 0.75)), [(0.5, 2.5)], [0.0, 0.25]),
    ("prune.ratio", Choice(choices=(0.0, 0.25, 0.5)), [(0.25, 0.0), (0.5, 2.0)], None),
    ("sparsity.ratio", Range(low=0.0, high=0.9), [(0.5, 0.1), (0.9, 40.0)],
     {"low": 0.0, "high": 0.5}),
    ("sparsity.ratio", Range(low=0.1, high=0.9), [(0.5, 40.0)], [0.1]),
    ("sparsity.ratio", Range(low=0.0, high=0.9, step=0.2), [(0.5, 0.1), (0.9, 40.0)],
     {"low": 0.0, "high": 0.4, "step": 0.2}),
    ("prune.ratio", Range(low=0.0, high=0.4), [(0.5, 40.0)], None),   # beyond the range
])
def test_values_known_to_lose_too_much_go(knob, dist, measured, expected):
    assert narrow_values(knob, dist, measured, 2.0) == expected


def test_own_parameters_get_exact_rules_and_shared_ones_narrow_their_rule():
    text = SPACE.replace("quant.bits: [2, 4, 8]\n", "quant.bits: [2, 4, 8]\n    share: true\n")
    rs = _resolved(text)
    measured = {"stem.conv": {"quant.bits": [(2, 3.0), (4, 0.5)], "prune.ratio": [(0.5, 0.2)]},
                "stages.0.0.expand.conv": {"prune.ratio": [(0.5, 30.0)]},
                "classifier": {"quant.bits": [(2, 80.0)]}}       # fixed at 8: untouched
    out = narrow(rs, measured, 2.0)
    assert out.exact == {"stages.0.0.expand.conv": {"prune.ratio": [0.0]}}
    assert out.shared == {1: {"quant.bits": [4, 8]}}       # stem's int2 loss, for every layer
    assert len(out.lines) == 2 and "lost 30.0 points at 0.5" in "\n".join(out.lines)
    doc = narrowed_document(parse_yaml(text, "space.yaml").data, out)
    assert doc["rules"][-1] == {"match": "stages.0.0.expand.conv", "prune.ratio": [0.0]}
    again = _resolved(dump_yaml(doc, sort_keys=False))           # a valid space, and it wins
    assert again.dists["prune/stages.0.0.expand.conv"] == Choice(choices=(0.0,))
    assert again.dists["quant/rule1"] == Choice(choices=(4, 8))   # the same parameter names
    assert set(again.dists) == set(rs.dists)
    assert again.dists["quant/classifier"] == Fixed(value=8)


def test_an_exact_rule_already_there_is_narrowed_in_place():
    text = SPACE + "  - match: stem.conv\n    quant.bits: [2, 8]\n"
    out = narrow(_resolved(text), {"stem.conv": {"quant.bits": [(2, 9.0)]}}, 2.0)
    doc = narrowed_document(parse_yaml(text, "space.yaml").data, out)
    assert doc["rules"][-1] == {"match": "stem.conv", "quant.bits": [8]}
    assert len(doc["rules"]) == 5
    assert _resolved(dump_yaml(doc, sort_keys=False)).dists["quant/stem.conv"] == \
        Choice(choices=(8,))


def test_narrowed_ranges_stay_on_their_grid():
    """A stepped range narrowed off its grid made a space that does not load."""
    assert narrow_values("quant.bits", Range(low=2, high=8, step=2, integer=True),
                         [(2, 9.0)], 2.0) == {"low": 4, "high": 8, "step": 2}
    assert narrow_values("quant.bits", Range(low=2, high=8, step=3, integer=True),
                         [(4, 9.0)], 2.0) == {"low": 5, "high": 8, "step": 3}
    assert narrow_values("sparsity.ratio", Range(low=0.0, high=0.9, step=0.1),
                         [(0.3, 0.1), (0.5, 9.0)], 2.0) == {"low": 0.0, "high": 0.3, "step": 0.1}


def test_global_sparsity_is_left_alone():
    text = SPACE.replace("  - match: head.conv", "  - match: 're:stages.*'\n"
                         "    sparsity.ratio: [0.0, 0.5, 0.9]\n    sparsity.scope: global\n"
                         "  - match: head.conv")
    rs = _resolved(text)
    measured = {f: {"sparsity.ratio": [(0.9, 50.0)]} for f in LAYERS}
    assert narrow(rs, measured, 2.0).shared == {}
