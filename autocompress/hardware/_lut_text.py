"""Fast path for big measured LUTs: ``entries:`` written one flow mapping per line.

``autocompress profile`` writes ~10k entries; the line-numbered YAML loader needs seconds
for that, a regex needs milliseconds. Only a file whose ``entries:`` block consists entirely
of lines in the writer's exact form takes this path (the rest of the file still goes through
the YAML loader); anything else, e.g. a hand-edited entry, falls back to the YAML loader.

>>> lines = [f'  "linear|in={c}|out=2|w=int8|a=int8": {{mean_ms: 0.001000, std_ms: 0.000100, n: 40}}'
...          for c in range(1, _MIN_LINES + 1)]
>>> head, entries = split_entries("version: 1\\nentries:\\n" + "\\n".join(lines), "p.yaml")
>>> head.splitlines()[-1], entries["linear|in=8|out=2|w=int8|a=int8"].n
('entries: {}', 40)
>>> split_entries("version: 1\\nentries:\\n" + lines[0], "p.yaml")[1] is None   # small: YAML
True
"""
from __future__ import annotations

import re

from autocompress.errors import ProfileError
from autocompress.hardware.keys import check_canonical
from autocompress.hardware.spec import LutEntry

_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_LINE = re.compile(r'^  "([^"]+)": \{mean_ms: ' + _NUM + r", std_ms: " + _NUM
                   + r", n: ([0-9]+)\}\s*$")
_MIN_LINES = 200        # below this the YAML loader is fast enough; keep one code path


def split_entries(text: str, file: str) -> tuple[str, dict[str, LutEntry] | None]:
    """(text with ``entries: {}``, parsed entries) or (text, None) when not in fast form."""
    lines = text.splitlines()
    try:
        start = lines.index("entries:")
    except ValueError:
        return text, None
    body = lines[start + 1:]
    if len(body) < _MIN_LINES:
        return text, None
    entries: dict[str, LutEntry] = {}
    for offset, line in enumerate(body):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            return text, None
        key, mean, std, n = match.groups()
        loc = f"{file}:{start + 2 + offset}"
        try:
            check_canonical(key)
        except ValueError as exc:
            raise ProfileError(f"entries: malformed LUT key: {exc}", loc=loc) from None
        if key in entries:
            raise ProfileError(f"duplicate key '{key}'", loc=loc,
                               hint="each key may appear once per mapping")
        if int(n) < 1:
            raise ProfileError(f"entries.{key}.n: must be >= 1, got {n}", loc=loc)
        entries[key] = LutEntry(mean_ms=float(mean), std_ms=float(std), n=int(n))
    return "\n".join([*lines[:start], "entries: {}"]) + "\n", entries
