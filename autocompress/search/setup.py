"""Everything a search needs, built once from a validated config: data, model source,
resolved space, hardware profiles and cost models, budgets and objectives."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from autocompress.budgets import config_device_limits, effective_budgets
from autocompress.compress.prune import prune_groups, unprunable
from autocompress.config import SearchConfig, objectives_of
from autocompress.config_checks import field_loc
from autocompress.data import DataBundle, label_gaps, load_digits_bundle, load_user_bundle
from autocompress.errors import AutocompressError, ConfigError, ModelError, SpaceError
from autocompress.graph import ModelGraph, inspect_model
from autocompress.hardware import CostModel, HardwareProfile, load_profile
from autocompress.models.families import DEFAULT_FAMILY
from autocompress.models.source import ModelSource
from autocompress.search.reduce import Reduction, dominated, reduced
from autocompress.space import ResolvedSpace, SearchSpace, resolve
from autocompress.space.alternatives import dead_branch_error
from autocompress.space.distributions import Range
from autocompress.train.teacher import logits_hint, outputs_probabilities


@dataclass(frozen=True)
class SearchContext:
    cfg: SearchConfig
    data: DataBundle
    source: ModelSource
    rspace: ResolvedSpace
    profiles: Mapping[str, HardwareProfile]
    cost_models: Mapping[str, CostModel]
    objectives: tuple[str, ...]
    ignored: tuple[str, ...]          # layers never pruned (the logits layer)
    round_to: int                     # channel alignment for pruning
    reduction: Reduction | None = None   # format values dropped before the search
    # what a new search refuses and an old run dir may hold, so that it still resumes and
    # exports: weights the cost model does not know, labels that skip a class index, ...
    new_run_error: AutocompressError | None = None

    @property
    def budgets(self) -> Mapping[str, Mapping[str, float]]:
        """``hardware.budgets`` plus each profile's own memory (``autocompress.budgets``)."""
        return effective_budgets(self.cfg.hardware.budgets, self.device_limits)

    @property
    def device_limits(self) -> Mapping[str, Mapping[str, float]]:
        return config_device_limits(self.cfg, self.profiles)

    def example(self) -> torch.Tensor:
        return self.data.example()

    def calibration(self) -> torch.Tensor:
        """Inputs for data-aware compression steps (activation ranges, importance): 256
        training samples drawn with the run's seed (the first 256 of a class-sorted split
        would be one or two classes)."""
        n = len(self.data.train)
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed))[:256]
        return self.data.train.x[pick.sort().values]


def load_data(cfg: SearchConfig) -> DataBundle:
    if cfg.data.source == "digits":
        return load_digits_bundle(cfg.data_seed(), cfg.data.val_fraction, cfg.data.test_fraction)
    if ":" not in cfg.data.source:
        raise ConfigError(f"unknown dataset '{cfg.data.source}'", loc=field_loc(cfg, "data.source"),
                          hint="use 'digits' or 'module:callable'")
    return load_user_bundle(cfg.data.source, cfg.data_seed(), loc=field_loc(cfg, "data.source"),
                            base_dir=cfg.import_dir())


def _inspect(model: torch.nn.Module, example: torch.Tensor, num_classes: int, where: str,
             gaps: AutocompressError | None = None
             ) -> tuple[ModelGraph, AutocompressError | None]:
    """The model's graph, its errors blamed on ``where`` (the builder, or the data the
    built-in student cannot take); the model must output one logit per class of the data.
    Second: the refusal of a model that outputs probabilities (a new search refuses it)."""
    try:
        graph = inspect_model(model, example)
        with torch.no_grad():
            out = model.eval()(example)
    except ModelError as exc:
        raise ModelError(exc.raw_message, loc=where, hint=exc.hint) from exc
    finally:
        model.train()
    if not (isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] == num_classes):
        if gaps is not None:      # labels 1..10 made num_classes 11: the cause, said first
            raise gaps
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"the model outputs {shape}, expected logits of shape (N, "
                         f"{num_classes}) for the {num_classes} classes in the data", loc=where,
                         hint=logits_hint(out, num_classes, "give the last layer num_classes "
                                          "outputs (the builder's second argument)"))
    if outputs_probabilities(out):
        # cross-entropy and distillation take logits: trained on probabilities, a DS-CNN
        # reached 39% where it reached 83% without the softmax
        return graph, ModelError("the model outputs probabilities (each row sums to 1: a "
                                 "softmax at the end), not logits", loc=where,
                                 hint="remove the final softmax; add it after export if your "
                                 "application needs it")
    return graph, None


