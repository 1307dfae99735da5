"""A matplotlib figure without pyplot, and saving it atomically: what every report picture
(and sensitivity's) is drawn on."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float = 8.0, height: float = 5.5) -> Any:
    """A pyplot-free Agg figure (no global state, safe in threads and notebooks)."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("the report needs matplotlib: pip install matplotlib") from exc
    if "matplotlib.pyplot" not in sys.modules:  # never switch a live notebook's backend
        matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path | str, dpi: int) -> Path:
    """Save beside, then rename: a reader never sees half a picture, and a symlink planted
    at ``path`` is replaced, not written through."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, dpi=dpi, format=out.suffix.lstrip(".") or "png")
    tmp.replace(out)
    return out
