"""Dead regex branches: a branch is reported only when it matches no layer and the rule
matches the same layers without it; a valid space must not be refused."""
from __future__ import annotations

import pytest

from autocompress.space.alternatives import dead_branches

NAMES = ["stem.conv", "blocks.0.pw", "blocks.0.dw", "blocks.1.pw", "head.fc"]


@pytest.mark.parametrize("pattern", [
    r"(?i)stem\.conv|HEAD\.FC",          # a global flag at the start is every branch's
    r"(?x) stem\.conv | head\.fc",       # verbose: the spaces are not part of a branch
    r"(\w|\.)+pw",                       # a repeated group needs both branches
    r"[^]|x]+\.pw|head\.fc",             # "]" first in a negated class is a literal
    r"stem\.conv(?#a|b)",                # a comment holds no branch
])
def test_a_valid_pattern_has_no_dead_branch(pattern):
    assert dead_branches(pattern, NAMES) == []


@pytest.mark.parametrize(("pattern", "dead"), [
    (r"stem\.conv|blocks\.\d\.pww", [r"blocks\.\d\.pww"]),
    (r"(?i)stem\.conv|HEAD\.FCC", [r"HEAD\.FCC"]),
    (r"blocks\.\d\.(pw|dw|ddw)", ["ddw"]),
])
def test_a_typo_d_branch_is_dead(pattern, dead):
    assert dead_branches(pattern, NAMES) == dead
