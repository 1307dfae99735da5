"""Model inspection: one traced forward gives the layers in execution order, their shapes,
MACs and parameter counts, and the lifetimes of the activation tensors (for peak-SRAM).

``inspect_model`` (traced in ``autocompress._trace``; torch loads only when it runs, so
the cost model stays torch-free) is the only place that looks inside a model; the cost model, the search
space and the report all work on the :class:`ModelGraph` it returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn



@dataclass(frozen=True, kw_only=True)
class LayerInfo:
    """One executed op. Shapes exclude the batch dimension: (C, H, W) or (F,)."""

    fqn: str                     # module name ("stages.0.1.expand.conv") or fx node name ("add_1")
    op: str                      # conv2d | linear | add | avgpool | maxpool | mul | other
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    square: bool = True          # kernel and stride alike along H and W (else: kernel = H's)
    groups: int = 1
    params: int = 0              # weight elements (bias excluded)
    bias: int = 0                # bias elements
    macs: int = 0                # multiply-accumulates for batch 1
    inputs: tuple[str, ...] = ()  # names of the tensors read (see ModelGraph.tensors)
    output: str = ""             # name of the tensor written

    @property
    def compressible(self) -> bool:
        """Conv and linear layers carry weights that the compression knobs act on."""
        return self.op in ("conv2d", "linear")


@dataclass(frozen=True, kw_only=True)
class TensorInfo:
    """An activation tensor: its element count and the layer steps where it is live."""

    name: str
    numel: int
    produced_at: int             # index into ModelGraph.layers (-1 for the model input)
    last_used_at: int            # index of the last layer that reads it (len(layers) for outputs)


@dataclass(frozen=True, kw_only=True)
class ModelGraph:
    input_shape: tuple[int, ...]
    layers: tuple[LayerInfo, ...]
    tensors: tuple[TensorInfo, ...] = field(default=())
    # layers whose weights the cost model does not know (a Conv1d, a GRU, a parameter used
    # in forward): (name, kind, parameters); no compute, no Flash are counted for them
    uncosted: tuple[tuple[str, str, int], ...] = field(default=())

    def uncosted_note(self) -> str | None:
        """One line naming the layers in :attr:`uncosted` (None when there are none)."""
        if not self.uncosted:
            return None
        n = sum(c for _, _, c in self.uncosted)
        names = ", ".join(f"{f} ({k}, {c:,})" for f, k, c in self.uncosted[:4])
        more = f" and {len(self.uncosted) - 4} more" if len(self.uncosted) > 4 else ""
        return (f"{n:,} parameters in layers the cost model does not know count as no "
                f"compute and no Flash (an op's overhead at most): {names}{more} (it costs "
                "Conv2d, Linear, pools, adds and muls; a 1-D conv is a Conv2d with (1, k) "
                "kernels)")

    def layer(self, fqn: str) -> LayerInfo:
        for info in self.layers:
            if info.fqn == fqn:
                return info
        raise KeyError(fqn)

    @property
    def compressible(self) -> tuple[LayerInfo, ...]:
        return tuple(info for info in self.layers if info.compressible)

    @property
    def params(self) -> int:
        return sum(info.params + info.bias for info in self.layers)

    @property
    def macs(self) -> int:
        return sum(info.macs for info in self.layers)


def inspect_model(model: nn.Module, example: torch.Tensor) -> ModelGraph:
    """Trace ``model`` once on ``example`` (batch first) and describe it.

    Conv/BN/activation chains count as one fused layer (BN and activations add no
    layer and no tensor; a BN after a bias-free conv gives it the bias a deployed,
    folded conv stores), reshapes alias their input.

    >>> import torch
    >>> from torch import nn
    >>> g = inspect_model(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1)), torch.zeros(1, 1, 8, 8))
    >>> g.layers[0].macs
    2304
    """
    from autocompress._trace import trace_model

    return trace_model(model, example)
