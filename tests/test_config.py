"""Bad config input: every case is a ConfigError naming file:line (or --set) and the field."""
from __future__ import annotations

import pytest

from autocompress.config import load_config, objectives_of
from autocompress.errors import ConfigError

from .conftest import DEMO_CONFIG, TINY, write_config


def test_demo_config_loads_with_defaults():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.hardware.profiles == ("stm32f746",)
    assert cfg.space_path().is_file()
    assert objectives_of(cfg) == ("accuracy", "stm32f746.latency_ms")
    assert cfg.to_dict()["search"]["trials"] == 20


def test_set_overrides_are_parsed_as_yaml():
    cfg = load_config(DEMO_CONFIG, ["search.trials=7", "search.sampler=nsga2",
                                    "hardware.budgets.stm32f746.max_latency_ms=2.5"])
    assert cfg.search.trials == 7 and cfg.search.sampler == "nsga2"
    assert cfg.hardware.budgets["stm32f746"]["max_latency_ms"] == 2.5


def test_numbers_are_read_as_yaml_1_2_reads_them():
    """`lr: 5e-3` was refused as the string '5e-3' (YAML 1.1), `seed=010` gave seed 8 and
    `seed=1:00` seed 60."""
    cfg = load_config(DEMO_CONFIG, ["train.lr=5e-3", "seed=010"])
    assert cfg.train.lr == 0.005 and cfg.seed == 10
    with pytest.raises(ConfigError, match="seed"):
        load_config(DEMO_CONFIG, ["seed=1:00"])
    assert load_config(DEMO_CONFIG, ["search.trials=1_000"]).search.trials == 1000  # as 1.1


def test_what_the_package_writes_it_reads_back():
    """write_yaml (YAML 1.1's dumper) left '1e5' unquoted; the 1.2 loader read a number."""
    from autocompress.yamlio import dump_yaml, parse_yaml

    data = {"name": "1e5", "a": "5e-3", "b": 0.005, "c": "010", "d": "1_000", "e": 7}
    assert parse_yaml(dump_yaml(data)).data == data


def test_a_path_as_name_is_refused_for_a_new_run_only(tmp_path):
    """It named the run's folder (runs/../../x-<time>); an old run dir with such a name
    still loads (report, export)."""
    from autocompress.config_checks import check_new_run

    cfg = load_config(write_config(tmp_path, TINY), ["name=../../x"])
    with pytest.raises(ConfigError, match="expected a name without '/'"):
        check_new_run(cfg)


def test_a_new_runs_refusals_name_the_line_the_file_holds(tmp_path):
    """``name:`` and ``data.val_fraction`` errors named the field without its line; a value
    given by an override names the field alone (the file's line holds another value)."""
    from pathlib import Path

    from autocompress.config_checks import check_new_run, field_loc

    path = write_config(tmp_path, TINY.replace("name: tiny", "name: a/b"))
    with pytest.raises(ConfigError) as err:
        check_new_run(load_config(path))
    assert err.value.loc == f"{path}:1 name"
    cfg = load_config(path, {"name": "c/d", "model.space": Path(load_config(path).model.space)})
    # an override of a value the file holds: the value used and the line it overrides (the
    # file's line alone sent the user to a value that was not the one refused)
    assert field_loc(cfg, "name") == f"name = 'c/d' (overriding {path}:1, which has 'a/b')"
    assert field_loc(cfg, "search.sampler") == f"{path}:10 search.sampler"
    assert field_loc(cfg, "train.device") == f"{path} train.device"          # a default


def test_python_override_values_are_copied_and_made_plain():
    """The caller's dict became the config's: changing it later changed a validated config;
    a Path or a tuple below the top level was refused."""
    from pathlib import Path

    budgets = {"stm32f746": {"max_latency_ms": 9.0}}
    cfg = load_config(DEMO_CONFIG, {"hardware": {"profiles": ("stm32f746",),
                                                 "budgets": budgets},
                                    "model": {"space": Path("../../search_spaces/"
                                                            "mobilenet_digits.yaml")}})
    budgets["stm32f746"]["max_latency_ms"] = 0.001
    assert cfg.hardware.budgets["stm32f746"]["max_latency_ms"] == 9.0
    assert cfg.hardware.profiles == ("stm32f746",) and cfg.model.space.endswith(".yaml")


