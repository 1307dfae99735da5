"""Search configuration: YAML -> validated, frozen :class:`SearchConfig`.

Every error names ``file:line field``, says what was expected and how to fix it.
``--set key=value`` overrides (value parsed as YAML) apply before validation.

>>> cfg = load_config("experiments/digits_mcu/config.yaml", {"search.trials": 5})  # +SKIP
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autocompress.config_checks import SCHEMA, TOP, check_budgets
from autocompress.errors import ConfigError, ProfileError, did_you_mean
from autocompress.pareto import Objective
from autocompress.yamlio import (
    Located,
    PathKey,
    apply_overrides,
    format_path,
    load_yaml,
    override_flag,
)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    source: str = "digits"           # "digits" or "module:callable"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int | None = None    # seed of the split (make_data's argument); None: `seed`


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    space: str = ""                  # search space YAML (relative to the config file)
    builder: str | None = None       # "module:callable" for your own model (no arch knobs)


@dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    widths: tuple[int, ...] = (32, 64, 128)
    epochs: int = 15
    lr: float = 5e-3
    # "module:callable" -> your own trained teacher, load_teacher(input_shape, num_classes)
    # -> nn.Module; then widths, epochs and lr are not used (nothing is trained)
    model: str | None = None


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 4                  # before compression (dense student, KD)
    finetune_epochs: int = 3         # after pruning, with QAT (KD)
    lr: float = 5e-3
    batch_size: int = 64
    # trainings per candidate under different seeds: accuracy = their mean (a less noisy
    # score at repeats x the cost); the best one's weights are kept
    repeats: int = 1
    # where candidates and the teacher train: auto (a CUDA GPU when torch sees one), cpu,
    # cuda, cuda:N. Everything else runs on the CPU (``train/device.py``)
    device: str = "auto"
    # per-batch image augmentation of the students and the built-in teacher: null (off), or
    # {hflip: true, crop: 4} (random flip; random crop after 4 pixels of zero padding)
    augment: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class HardwareConfig:
    profiles: tuple[str, ...] = ("stm32f746",)
    budgets: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    trials: int = 24
    sampler: str = "tpe"
    objectives: tuple[str, ...] = ()   # default: accuracy, <first profile>.latency_ms
    threads: int = 2
    timeout_s: float | None = None
    # multi-fidelity early stopping, off by default: {rungs: [1, 2, 3]} (rungs = dense-phase
    # epochs after which a candidate dominated by >= min_dominating (default 1) candidates
    # that passed the same rung, by margin_se (default 1) standard errors of accuracy, is
    # stopped and recorded 'pruned'; only candidates chance_se (default 3) standard errors
    # above chance accuracy count as dominating; see search/early_stop.py)
    early_stopping: Mapping[str, Any] | None = None
    # drop format values (bits, sparsity) that no profile rewards (see search/reduce.py)
    reduce_space: bool = True
    # start-up trials of tpe/gp/nsga2: the sampler's own 'random' ones, or 'spread' over the
    # cost range (search/initial.py)
    initial_design: str = "random"
    # train the baselines (fp32, uniform int8/int4, 25%/50% sparsity) in the run
    # (--no-baselines sets it false; a run dir's resolved config keeps it for a resume)
    baselines: bool = True


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    name: str = "search"
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    teacher: TeacherConfig = TeacherConfig()
    train: TrainConfig = TrainConfig()
    hardware: HardwareConfig = HardwareConfig()
    search: SearchSettings = SearchSettings()
    path: str = ""                   # the config file (for error messages)
    base_dir: str = "."              # folder relative paths are read from
    code_dir: str = ""               # folder of module:callable imports (default base_dir;
                                     # a run dir's config: the original config's folder)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("path", "base_dir", "code_dir"):
            out.pop(key)
        return _plain(out)

    def data_seed(self) -> int:
        """The seed the data is split with: ``data.split_seed``, else the run's ``seed``."""
        return self.seed if self.data.split_seed is None else self.data.split_seed

    def import_dir(self) -> Path:
        """Where ``data:`` and ``model.builder:`` modules are imported from."""
        return Path(self.code_dir or self.base_dir)

    def space_path(self) -> Path:
        return (Path(self.base_dir) / self.model.space).resolve()

    def profile_dirs(self) -> list[Path]:
        """Where a profile name is looked up before the repo's ``hardware_profiles/``: the
        config's ``profiles/``, then beside the config. A run dir keeps the run's profiles in
        ``profiles/``, so resume and export use the exact profiles the run was costed with
        (a file of the same name in the run dir itself shadowed them)."""
        return [Path(self.base_dir) / "profiles", Path(self.base_dir)]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


