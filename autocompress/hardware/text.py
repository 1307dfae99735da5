"""Text tables of the hardware commands (``predict``'s per-layer lines, ``profiles``)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def elide(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: the middle replaced by ``...``, keeping a
    third of the room for the start and the rest for the end, where ONNX node names say what
    the node is (``.../expand/conv/Conv`` vs ``.../dw/conv/Conv``).

    >>> elide("/stages/stages.0/stages.0.0/expand/conv/Conv", 40)
    '/stages/stag...ages.0.0/expand/conv/Conv'
    """
    if len(text) <= width:
        return text
    if width <= 3:
        return text[-width:] if width > 0 else ""
    head = (width - 3) // 3
    tail = width - 3 - head
    return text[:head] + "..." + text[len(text) - tail:]


def layer_table(layers: Sequence[dict[str, Any]], max_name: int = 60) -> list[str]:
    """The per-layer lines of ``autocompress predict``: the name column as wide as the
    longest name (at most ``max_name``; longer names lose their middle, see :func:`elide`)."""
    width = min(max([len("layer"), *(len(str(r["fqn"])) for r in layers)]), max_name)
    lines = [f"  {'layer':<{width}} {'op':<8} {'latency_ms':>11} {'flash_kb':>9}  source"]
    for row in layers:
        lines.append(f"  {elide(str(row['fqn']), width):<{width}} {row['op']:<8} "
                     f"{row['latency_ms']:>11.5f} {row['flash_kb']:>9.2f}  {row['provenance']}")
    return lines


def align_rows(rows: Iterable[Sequence[str]], sep: str = " ") -> list[str]:
    """Rows of cells as text columns, each as wide as its widest cell (the last column
    unpadded).

    >>> align_rows([("a", "bb", "c"), ("ccc", "d", "e")])
    ['a   bb c', 'ccc d  e']
    """
    table = [list(r) for r in rows]
    if not table:
        return []
    widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(max(map(len, table)))]
    return [sep.join(c if i == len(r) - 1 else f"{c:<{widths[i]}}" for i, c in enumerate(r))
            for r in table]


def profiles_lines(names: Iterable[str] | None = None) -> list[str]:
    """The lines of ``autocompress profiles``: name, device kind, SoC, measurement method and
    the sha256 prefix of each known profile (``names``: default every one), columns sized to
    their widest entry."""
    from autocompress.hardware.profile import list_profiles, load_profile

    rows = []
    for name in list_profiles() if names is None else names:
        prof = load_profile(name)
        rows.append((name, prof.device.kind, prof.device.soc, prof.measurement.method,
                     f"sha256 {prof.sha256[:12]}"))
    return align_rows(rows)
