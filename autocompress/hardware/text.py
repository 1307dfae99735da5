"""Text of the hardware commands: ``predict``'s per-layer lines, ``profiles``, ``profile``'s progress."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO


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


def profile_details(prof: Any) -> list[str]:
    """``autocompress profiles NAME``'s lines on one loaded :class:`HardwareProfile`."""
    dev, rt, fmt = prof.device, prof.runtime, prof.formats
    memory = ", ".join(f"{v:g} KB {k}" for k, v in (("SRAM", dev.sram_kb),
                                                   ("Flash", dev.flash_kb)) if v)
    lines = [f"{prof.name}: {prof.path}", f"  device   {dev.cpu}" + (f"; {memory}" if memory else ""),
             f"  runtime  {rt.name} {rt.version}, {rt.threads} thread(s)",
             f"  formats  weights {', '.join(fmt.weights)}; activations "
             f"{', '.join(fmt.activations)}{'; sparse kernels' if fmt.sparse_kernels else ''}"
             f"{'' if fmt.packed_weights else '; weights stored dense at 8 bits'}"
             f"; model.int8.onnx activations {fmt.int8_activations}",
             f"  costs    {len(prof.entries)} measured LUT entries, {len(prof.calibration)} "
             f"published figures, "
             f"{'analytic fallback' if prof.fallback and prof.analytic else 'LUT only'}"]
    if (note := prof.quick_note()) is not None:
        lines.append(f"  {note}")
    if prof.path and prof.name != Path(prof.path).stem:
        lines.append(f"  note: its name '{prof.name}' differs from its file name: a search "
                     f"finds profiles by file name and refuses this one (set name: "
                     f"{Path(prof.path).stem} or rename the file)")
    return lines


def progress_printer(stream: TextIO, every: int = 50
                     ) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """(progress(done, total), finish()) for ``autocompress profile``: every ``every`` op
    models and at the end, one line rewritten in place (``\\r``) on a terminal, one line per
    update otherwise (a log file or a pipe would show them run together on one line).

    >>> import io
    >>> buf = io.StringIO()
    >>> progress, finish = progress_printer(buf, every=2)
    >>> for i in range(1, 6):
    ...     progress(i, 5)
    >>> finish()
    >>> print(buf.getvalue(), end="")
      timed 2/5 op models
      timed 4/5 op models
      timed 5/5 op models
    """
    tty = bool(getattr(stream, "isatty", lambda: False)())
    shown = [False]

    def progress(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            text = f"  timed {done}/{total} op models"
            print("\r" + text if tty else text, end="" if tty else "\n", file=stream,
                  flush=True)
            shown[0] = True

    def finish() -> None:
        if tty and shown[0]:
            print(file=stream, flush=True)     # end the line rewritten in place

    return progress, finish