def build_context(cfg: SearchConfig, data: DataBundle | None = None, *,
                  reduction: Reduction | None = None) -> SearchContext:
    """The context of a search. With ``search.reduce_space`` on, the space is reduced by
    ``reduction`` when given (what the run stored: workers, resume, export) or by one
    computed here (``reduce.dominated``)."""
    data = data or load_data(cfg)
    space = SearchSpace.load(cfg.space_path())
    for key, present in (("arch", space.arch), ("base", space.base), ("family", space.family)):
        if cfg.model.builder and present:      # base and family were silently ignored
            raise space.doc.error((key,), f"'{key}' shapes the built-in student family, but "
                                  "the config names its own model (model.builder)",
                                  cls=SpaceError,
                                  hint=f"remove '{key}' from the space or drop model.builder")
    source = ModelSource(input_shape=data.input_shape, num_classes=data.num_classes,
                         base=space.base, builder=cfg.model.builder, base_dir=cfg.import_dir(),
                         family=space.family or DEFAULT_FAMILY,
                         loc=field_loc(cfg, "model.builder"))
    profiles = {name: load_profile(name, search_dirs=cfg.profile_dirs())
                for name in cfg.hardware.profiles}
    # Resolve rules on the largest architecture, so every layer a candidate can have is named.
    largest = space.max_arch()
    arch: dict[str, Any] = {}
    if source.is_family:
        n = source.num_stages
        arch = {"depths": [largest.get("depth", 1)] * n, "expands": [largest.get("expand", 4)] * n}
    example = data.example()
    model = source.build(arch, seed=cfg.seed)
    data_loc = field_loc(cfg, "data.source")     # reads the config file: once
    where = source.loc if cfg.model.builder else data_loc
    gaps = label_gaps(data, data_loc)
    graph, probabilities = _inspect(model, example, data.num_classes, where, gaps)
    compressible = [layer.fqn for layer in graph.compressible   # "m#1": a 2nd call of m,
                    if "#" not in layer.fqn]                     # compressed with m
    if not compressible:
        raise SpaceError("the model has no conv or linear layer to compress", loc="model")
    ignored = (compressible[-1],)
    round_to = max(p.align.channels for p in profiles.values())
    note = graph.uncosted_note()         # the budgets and fronts would be wrong
    uncosted = note and ModelError(f"cannot cost the model: {note}", loc=where,
                                   hint="build the model from the layers it costs")
    try:
        leaders = [f for f in prune_groups(model, example, ignored, round_to) if f not in ignored]
    except Exception:         # Torch-Pruning fails on some layers the cost model refuses (GRU)
        if uncosted:
            raise uncosted from None
        raise
    rspace = resolve(space, quant_layers=compressible, prune_leaders=leaders,
                     num_stages=source.num_stages,
                     layer_names=source.layer_names if source.is_family else None,
                     factorizable=[x.fqn for x in graph.compressible if x.groups == 1],
                     unprunable=lambda: unprunable(model, example, round_to))
    refused = (uncosted or gaps or probabilities or _one_cluster(space)
               or dead_branch_error(space, list(dict.fromkeys(compressible + leaders))))
    ctx = SearchContext(cfg=cfg, data=data, source=source, rspace=rspace, profiles=profiles,
                        cost_models={n: CostModel(p) for n, p in profiles.items()},
                        objectives=objectives_of(cfg), ignored=ignored, round_to=round_to,
                        new_run_error=refused or None)
    if not cfg.search.reduce_space:
        return ctx
    red = dominated(ctx) if reduction is None else reduction
    return replace(ctx, rspace=reduced(rspace, red), reduction=red)


def _one_cluster(space: SearchSpace) -> AutocompressError | None:
    """``cluster.k: 1`` in a list or as a fixed value, which a new search refuses: one value
    for every weight means off (as 0 does), silently. A range may span 1 (sampled, it is off)."""
    for rule in space.rules:
        dist = rule.knobs.get("cluster.k")
        if dist is not None and not isinstance(dist, Range) and 1 in dist.values():
            return space.doc.error(("rules", rule.index, "cluster.k"), "value 1 is not "
                                   "supported: one shared value is no clustering",
                                   cls=SpaceError, hint="expected shared values in 2..256 "
                                   "(0 = off)")
    return None
