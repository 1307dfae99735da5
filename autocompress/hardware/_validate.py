"""Typed, located reads from a YAML document (errors say ``file:line field.path``)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from autocompress.errors import AutocompressError, ProfileError, did_you_mean
from autocompress.yamlio import Located, PathKey

_MISSING = object()


class Reader:
    """Reads values out of ``doc.data`` by path; every problem raises ``cls`` located."""

    def __init__(self, doc: Located, cls: type[AutocompressError] = ProfileError) -> None:
        self.doc = doc
        self.cls = cls

    def error(self, path: PathKey, message: str, hint: str | None = None) -> AutocompressError:
        return self.doc.error(path, message, hint=hint, cls=self.cls)

    def raw(self, path: PathKey, default: Any = _MISSING) -> Any:
        node: Any = self.doc.data
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            elif default is not _MISSING:
                return default
            else:
                raise self.error(path, "missing required field")
        return node

    def section(self, path: PathKey, *, required: Iterable[str] = (),
                optional: Iterable[str] = (), default: Any = _MISSING,
                any_keys: bool = False) -> dict[str, Any]:
        """A mapping whose keys must be among ``required`` + ``optional`` (unless
        ``any_keys``), with every required key present."""
        node = self.raw(path, default)
        if node is None and default is not _MISSING:
            node = default
        if not isinstance(node, dict):
            raise self.error(path, f"expected a mapping, got {_kind(node)}")
        required = tuple(required)
        allowed = (*required, *optional)
        for key in node:
            if key not in allowed and not any_keys:
                raise self.error((*path, key), f"unknown key '{key}'",
                                 hint=did_you_mean(key, allowed)
                                 or f"allowed keys: {', '.join(allowed)}")
        for key in required:
            if key not in node:
                raise self.error(path, f"missing required field '{key}'")
        return node

    def get(self, path: PathKey, kind: str, default: Any = _MISSING, *,
            minimum: float | None = None, positive: bool = False) -> Any:
        """A scalar of ``kind`` (``str``, ``int``, ``number``, ``bool``) at ``path``;
        ``positive``: above 0 (a size, a clock, a rate)."""
        value = self.raw(path, default)
        if value is default and default is not _MISSING:
            return default
        ok = {
            "str": isinstance(value, (str, int, float)) and not isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
        }[kind]
        if not ok:
            raise self.error(path, f"expected {_article(kind)}, got {_kind(value)} {value!r}")
        if kind == "number" and not math.isfinite(value):    # .nan / .inf: no cost is
            raise self.error(path, f"expected a finite number, got {value!r}")  # meaningful
        if positive and value <= 0:
            raise self.error(path, f"must be > 0, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(path, f"must be >= {minimum}, got {value!r}")
        if kind == "str":
            return str(value)
        return float(value) if kind == "number" else value

    def str_list(self, path: PathKey, default: Any = _MISSING) -> tuple[str, ...]:
        value = self.raw(path, default)
        if not isinstance(value, list):
            raise self.error(path, f"expected a list, got {_kind(value)}")
        return tuple(self.get((*path, i), "str") for i in range(len(value)))

    def number_map(self, path: PathKey, default: Any = _MISSING) -> dict[str, float]:
        """A mapping of positive numbers (throughputs: a 0 would divide by zero)."""
        value = self.raw(path, default)
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping of numbers, got {_kind(value)}")
        out = {str(k): self.get((*path, k), "number", minimum=0.0) for k in value}
        for k, v in out.items():
            if v <= 0:
                raise self.error((*path, k), f"must be > 0 (a throughput), got {v!r}")
        return out


def _article(kind: str) -> str:
    return {"str": "a string", "int": "an integer", "number": "a number",
            "bool": "true or false"}[kind]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)
