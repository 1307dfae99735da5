"""One panel of the per-layer heatmap (``layers``): its cells and what each shows.

A cell shows the technique's value where the plan applies it; where it does not, the
technique's off value (``0``, ``fp``) if the trial searched that knob for the layer (the
search left the layer uncompressed), else nothing: blank = not searched for that layer (no
rule sets the knob there; a layer pruned with another shows the share removed from it, 0 where none was).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autocompress.pareto import Record

# the Optuna parameter prefix of a panel's knob (``<prefix>/<fqn>``, ``<prefix>/rule<i>`` when
# shared). Mirrors ``space/knobs.py``'s ``param_prefix`` (kept here: the report imports no
# torch); ``tests/report/test_infos.py`` checks they agree.
KNOB_PARAMS: dict[tuple[str, str], str] = {
    ("quant", "bits"): "quant", ("quant", "act_bits"): "quant.act_bits",
    ("prune", "ratio"): "prune", ("sparsity", "ratio"): "sparsity.ratio",
    ("lowrank", "rank_ratio"): "lowrank.rank_ratio", ("cluster", "k"): "cluster.k"}
BLANK_MEANS = "blank = not searched for that layer"


def cell_text(kind: str, value: float) -> str:
    """A cell's text: ``fp`` for float bits, whole numbers as such, ratios as ``.25``."""
    if kind == "quant" and value >= 32:
        return "fp"  # float weights / activations
    if value == int(value) and abs(value) >= 1:
        return str(int(value))
    return f"{value:.2f}".lstrip("0") if 0 < value < 1 else f"{value:.2g}"


@dataclass(frozen=True, kw_only=True)
class HeatmapPanel:
    """One technique over (front trial x layer). ``cells[i][j]`` is the value for row i,
    layer j; None where the technique is not applied (``present[i][j]`` says whether the
    layer exists in that trial's model at all; ``off_value`` is what "not applied" means).
    ``searched[i][j]``: whether the trial searched this knob for that layer (its own
    parameter, a shared one, or a value); () when unknown (records without ``params``)."""

    kind: str
    field: str
    label: str
    cells: tuple[tuple[float | None, ...], ...]
    off_value: float | None
    higher_compresses_more: bool
    searched: tuple[tuple[bool, ...], ...] = ()

    def shown(self, i: int, j: int) -> tuple[float | None, str]:
        """What cell (i, j) shows: the value it is coloured by (None: blank) and its text.
        A value, itself; none where the knob was searched, the technique's off value (the
        search left the layer uncompressed: ``0``, ``fp``; ``off`` for a kind without one);
        none where it was not searched, blank (no colour, no text).

        >>> p = HeatmapPanel(kind="prune", field="ratio", label="", cells=((0.5, None, None),),
        ...                  off_value=0.0, higher_compresses_more=True,
        ...                  searched=((True, True, False),))
        >>> [p.shown(0, j) for j in range(3)]
        [(0.5, '.50'), (0.0, '0'), (None, '')]
        """
        value = self.cells[i][j]
        if value is not None:
            return value, cell_text(self.kind, value)
        if self.searched and not self.searched[i][j]:
            return None, ""
        if self.off_value is None:
            return None, "off"
        return self.off_value, cell_text(self.kind, self.off_value)


def searched_cells(front: Sequence[Record], prefix: str | None,
                   vals: Mapping[tuple[int, str], float], order: Sequence[str]
                   ) -> tuple[tuple[bool, ...], ...]:
    """Per cell, whether the trial searched the knob (parameter ``prefix``) for the layer:
    a value, the layer's own parameter, or a shared one (``<prefix>/rule<i>``) where some
    front point applies the technique to the layer. () when some record has no ``params``
    (an older or hand-made record: unknown)."""
    if not all(isinstance(r.get("params"), Mapping) for r in front):
        return ()
    applied = {layer for _, layer in vals}
    out = []
    for i, rec in enumerate(front):
        params = rec["params"]
        shared = prefix is not None and any(str(k).startswith(f"{prefix}/rule") for k in params)
        out.append(tuple((i, layer) in vals or (prefix is not None and (
            f"{prefix}/{layer}" in params or (shared and layer in applied))) for layer in order))
    return tuple(out)