SECTION_TYPES = {"data": DataConfig, "model": ModelConfig, "teacher": TeacherConfig,
                 "train": TrainConfig, "hardware": HardwareConfig, "search": SearchSettings}


def parse_config(doc: Located, overrides: Sequence[str] | Mapping[str, Any] = (), *,
                 base_dir: str | None = None) -> SearchConfig:
    """Validate a parsed YAML document into a SearchConfig (paths relative to ``base_dir``,
    by default the document's folder)."""
    if not doc.data:
        raise doc.error((), "the config is empty", hint="a config needs at least model.space "
                        "and hardware.profiles; see experiments/digits_mcu/config.yaml")
    raw = doc.data
    if not isinstance(raw, dict):
        raise doc.error((), f"a config must be a mapping of sections, got {type(raw).__name__}")
    if isinstance(raw.get("data"), str):        # shorthand data: digits, before any --set
        raw = {**raw, "data": {"source": raw["data"]}}
    data, touched = apply_overrides(raw, overrides)
    flag = override_flag(overrides)

    def fail(path: PathKey, msg: str, hint: str | None = None) -> ConfigError:
        made_by_set = path not in doc.lines and any(t[:len(path)] == path for t in touched)
        in_set = any(path[:len(t)] == t for t in touched)     # the key or a list/map above it
        loc = f"{flag} {format_path(path)}" if in_set or made_by_set else doc.loc(path)
        return ConfigError(msg, loc=loc, hint=hint)

    known_top = [*TOP, *SCHEMA]
    for key in data:
        if key not in known_top:
            raise fail((key,), f"unknown key '{key}'", (
                "this is a search space file, not a config: name it in a config as model.space "
                "(see experiments/digits_mcu/config.yaml)" if {"rules", "arch"} & set(data)
                else did_you_mean(key, known_top) or f"known keys: {', '.join(known_top)}"))
    values: dict[str, Any] = {}
    for key, check in TOP.items():
        if key in data:
            if (err := check(data[key])) is not None:
                raise fail((key,), err)
            values[key] = data[key]
    sections = dict(data)
    if isinstance(sections.get("data"), str):          # data: digits given by --set data=...
        sections["data"] = {"source": sections["data"]}
    for name, fields_ in SCHEMA.items():
        section = sections.get(name, {}) or {}
        if not isinstance(section, dict):
            raise fail((name,), f"'{name}' must be a mapping, got {section!r}",
                       f"known keys: {', '.join(fields_)}")
        for key in section:
            if key not in fields_:
                raise fail((name, key), f"unknown key '{key}'",
                           did_you_mean(key, fields_) or f"known keys: {', '.join(fields_)}")
        kwargs = {}
        for key, check in fields_.items():
            if key in section:
                if (err := check(section[key])) is not None:
                    raise fail((name, key), err)
                value = section[key]
                if value is None and key == "budgets":    # every budget commented out
                    value = {}
                kwargs[key] = tuple(value) if isinstance(value, list) else value
        values[name] = SECTION_TYPES[name](**kwargs)
    cfg = SearchConfig(**values, path=doc.file,          # absolute: a Ray actor's working
                       base_dir=base_dir or str(Path(doc.file).parent.resolve()))  # is Tune's
    _check_semantics(cfg, data, fail)
    return cfg