def test_python_overrides_are_named_as_such():
    with pytest.raises(ConfigError) as err:
        load_config(DEMO_CONFIG, {"search.trials": "x"})
    assert err.value.loc == "override search.trials"
    with pytest.raises(ConfigError) as err:
        load_config(DEMO_CONFIG, ["search.trials=x"])
    assert err.value.loc == "--set search.trials"


@pytest.mark.parametrize("override, fragment", [
    ("hardware.budgets.stm32f746.max_latency_ms=.inf", "expected a positive number, got inf"),
    ("hardware.budgets.stm32f746.max_latency_ms=.nan", "expected a positive number, got nan"),
])
def test_non_finite_budgets_are_refused(tmp_path, override, fragment):
    """A non-finite budget was accepted, then crashed the run when its record was written."""
    with pytest.raises(ConfigError, match=fragment):
        load_config(write_config(tmp_path, TINY), [override])


def test_a_python_tag_is_refused_not_dropped(tmp_path):
    with pytest.raises(ConfigError, match=r"config\.yaml:11: unsupported YAML tag"):
        load_config(write_config(tmp_path, TINY + "x: !!python/object/apply:os.system [a]\n"))


CASES = [
    # (replace this, with this, expected fragments of the message)
    ("seed: 0", "seed: 0\nsead: 1", ["config.yaml:3", "unknown key 'sead'", "did you mean 'seed'"]),
    ("trials: 3", "trails: 3", ["config.yaml:10", "search.trails", "did you mean 'trials'"]),
    ("epochs: 3}", "epochs: three}", ["config.yaml:5", "teacher.epochs", "integer"]),
    ("sampler: random", "sampler: tpee", ["search.sampler", "did you mean 'tpe'"]),
    ("max_latency_ms: 50", "max_latency_ms: -1", ["budgets.stm32f746.max_latency_ms",
                                                   "positive"]),
    ("max_latency_ms: 50", "max_latncy_ms: 50", ["did you mean 'max_latency_ms'"]),
    ("budgets: {stm32f746:", "budgets: {stm33f746:", ["not in hardware.profiles"]),
    ("sampler: random}", "sampler: random, objectives: [speed]}", ["unknown objective 'speed'"]),
    ("sampler: random}", "sampler: random, baselines: maybe}", ["search.baselines", "true or false"]),
    ("space: SPACE", "space: nope.yaml", ["model.space", "not found"]),
    ("name: tiny", "name: [tiny", ["config.yaml:", "malformed YAML"]),
    ("seed: 0", "seed: 0\nseed: 1", ["config.yaml:3", "duplicate key 'seed'"]),
    ("sampler: random}", "sampler: random, early_stopping: {rungs: [1], min_dom: 2}}",
     ["search.early_stopping", "unknown key 'min_dom'",
      "known: rungs, min_dominating, margin_se, chance_se, rung_score"]),
]


