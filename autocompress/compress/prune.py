"""Structured channel pruning through Torch-Pruning's dependency graph.

Coupled layers (residual adds, depthwise convs, BN) are pruned together; a group is
named by its *leader*: the first layer, in execution order, whose output channels the
group removes (``stem.conv``, ``stages.1.0.expand.conv``, ...). Search-space prune knobs
address leaders.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any

import torch
from torch import nn

from autocompress.compress.plan import PruneConfig, TechniqueConfig
from autocompress.compress.registry import ApplyContext, register_handler
from autocompress.errors import ModelError

_PRUNABLE = (nn.Conv2d, nn.Linear)


def _tp():  # torch_pruning takes ~1.4 s to import: load on first use
    import torch_pruning

    return torch_pruning


def prune_groups(model: nn.Module, example: torch.Tensor, ignored: tuple[str, ...] = (),
                 round_to: int = 1) -> dict[str, tuple[str, ...]]:
    """leader fqn -> fqns of the conv/linear layers coupled with it, in execution order.
    Left out, with their producers named by :func:`unprunable`:
    - a group with a depthwise conv that has a channel multiplier (``groups ==
      in_channels``, more outputs): Torch-Pruning 1.6 cannot score it (an IndexError on
      every pruning of such a model) and would change the multiplier;
    - a group whose channels pass through a concat, split, slice or reshape and that
      Torch-Pruning prunes wrongly, found by pruning a copy (:func:`_mispruned`): a concat
      feeding a squeeze-excite gate lost its channels from the other branch (a GhostNet
      block kept 1 of 16 at 50%), a depthwise conv beside the concat failed or was left
      whole, and a ``x.view(-1, 32 * 8 * 8)`` with the channel count written in the forward
      no longer runs once the channels before it are pruned."""
    blocked = set(unprunable(model, example, round_to))
    return {leader: members for leader, (members, _, _) in
            _groups(model, example, ignored).items() if leader not in blocked}


def unprunable(model: nn.Module, example: torch.Tensor, round_to: int = 1) -> dict[str, str]:
    """The producers of every group :func:`prune_groups` leaves out (ignored when pruning
    the others), each with why its group is left out."""
    return dict(_blocked(model, example, round_to))


MULTIPLIER = ("coupled with a depthwise conv that has a channel multiplier (groups == "
              "in_channels < out_channels), which Torch-Pruning cannot prune")
MISPRUNED = ("joined by a concat, split, slice or reshape that Torch-Pruning prunes wrongly "
             "here (on a copy it failed, removed other channels than asked, or left a model "
             "that no longer runs, e.g. a view with the channel count written in forward)")
_BLOCKED: dict[tuple[Any, ...], dict[str, str]] = {}


def _blocked(model: nn.Module, example: torch.Tensor, round_to: int) -> dict[str, str]:
    """producer -> why its group cannot be pruned; worked out once per model structure (its
    modules and its traced forward: a flag that only ``forward`` reads changes the groups)."""
    try:
        # the traced graph, not symbolic_trace's code: that compiles a module whose source
        # torch.fx keeps in a global cache for good (about 5 KB per call)
        graph = torch.fx.Tracer().trace(model)
        key = (type(model), str(model), str(graph), tuple(example.shape), round_to)
        fixed = _fixed_reshape(graph)
    except Exception:          # not traceable by fx (Torch-Pruning traces by hooks): no cache
        key, fixed = None, True
    if key is not None and key in _BLOCKED:
        return _BLOCKED[key]
    groups = _groups(model, example, (), reshapes=fixed)
    out = {p: MULTIPLIER for members, producers, _ in groups.values()
           if _with_multiplier(model, members) for p in producers}
    for leader, (members, producers, joins) in groups.items():
        if joins and not _with_multiplier(model, members) and \
                _mispruned(model, example, leader, round_to, tuple(out)):
            out.update(dict.fromkeys(producers, MISPRUNED))
    if key is not None:
        if len(_BLOCKED) >= 64:
            _BLOCKED.pop(next(iter(_BLOCKED)))
        _BLOCKED[key] = out
    return out


def _fixed_reshape(graph: torch.fx.Graph) -> bool:
    """A view or reshape with a size written as a number (``x.view(-1, 32 * 8 * 8)``): pruning
    the channels before it leaves that size wrong. A flatten, or sizes read from the tensor
    (``x.view(x.size(0), -1)``), follow the pruning, so such a model needs no probe."""
    for node in graph.nodes:
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        if node.op not in ("call_method", "call_function") or name not in ("view", "reshape"):
            continue
        sizes = list(node.args[1:]) + list(node.kwargs.values())
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = list(sizes[0])
        if any(isinstance(v, int) and v > 1 for v in sizes):
            return True
    return False


def _multiplier(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and 1 < m.groups == m.in_channels != m.out_channels


def _with_multiplier(model: nn.Module, members: tuple[str, ...]) -> bool:
    return any(_multiplier(model.get_submodule(m)) for m in members)


def _mispruned(model: nn.Module, example: torch.Tensor, leader: str, round_to: int,
               ignored: tuple[str, ...]) -> bool:
    """Pruning ``leader`` by 25% and 50% on a copy fails, keeps another channel count than
    asked, or leaves a model that no longer runs."""
    layer = model.get_submodule(leader)
    channels = _channels(layer)
    grouped = _channel_groups(model, [layer], example).get(layer, 1)   # as _prune aligns it
    for ratio in (0.25, 0.5):
        copy = deepcopy(model).eval()
        try:
            _prune(copy, {leader: ratio}, "l1", example, example, ignored, round_to)
            with torch.no_grad():
                copy(example)
        except Exception:      # Torch-Pruning's own error, or a conv left inconsistent
            return True
        if _channels(copy.get_submodule(leader)) != aligned_kept(channels, ratio, round_to,
                                                                 grouped):
            return True
    return False


def _groups(model: nn.Module, example: torch.Tensor, ignored: tuple[str, ...],
            reshapes: bool = True) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]]:
    """leader -> (members, producers, passes a concat/split/slice/reshape) of each group,
    in execution order."""
    tp = _tp()
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    ignored_mods = [m for n, m in model.named_modules() if n in ignored]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        groups = list(graph.get_all_groups(ignored_layers=ignored_mods,
                                           root_module_types=list(_PRUNABLE)))
    def ordered(fqns: set[str]) -> tuple[str, ...]:
        return tuple(sorted(fqns, key=order.__getitem__))

    # a reshape too where the model writes a size out (``reshapes``, see _fixed_reshape)
    joins = (tp.ops._ConcatOp, tp.ops._SplitOp, tp.ops._SliceOp, tp.ops._UnbindOp,
             *((tp.ops._ReshapeOp,) if reshapes else ()))
    out: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {}
    for group in groups:
        members: set[str] = set()
        producers: set[str] = set()
        joined = False
        for item in group:
            module = item.dep.target.module
            joined = joined or isinstance(module, joins)
            if not isinstance(module, _PRUNABLE) or module not in names:
                continue
            members.add(names[module])
            if item.dep.handler.__name__ == "prune_out_channels":
                producers.add(names[module])
        if producers:
            out[min(producers, key=order.__getitem__)] = (ordered(members), ordered(producers),
                                                          joined)
    return dict(sorted(out.items(), key=lambda kv: order[kv[0]]))


def _taylor_gradients(model: nn.Module, data: torch.Tensor) -> None:
    """Fill ``.grad`` for Taylor importance: cross-entropy against the model's own
    predictions on ``data`` (no labels needed; a pseudo-label loss, as in data-free Taylor)."""
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        logits = model(data)
        loss = nn.functional.cross_entropy(logits, logits.detach().argmax(1))
        loss.backward()


# criterion -> (importance factory, needs gradients)
CRITERIA: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "l1": (lambda tp: tp.importance.GroupMagnitudeImportance(p=1), False),
    "l2": (lambda tp: tp.importance.GroupMagnitudeImportance(p=2), False),
    "taylor": (lambda tp: tp.importance.GroupTaylorImportance(), True),
}


@register_handler(PruneConfig)
class PruneHandler:
    """Structured pruning of coupled groups, one Torch-Pruning pass per criterion used:
    L1/L2 weight magnitude, or first-order Taylor (|w * dL/dw|, data-aware)."""

    def apply(self, model: nn.Module, configs: Mapping[str, TechniqueConfig],
              ctx: ApplyContext) -> None:
        by_criterion: dict[str, dict[str, float]] = {}
        for fqn, cfg in configs.items():
            if isinstance(cfg, PruneConfig) and cfg.ratio > 0:
                by_criterion.setdefault(cfg.criterion, {})[fqn] = cfg.ratio
        if not by_criterion:
            return
        # on the unpruned model, once: a second criterion's pass sees a new structure
        blocked = _blocked(model, ctx.example, ctx.round_to)
        for criterion in sorted(by_criterion):
            self._step(model, by_criterion[criterion], criterion, ctx, blocked)

    @staticmethod
    def _step(model: nn.Module, ratios: Mapping[str, float], criterion: str,
              ctx: ApplyContext, blocked: Mapping[str, str]) -> None:
        if refused := sorted(set(ratios) & set(blocked)):
            raise ModelError(f"cannot prune '{refused[0]}': its output channels are "
                             f"{blocked[refused[0]]}", loc=f"plan.layers.{refused[0]}",
                             hint="leave it out of the plan's pruning; the search does not "
                                  "offer it")
        _prune(model, ratios, criterion, ctx.example, ctx.data, (*ctx.ignored, *blocked),
               ctx.round_to)
        model.zero_grad(set_to_none=True)


def _prune(model: nn.Module, ratios: Mapping[str, float], criterion: str,
           example: torch.Tensor, data: torch.Tensor, ignored: tuple[str, ...],
           round_to: int) -> None:
    """One Torch-Pruning pass: each leader to its aligned ratio (:func:`aligned_ratio`)."""
    tp = _tp()
    make_importance, needs_grad = CRITERIA[criterion]
    modules = dict(model.named_modules())
    groups = _channel_groups(model, [modules[f] for f in ratios], example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(
            model, example, importance=make_importance(tp), pruning_ratio=0.0,
            pruning_ratio_dict={modules[f]: aligned_ratio(_channels(modules[f]), r, round_to,
                                                          groups.get(modules[f], 1))
                                for f, r in ratios.items()},
            ignored_layers=[modules[n] for n in ignored if n in modules])
        if needs_grad:
            _taylor_gradients(model, data)
        pruner.step()


def _channels(layer: nn.Module) -> int:
    return int(layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features)


def aligned_ratio(channels: int, ratio: float, round_to: int, channel_groups: int = 1) -> float:
    """The ratio to give Torch-Pruning so that it keeps the multiple of ``round_to`` nearest
    to ``channels * (1 - ratio)`` (ties keep more; at least ``round_to``, at most all).
    Torch-Pruning's own ``round_to`` rounds the kept channels down, and per channel group
    for a grouped conv after rounding the whole layer: a 12-channel layer kept 8 at 25% and
    4 at 50%, and a conv feeding a groups=4 conv lost half its channels at 25%.

    ``channel_groups``: the group count of a (not depthwise) grouped conv coupled with the
    layer. Torch-Pruning removes the same number of channels from every group, so the kept
    count is a multiple of both the groups and ``round_to`` (of the groups alone where that
    common multiple leaves nothing to prune).

    >>> [round(12 * (1 - aligned_ratio(12, r, 4))) for r in (0.25, 0.5, 0.9)]
    [8, 8, 4]
    >>> round(48 * (1 - aligned_ratio(48, 0.5, 8, channel_groups=3)))   # lcm(8, 3) = 24
    24
    """
    kept = aligned_kept(channels, ratio, round_to, channel_groups)
    return 1 - (kept + 0.5) / channels if kept < channels else 0.0


def aligned_kept(channels: int, ratio: float, round_to: int, channel_groups: int = 1) -> int:
    """The channel count :func:`aligned_ratio` keeps."""
    step = max(1, round_to)
    if channel_groups > 1:
        both = math.lcm(step, channel_groups)
        step = both if both < channels else channel_groups
    kept = step * int(channels * (1 - ratio) / step + 0.5)
    return min(channels, max(step, kept)) if ratio > 0 else channels


def _channel_groups(model: nn.Module, layers: list[nn.Module],
                    example: torch.Tensor) -> dict[nn.Module, int]:
    """layer -> the least common multiple of the group counts of the grouped (not depthwise)
    convs coupled with its output channels; {} (no tracing) for a model without one."""
    def grouped(m: nn.Module) -> bool:
        return isinstance(m, nn.Conv2d) and 1 < m.groups != m.out_channels

    if not any(grouped(m) for m in model.modules()):
        return {}
    tp = _tp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    out: dict[nn.Module, int] = {}
    for layer in layers:
        fn = graph.get_pruner_of_module(layer).prune_out_channels
        group = graph.get_pruning_group(layer, fn, idxs=list(range(_channels(layer))))
        sizes = [m.groups for m in (item.dep.target.module for item in group) if grouped(m)]
        out[layer] = math.lcm(1, *sizes)
    return out
