"""Safe YAML loading that remembers where every value came from.

``load_yaml(path)`` returns a :class:`Located` document: plain Python data (dicts, lists,
scalars) plus a map from each value's path (``("rules", 1, "quant", "bits")``) to its line,
so validation errors can say ``search_spaces/x.yaml:14 rules[1].quant.bits: ...``.
Only ``yaml.SafeLoader`` (with YAML 1.2's numbers: :class:`Loader`) is used: no Python
objects are ever constructed from YAML.
``apply_overrides``: the ``--set a.b=value`` overrides (or a ``{"a.b": value}`` mapping).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml

from autocompress.errors import AutocompressError, ConfigError

PathKey = tuple[str | int, ...]


def format_path(path: PathKey) -> str:
    """``("rules", 1, "quant")`` -> ``rules[1].quant``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Located:
    """A YAML document with the source line of each value."""

    data: Any
    file: str
    lines: Mapping[PathKey, int] = field(default_factory=dict)

    def loc(self, path: PathKey) -> str:
        """``file:line field.path`` for the nearest located ancestor of ``path``."""
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        where = f"{self.file}:{line}" if line is not None else self.file
        field_text = format_path(path)
        return f"{where} {field_text}" if field_text else where

    def error(self, path: PathKey, message: str, *, hint: str | None = None,
              cls: type[AutocompressError] = ConfigError) -> AutocompressError:
        return cls(message, loc=self.loc(path), hint=hint)


class Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2's numbers: ``5e-3`` is a float (YAML 1.1 read it as a
    string), ``010`` is ten (not eight) and ``1:00`` a string (not sixty)."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$")   # 1_000 as YAML 1.1
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    return int(text[2:], 8) if text.startswith("0o") else int(text, 16 if text.startswith(
        "0x") else 10)


Loader.add_constructor("tag:yaml.org,2002:int", _int)


class Dumper(yaml.SafeDumper):
    """The safe dumper quoting what :class:`Loader` would read as a number (``'5e-3'`` stays
    a string on the way back)."""


Dumper.yaml_implicit_resolvers = {k: list(v) for k, v in Loader.yaml_implicit_resolvers.items()}


def dump_yaml(data: Any, **kwargs: Any) -> str:
    """YAML text that :func:`parse_yaml` reads back as ``data``."""
    return yaml.dump(data, Dumper=Dumper, **kwargs)


MAX_VALUES = 1_000_000    # a few aliases nested can expand to 10^8 values (a "YAML bomb")


def _construct(node: yaml.Node, path: PathKey, lines: dict[PathKey, int],
               loader: yaml.SafeLoader) -> Any:
    lines[path] = node.start_mark.line + 1
    if len(lines) > MAX_VALUES:
        raise AutocompressError(f"the document expands to more than {MAX_VALUES:,} values",
                                loc=f"{loader.name}:{node.start_mark.line + 1}",
                                hint="nested aliases (*name) multiply: write the values out")
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in (
            "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):     # was silently dropped
        raise AutocompressError(f"unsupported YAML tag {node.tag}",
                                loc=f"{loader.name}:{node.start_mark.line + 1}",
                                hint="remove the tag: a config holds plain data only")
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise AutocompressError("mapping keys must be plain scalars",
                                  loc=f"{loader.name}:{key_node.start_mark.line + 1}")
            if key in out:
                raise AutocompressError(f"duplicate key '{key}'",
                                  loc=f"{loader.name}:{key_node.start_mark.line + 1}",
                                  hint="each key may appear once per mapping")
            sub = (*path, str(key))
            out[str(key)] = _construct(value_node, sub, lines, loader)
            lines[sub] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, (*path, i), lines, loader) for i, child in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str = "<string>", *,
               cls: type[AutocompressError] = ConfigError) -> Located:
    """Parse YAML text safely, keeping line numbers. Raises ConfigError with file:line."""
    loader = Loader(text)
    loader.name = file
    try:
        node = loader.get_single_node()
        lines: dict[PathKey, int] = {}
        data = {} if node is None else _construct(node, (), lines, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise cls(f"malformed YAML: {problem}", loc=f"{file}{line}",
                  hint="check indentation, colons and quotes on that line") from None
    except yaml.YAMLError as exc:
        raise cls(f"malformed YAML: {exc}", loc=file) from None
    except AutocompressError as exc:
        raise cls(exc.raw_message, loc=exc.loc, hint=exc.hint) from None
    finally:
        loader.dispose()
    return Located(data=data, file=file, lines=lines)


def load_yaml(path: str | Path, *, what: str = "file",
              cls: type[AutocompressError] = ConfigError) -> Located:
    """Read and parse a YAML file; a missing or unreadable file is a clear error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise cls(f"{what} not found", loc=str(p), hint="check the path") from None
    except IsADirectoryError:       # a run dir given as the config: it meant --resume
        raise cls(f"the {what} is a folder, not a file", loc=str(p), hint=(
            f"to continue that run: autocompress search --resume {p}"
            if (p / "config.resolved.yaml").is_file() else "give the YAML file's path")
                  ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise cls(f"cannot read {what}: {exc}", loc=str(p)) from None
    return parse_yaml(text, str(p), cls=cls)


def split_override(item: str) -> tuple[str, str]:
    """``'a.b=value'`` -> ``('a.b', 'value')``; a ConfigError on --set when it is not one."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"bad override {item!r}", loc="--set",
                          hint="use --set section.key=value, e.g. --set search.trials=5")
    return key.strip(), raw


def apply_overrides(data: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any]
                    ) -> tuple[dict, set[PathKey]]:
    """Apply ``a.b=value`` strings (value parsed as YAML), or a ``{"a.b": value}`` mapping
    (values as they are: a ``Path``, a list). Returns the new data and the paths set."""
    out = copy.deepcopy(data)
    touched: set[PathKey] = set()
    flag = override_flag(overrides)
    if isinstance(overrides, str):              # one string was read letter by letter
        overrides = [overrides]
    pairs = ([(str(k), v) for k, v in overrides.items()] if isinstance(overrides, Mapping)
             else [_parsed(*split_override(item)) for item in overrides])
    for key, value in pairs:
        path = tuple(key.split("."))
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set '{key}': '{part}' is not a section", loc=flag)
        node[path[-1]] = _plain_value(value)
        touched.add(path)
    return out, touched


def _plain_value(value: Any) -> Any:
    """A Python override's value as YAML would give it: a copy (the caller's dict is not
    the config's), a ``Path`` as text, a tuple as a list, at any depth."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_value(v) for v in value]
    return copy.deepcopy(value)


def override_flag(overrides: Any) -> str:
    """How errors name an override: ``--set`` on the command line, ``override`` for a
    mapping given in Python."""
    return "override" if isinstance(overrides, Mapping) else "--set"


def _parsed(key: str, raw: str) -> tuple[str, Any]:
    try:
        return key, yaml.load(raw, Loader=Loader)    # safe: Loader is a SafeLoader
    except yaml.YAMLError:
        return key, raw