@pytest.mark.parametrize("old,new,fragments", CASES)
def test_bad_config_names_the_place(tmp_path, old, new, fragments):
    assert old in TINY
    path = write_config(tmp_path, TINY.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_bad_override_names_set(tmp_path):
    path = write_config(tmp_path, TINY)
    with pytest.raises(ConfigError, match=r"--set search.trials: expected an integer"):
        load_config(path, ["search.trials=many"])
    with pytest.raises(ConfigError, match="bad override"):
        load_config(path, ["search.trials"])
    # a section only the override made is blamed on --set, not on the file's nearest line
    with pytest.raises(ConfigError, match=r"^--set hardware.budgets.nrf52: budget for profile"):
        load_config(path, ["hardware.budgets.nrf52.max_latency_ms=3"])


def test_a_list_set_on_the_command_line_is_blamed_on_set_not_the_file(tmp_path):
    path = write_config(tmp_path, TINY.replace("sampler: random}", "sampler: random, "
                                               "objectives: [accuracy, stm32f746.latency_ms]}"))
    with pytest.raises(ConfigError, match=r"^--set search.objectives\[1\]: unknown objective"):
        load_config(path, ["search.objectives=[accuracy, stm32f746.latncy_ms]"])
    with pytest.raises(ConfigError, match=r"^--set hardware.profiles\[0\]: "):
        load_config(path, ["hardware.profiles=[stm32f999]"])


def test_an_empty_config_says_so(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match=r"empty.yaml(:1)?: the config is empty"):
        load_config(tmp_path / "empty.yaml")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config not found"):
        load_config(tmp_path / "nope.yaml")


def test_an_empty_budgets_section_and_set_into_the_data_shorthand(tmp_path):
    """`budgets:` with every line commented out crashed the search (AttributeError in the
    space reduction); `--set data.val_fraction=...` on `data: digits` was refused."""
    assert "budgets: {stm32f746: {max_latency_ms: 50}}" in TINY and "data: digits" in TINY
    path = write_config(tmp_path, TINY.replace("budgets: {stm32f746: {max_latency_ms: 50}}",
                                               "budgets:\n    # stm32f746: {}"))
    assert load_config(path).hardware.budgets == {}
    cfg = load_config(path, ["data.val_fraction=0.2", "hardware.budgets="])
    assert cfg.data.source == "digits" and cfg.data.val_fraction == 0.2
    assert cfg.hardware.budgets == {}


def test_progress_shows_the_profile_the_objectives_cost(tmp_path):
    from autocompress.config import lead_profile

    path = write_config(tmp_path, TINY)
    assert lead_profile(load_config(path)) == "stm32f746"
    cfg = load_config(path, ["hardware.profiles=[stm32f746, pixel4]",
                             "search.objectives=[accuracy, pixel4.latency_ms]"])
    assert lead_profile(cfg) == "pixel4"          # it showed stm32f746's latency


def test_duplicate_objectives_are_refused_when_a_search_starts(tmp_path):
    from autocompress.config_checks import check_new_run

    cfg = load_config(write_config(tmp_path, TINY), ["search.objectives=[accuracy, accuracy]"])
    with pytest.raises(ConfigError, match=r"search.objectives: objective 'accuracy' is listed "
                       "twice"):
        check_new_run(cfg)                     # on load it is not: old run dirs still load



def test_a_profile_listed_twice_is_refused_when_a_search_starts(tmp_path):
    """``profiles: [stm32f746, stm32f746]`` ran, costing every candidate twice and prefixing
    every progress line; a run dir that holds one still loads (report, export, resume)."""
    from autocompress.config_checks import check_new_run

    cfg = load_config(write_config(tmp_path, TINY), ["hardware.profiles=[stm32f746, stm32f746]"])
    assert list(cfg.hardware.profiles) == ["stm32f746", "stm32f746"]   # loads
    with pytest.raises(ConfigError, match=r"hardware.profiles = \['stm32f746', 'stm32f746'\] "
                       r"\(overriding .*config.yaml:8, which has \['stm32f746'\]\): profile "
                       "'stm32f746' is listed twice"):
        check_new_run(cfg)


def test_split_seed_fixes_the_split_across_run_seeds(tmp_path, monkeypatch):
    """A seed sweep changed the val and test sets with the seed; `data.split_seed` holds the
    split (the digits' and a user callable's argument) while `seed` varies the rest."""
    import torch

    from autocompress.search.setup import load_data

    def val_x(*sets: str):
        return load_data(load_config(DEMO_CONFIG, list(sets))).val.x

    assert load_config(DEMO_CONFIG).data_seed() == 0
    assert load_config(DEMO_CONFIG, ["seed=3", "data.split_seed=0"]).data_seed() == 0
    assert torch.equal(val_x("seed=3", "data.split_seed=0"), val_x("seed=0"))
    assert not torch.equal(val_x("seed=3"), val_x("seed=0"))
    with pytest.raises(ConfigError, match="split_seed"):
        load_config(DEMO_CONFIG, ["data.split_seed=0.5"])
    (tmp_path / "splitdata.py").write_text(
        "import torch\nSEEN = []\n"
        "def make(seed):\n    SEEN.append(seed)\n"
        "    x, y = torch.rand(20, 1, 4, 4), torch.arange(20) % 2\n"
        "    return {'train': (x, y), 'val': (x, y), 'test': (x, y)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_data(load_config(DEMO_CONFIG, ["seed=5", "data.source=splitdata:make",
                                        "data.split_seed=7"]))
    import splitdata
    assert splitdata.SEEN == [7]