def _check_semantics(cfg: SearchConfig, data: dict, fail: Callable[..., ConfigError]) -> None:
    if not cfg.model.space:
        raise fail(("model", "space"), "missing search space file",
                   "set model.space: path/to/space.yaml (relative to the config)")
    if not cfg.space_path().is_file():
        folder = cfg.space_path().is_dir()
        what = "is a folder, not a file" if folder else "file not found"
        raise fail(("model", "space"), f"search space {what}: {cfg.space_path()}",
                   "name the space's YAML file, e.g. search_spaces/mobilenet_digits.yaml"
                   if folder else "check the path; it is relative to the config file")
    if not cfg.hardware.profiles:
        raise fail(("hardware", "profiles"), "name at least one hardware profile",
                   "e.g. profiles: [stm32f746]; `autocompress profiles` lists them")
    from autocompress.hardware.profile import is_profile_path, profile_path  # config: light

    for i, name in enumerate(cfg.hardware.profiles):
        if is_profile_path(name):
            raise fail(("hardware", "profiles", i), f"expected a profile name, got the path "
                       f"{name!r}", f"put the file beside the config (or in its profiles/ "
                       f"folder) and give its name: profiles: [{Path(name).stem}]")
        try:
            profile_path(name, cfg.profile_dirs())
        except ProfileError as exc:
            raise fail(("hardware", "profiles", i), exc.raw_message, exc.hint) from None
    check_budgets(data.get("hardware", {}).get("budgets", {}) or {}, cfg.hardware.profiles,
                  fail)
    stop = cfg.search.early_stopping
    if stop and max(stop["rungs"]) >= cfg.train.epochs:
        raise fail(("search", "early_stopping", "rungs"), f"rungs {list(stop['rungs'])} must be "
                   f"below train.epochs ({cfg.train.epochs}): a rung is a checkpoint inside "
                   "the dense training phase", "e.g. rungs: [1, 3] with train.epochs: 10")
    for i, obj in enumerate(cfg.search.objectives):
        prof, _, metric = obj.partition(".")
        if obj == "accuracy":
            continue
        known = metric in ("latency_ms", "flash_kb", "peak_sram_kb")
        if known and prof not in cfg.hardware.profiles:    # only the run's are costed
            raise fail(("search", "objectives", i), f"objective '{obj}': profile '{prof}' is "
                       f"not in hardware.profiles", f"add it there, or use one of "
                       f"{', '.join(cfg.hardware.profiles)}")
        if not known:
            raise fail(("search", "objectives", i), f"unknown objective '{obj}'",
                       "use 'accuracy' or '<profile>.latency_ms|flash_kb|peak_sram_kb'")


def load_config(path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()
                ) -> SearchConfig:
    return parse_config(load_yaml(path, what="config"), overrides)


def objectives_of(cfg: SearchConfig) -> tuple[str, ...]:
    """The objectives with their default: accuracy (max), then the first profile's latency."""
    return cfg.search.objectives or ("accuracy", f"{cfg.hardware.profiles[0]}.latency_ms")


def pareto_objectives(names: Sequence[str]) -> list[Objective]:
    """Objective names from a config (``accuracy``, ``<profile>.<metric>``) as Pareto axes."""
    out = []
    for name in names:
        if name == "accuracy":
            out.append(Objective.accuracy())
        else:
            prof, metric = name.split(".", 1)
            out.append(Objective(name=name, sense="min", path=f"cost.{prof}.{metric}"))
    return out


def lead_profile(cfg: SearchConfig) -> str:
    """The profile of the first cost objective (the one progress lines show), else the first."""
    return next((o.split(".")[0] for o in objectives_of(cfg) if o != "accuracy"),
                cfg.hardware.profiles[0])

