"""Dead branches of a rule's regex: ``re:stem|blocks\\.\\d\\.pww`` matches ``stem``, so the
rule is not an error, yet its typo'd branch matches nothing and the layers the user meant are
silently left out of the search.

A branch is each ``|``-separated alternative of the pattern's top level or of a group, taken
with the rest of the pattern around its group. Lookarounds and conditionals are not looked
into (their branches do not choose what is matched).

>>> dead_branches(r"stem|blocks\\.\\d\\.pww", ["stem", "blocks.0.pw"])
['blocks\\\\.\\\\d\\\\.pww']
>>> dead_branches(r"(stem|head)\\.conv", ["stem.conv", "head.conv"])
[]
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from autocompress.errors import SpaceError
from autocompress.space.space import SearchSpace

_SKIP = ("(?=", "(?!", "(?<=", "(?<!", "(?(")      # lookarounds, conditionals


def _spans(pattern: str) -> list[tuple[int, int, list[int]]]:
    """Each group's (start, end, positions of its own ``|``): the top level as (0, len)."""
    stack: list[tuple[int, list[int], bool]] = [(0, [], False)]
    out: list[tuple[int, int, list[int]]] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += 1 + (pattern[i + 1:i + 2] == "^")
            i += pattern[i:i + 1] == "]"                      # "[]...]", "[^]...]": a literal ]
            continue
        elif pattern.startswith("(?#", i):                    # a comment: to its ")"
            i = pattern.find(")", i) + 1 or len(pattern)
            continue
        elif c == "(":
            skip = pattern.startswith(_SKIP, i)
            head = re.match(r"\(\?(P<\w+>|[aiLmsux-]*:)", pattern[i:])   # (?P<n>  (?:  (?i:
            stack.append((i + (head.end() if head else 1), [], skip))
        elif c == ")" and len(stack) > 1:
            start, bars, skip = stack.pop()
            if not skip:
                out.append((start, i, bars))
        elif c == "|":
            stack[-1][1].append(i)
        i += 1
    start, bars, _ = stack[0]
    out.append((start, len(pattern), bars))
    return out


def dead_branches(pattern: str, names: Sequence[str]) -> list[str]:
    """The alternatives of ``pattern`` (a full-match regex) under which no name in ``names``
    matches, the rest of the pattern kept, and without which the pattern matches the same
    names (in a repeated group, ``(\\w|\\.)+``, each branch alone matches nothing, yet both
    are used); [] for a pattern without ``|``, one that does not compile, or a verbose one.
    The pattern's global flags (``(?i)`` at its start) apply to every branch."""
    try:
        whole = re.compile(pattern)
    except re.error:
        return []
    if whole.flags & re.VERBOSE:          # whitespace and # comments: not split here
        return []
    flags = whole.flags & ~re.UNICODE     # (?i) etc.: its first top-level branch holds them
    matched = [n for n in names if whole.fullmatch(n)]
    dead = []
    for start, end, bars in _spans(pattern):
        if not bars:
            continue
        cuts = [start - 1, *bars, end]
        branches = [pattern[a + 1:b] for a, b in itertools.pairwise(cuts)]
        for k, branch in enumerate(branches):
            rest = "|".join(branches[:k] + branches[k + 1:])
            try:
                only = re.compile(pattern[:start] + branch + pattern[end:], flags)
                without = re.compile(pattern[:start] + rest + pattern[end:], flags)
            except re.error:
                continue
            if not any(only.fullmatch(n) for n in names) and \
                    [n for n in names if without.fullmatch(n)] == matched:
                dead.append(branch)
    return dead


def dead_branch_error(space: SearchSpace, names: Sequence[str]) -> SpaceError | None:
    """The error for the first regex rule with a branch matching none of ``names`` (the
    model's layers), at the rule's line; refused for a new run only (a run dir made before
    this check still loads)."""
    for rule in space.rules:
        if rule.is_regex and (dead := dead_branches(rule.pattern[3:], names)):
            hits = sum(rule.matches(n) for n in names)
            return space.doc.error(("rules", rule.index, "match"), f"'{rule.pattern}': its "
                                   f"branch '{dead[0]}' matches no layer (the rule matches "
                                   f"{hits} through its other branches)", cls=SpaceError,
                                   hint=f"fix or remove that branch; layers are e.g. "
                                   f"{', '.join(names[:4])}")
    return None
