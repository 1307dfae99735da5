"""``load_export(folder)``: the exported trial as a PyTorch model, from its folder alone.

Export writes what the rebuild needs into ``manifest.json`` (``rebuild``): the model source
(the built-in student family and its base architecture, or your ``model.builder`` import path
and the folder it imports from), the input shape and classes, the channel alignment pruning
rounded to (the largest ``align.channels`` of the run's profiles) and the layers never pruned.
The plan (``plan.json``) is applied to a fresh model, so it has the trial's shapes, and
``model.pt``'s packed weights are loaded into it: the same float weights export measured,
quantization grids included, as plain tensors (``bake``: no parametrizations left).

>>> model = load_export("runs/demo/export/17")                        # doctest: +SKIP
>>> model(torch.zeros(1, 1, 8, 8)).argmax(1)                          # doctest: +SKIP
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from autocompress.errors import ExportError, load_problem


def rebuild_info(source: Any, round_to: int, ignored: tuple[str, ...], seed: int
                 ) -> dict[str, Any]:
    """The manifest's ``rebuild`` entry (``source``: the run's ``ModelSource``)."""
    return {"input_shape": list(source.input_shape), "num_classes": source.num_classes,
            "family": None if source.builder else source.family,    # a builder: its own
            "base": dict(source.base), "builder": source.builder,
            "import_dir": None if source.base_dir is None else str(source.base_dir),
            "round_to": round_to, "ignored": list(ignored), "seed": seed}


def load_export(folder: str | Path) -> nn.Module:
    """The model of an export folder (``plan.json``, ``model.pt``, ``manifest.json``), in
    eval mode on the CPU. Raises ExportError naming the file when one is missing or is not
    an export's (an export made before ``rebuild`` existed: export the trial again)."""
    import torch

    from autocompress.compress import CompressionPlan, apply_plan, bake
    from autocompress.models.source import ModelSource

    folder = Path(folder)
    manifest = folder / "manifest.json"
    try:
        info = json.loads(manifest.read_text())["rebuild"]
        plan = CompressionPlan.from_dict(json.loads((folder / "plan.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"not an export folder with a rebuild entry ({load_problem(exc)})",
                          loc=str(manifest), hint="export the trial again with this version: "
                          "autocompress export RUN_DIR --trial N") from None
    source = ModelSource(input_shape=tuple(info["input_shape"]),
                         num_classes=int(info["num_classes"]), base=info["base"],
                         builder=info["builder"],
                         **({"family": info["family"]} if info.get("family") else {}),
                         base_dir=None if info["import_dir"] is None else Path(info["import_dir"]),
                         loc=f"{manifest} rebuild.builder")
    example = torch.zeros(1, *source.input_shape)
    model = bake(apply_plan(source.build(plan.arch, int(info["seed"])), plan, example,
                            round_to=int(info["round_to"]), ignored=tuple(info["ignored"])))
    weights = folder / "model.pt"
    try:
        load_weights(model, weights)
    except Exception as exc:
        raise ExportError(f"cannot load the exported weights ({load_problem(exc)})",
                          loc=str(weights)) from None
    return model.eval()


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a packed ``model.pt`` into ``model`` (built from the trial's plan and baked),
    dropping the activation ranges of layers that run float now (older runs had them)."""
    from autocompress.compress.actquant import unused_ranges
    from autocompress.compress.checkpoint import load_state

    state = load_state(path)
    for key in unused_ranges(state, model):
        del state[key]
    model.load_state_dict(state)
