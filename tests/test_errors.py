"""The error catalogue: every user mistake exits 2 with one line naming the place (file:line,
field or flag), what was expected and a fix, and no traceback. In-process through cli.main
(fast); tests/test_cli.py checks the same through a real subprocess."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from autocompress.cli import main

from .conftest import ROOT, SPACE, TINY, write_config

OWN = ROOT / "experiments" / "own_model"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Default run dirs (runs/<name>-<time>) land in tmp, never in the repository."""
    monkeypatch.chdir(tmp_path)


def run_cli(capsys, *args: str) -> str:
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def config(tmp_path: Path, old: str = "", new: str = "") -> Path:
    assert old in TINY
    return write_config(tmp_path, TINY.replace(old, new) if old else TINY)


def own_config(tmp_path: Path, **replace: str) -> Path:
    """A copy of experiments/own_model with some text replaced in its files."""
    folder = tmp_path / "own"
    shutil.copytree(OWN, folder)
    for name, (old, new) in replace.items():
        path = folder / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new))
    return folder / "config.yaml"


CONFIG_CASES = {
    "malformed yaml": ("name: tiny", "name: [tiny", ["config.yaml:2", "malformed YAML"]),
    "unknown top key": ("seed: 0", "sede: 0", ["config.yaml:2", "did you mean 'seed'"]),
    "unknown section key": ("trials: 3", "trails: 3", ["search.trails", "did you mean"]),
    "wrong type": ("epochs: 3}", "epochs: 2.5}", ["teacher.epochs", "integer"]),
    "bad sampler": ("sampler: random", "sampler: grid", ["search.sampler", "tpe, gp, nsga2"]),
    "negative budget": ("max_latency_ms: 50", "max_latency_ms: 0", ["positive number"]),
    "unknown budget": ("max_latency_ms: 50", "max_energy_mj: 50", ["unknown budget"]),
    "budget for unused profile": ("budgets: {stm32f746:", "budgets: {pixel9:",
                                  ["not in hardware.profiles"]),
    "unknown objective": ("sampler: random}", "sampler: random, objectives: [stm32f746.fps]}",
                          ["unknown objective"]),
    "space file missing": ("space: SPACE", "space: missing.yaml", ["model.space", "not found"]),
    "space is a folder": ("space: SPACE", "space: .", ["model.space", "is a folder, not a file",
                                                      "search_spaces/mobilenet_digits.yaml"]),
    "duplicate key": ("seed: 0", "seed: 0\nseed: 1", ["config.yaml:3", "duplicate key"]),
    "unknown profile": ("profiles: [stm32f746]\n  budgets: {stm32f746: {max_latency_ms: 50}}",
                        "profiles: [stm32f999]", ["stm32f999", "known profiles", "stm32f746"]),
    "impossible budget": ("max_latency_ms: 50", "max_latency_ms: 0.01",
                          ["config.yaml:9 hardware.budgets.stm32f746.max_latency_ms: no "
                           "candidate in the space can meet the budget"]),
    "unknown dataset": ("data: digits", "data: mnist", ["data.source", "'digits' or"]),
    "bad data import": ("data: digits", "data: nosuchmodule:make", ["cannot import module"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_mistakes(tmp_path, capsys, case):
    old, new, fragments = CONFIG_CASES[case]
    line = run_cli(capsys, "search", str(config(tmp_path, old, new)),
                   "--run-dir", str(tmp_path / "run"))
    for fragment in fragments:
        assert fragment in line, line
    assert not (tmp_path / "run").exists()                  # nothing half-written


SPACE_TEXT = SPACE.read_text()


@pytest.mark.parametrize("old,new,fragments", [
    ("quant.bits: [2, 4, 8]", "quant.bits: [2, 4, 16]", ["mobilenet_digits.yaml:22",
                                                          "quant.bits", "2..8 or 32"]),
    ('match: "re:.*"', 'match: "re:stages\\\\.9.*"', ["mobilenet_digits.yaml:21",
                                                      "matches no layer"]),
    ("expand: [2, 4]\n", "expand: [2, 4]\nreference: {kernel: 7}\n",
     ["mobilenet_digits.yaml:15", "arch.kernel takes 3, 5"]),
    ("expand: [2, 4]\n", "expand: [2, 4]\nreference: {kernal: 3}\n", ["did you mean 'kernel'"]),
    ("expand: [2, 4]\n", "expand: [2, 4]\nreference: {kernel: [3, 5]}\n",
     ["2 values for 3 stages"]),
    ("expand: [2, 4]\n", "expand: [2, 4]\nreference: {kernel: true}\n",
     ["mobilenet_digits.yaml:15", "expected a number, got True"]),
    ("expand: [2, 4]\n", "expand: [2, 4]\nreference: {width_mult: [1.0]}\n",
     ["width_mult takes one value"]),
    ("expand: [2, 4]\n", "expand: [2, 4]\nreference: {width_mult: 2.0}\n",
     ["2.0 is not a value arch.width_mult can take"]),
    ("width_mult:", "width_mul:", ["did you mean 'width_mult'"]),
    ('match: "re:.*"', 'match: "stages.*.expand.conv"', ["matches no layer", "did you mean "
                                                         "'re:stages\\..*\\.expand\\.conv'"]),
    ("quant.bits: [2, 4, 8]", "quant.bits: [2, 4, 8]\n    cluster.k: [1, 4]",   # 1 was off
     ["mobilenet_digits.yaml:23", "cluster.k: value 1 is not supported", "2..256 (0 = off)"]),
])
def test_space_mistakes(tmp_path, capsys, old, new, fragments):
    assert old in SPACE_TEXT
    space = tmp_path / "mobilenet_digits.yaml"
    space.write_text(SPACE_TEXT.replace(old, new))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(TINY.replace("SPACE", str(space)))
    line = run_cli(capsys, "search", str(cfg))
    for fragment in fragments:
        assert fragment in line, line


def test_profile_with_bad_field(tmp_path, capsys):
    prof = (ROOT / "hardware_profiles" / "stm32f746.yaml").read_text()
    (tmp_path / "mymcu.yaml").write_text(prof.replace("name: stm32f746", "name: mymcu")
                                         .replace("clock_mhz: 216", "clock_mhz: fast"))
    cfg = config(tmp_path, "profiles: [stm32f746]\n  budgets: {stm32f746: {max_latency_ms: 50}}",
                 "profiles: [mymcu]")
    line = run_cli(capsys, "search", str(cfg))
    assert "mymcu.yaml:" in line and "clock_mhz" in line


def test_missing_lut_entry_with_fallback_disabled(tmp_path, capsys):
    prof = (ROOT / "hardware_profiles" / "stm32f746.yaml").read_text()
    (tmp_path / "strict.yaml").write_text(prof.replace("name: stm32f746", "name: strict")
                                          .replace("fallback: true", "fallback: false"))
    cfg = config(tmp_path, "profiles: [stm32f746]\n  budgets: {stm32f746: {max_latency_ms: 50}}",
                 "profiles: [strict]")
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert "conv2d|" in line                                 # names the missing key
    assert not (tmp_path / "run").exists()                   # refused before anything ran


def test_builder_that_returns_the_wrong_thing(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"mynets.py": ("    return nn.Sequential(", "    return 42\n"
                                                "    nn.Sequential(")})
    assert "expected a torch.nn.Module" in run_cli(capsys, "search", str(cfg))


def test_builder_that_does_not_exist(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"config.yaml": ("mynets:build_model", "mynets:build")})
    assert "has no callable 'build'" in run_cli(capsys, "search", str(cfg))


def test_objectives_without_accuracy(tmp_path, capsys):
    cfg = config(tmp_path, "sampler: random}", "sampler: random, "
                 "objectives: [stm32f746.latency_ms]}")
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert "search.objectives: the objectives ['stm32f746.latency_ms'] leave out accuracy" in line
    assert "objectives: [accuracy, stm32f746.latency_ms]" in line
    assert not (tmp_path / "run").exists()


def test_builder_module_with_a_syntax_error_or_that_raises(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"mynets.py": ("from torch import nn", "from torch import nn +")})
    line = run_cli(capsys, "search", str(cfg))
    assert "mynets.py:7: module 'mynets' has a syntax error" in line
    cfg = own_config(tmp_path / "b", **{"mynets.py": ("from torch import nn",
                                                      "from torch import nn\n1 / 0")})
    assert "importing module 'mynets' raised ZeroDivisionError" in run_cli(capsys, "search",
                                                                          str(cfg))


def test_empty_dataset(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"mydata.py": ('"test": (x[b:], y[b:])',
                                                '"test": (x[:0], y[:0])')})
    assert "split is empty" in run_cli(capsys, "search", str(cfg))


RETURN = '    return {"train": (x[:a], y[:a]), "val": (x[a:b], y[a:b]), "test": (x[b:], y[b:])}'
DATA_CASES = {
    "negative label": ("    y[a] = -1\n", ["(mydata:make_data -> val)", "class indices must be 0..K-1, "
                                            "found -1"]),
    "one-hot labels": ("    y = np.eye(10, dtype=np.float32)[y]\n",
                       ["(mydata:make_data -> train)", "shape (1257,); got shape (1257, 10)",
                        "y.argmax(1)"]),
    "fractional labels": ("    y = y + 0.5\n", ["integer class indices 0..K-1, found "]),
    "NaN input": ("    x[0, 0, 0, 0] = np.nan\n", ["(mydata:make_data -> train)",
                                                    "1 non-finite value(s)"]),
    "channels last": ("    x = x.transpose(0, 2, 3, 1)\n", ["looks channels-last",
                                                            "x.permute(0, 3, 1, 2)"]),
    "channels last, not square": ("    x = x.reshape(len(x), 1, 32, 8).transpose(0, 2, 3, 1)\n",
                                  ["looks channels-last: shape (1257, 32, 8, 1)"]),
    "a signal laid out N x C x W x 1": ("    x = x.reshape(len(x), 8, 32, 1)\n",
                                        ["shape (1257, 8, 32, 1) (N x H x W x C), or a signal "
                                         "laid out N x C x W x 1", "x.transpose(2, 3)"]),
    "one class": ("    y = y * 0\n", ["train has a single class (0)"]),
    "1-D signals": ("    x = x.reshape(len(x), 1, -1)\n",
                    ["(mydata:make_data -> train)", "x must be images, shape (N, C, H, W); got "
                     "shape (1257, 1, 256)", "x[:, :, None, :]"]),
    "class only in test": ("    y[-1] = 12\n", ["test has class(es) [12] that train never has"]),
    "labels 1..10": ("    y = y + 1\n", ["the labels skip class index(es) 0: 10 classes labelled "
                                         "1..10 give the classifier 11 outputs",
                                         "numpy.unique(y, return_inverse=True)[1]"]),
    "labels 0, 100, ...": ("    y = y * 100\n", ["skip class index(es) 1, 2, 3, 4, 5, ...",
                                                   "901 outputs, 891 never trained"]),
    "dict dataset": ("    import torch\n    from torch.utils.data import Dataset\n\n"
                     "    class D(Dataset):\n        def __len__(self): return 4\n"
                     "        def __getitem__(self, i): return {'image': x[i], 'label': y[i]}\n"
                     "    return {'train': D(), 'val': D(), 'test': D()}\n",
                     ["a Dataset must yield (x, y) pairs; its item 0 is a dict with keys image, "
                      "label"]),
    # the three below were tracebacks (exit 1): the Dataset's own error, torch.stack's, torch's
    "a Dataset whose __getitem__ raises": (
        "    from torch.utils.data import Dataset\n\n"
        "    class D(Dataset):\n        def __len__(self): return 4\n"
        "        def __getitem__(self, i): return (x[i], y[i]) if i < 2 else {}[i]\n"
        "    return {'train': D(), 'val': D(), 'test': D()}\n",
        ["(mydata:make_data -> train): reading item 2 of the Dataset raised KeyError: 2",
         "mydata.py:", "in __getitem__"]),
    "a Dataset of images of two sizes": (
        "    from torch.utils.data import Dataset\n\n"
        "    class D(Dataset):\n        def __len__(self): return 4\n"
        "        def __getitem__(self, i): return x[i][..., :16 - (i == 3)], y[i]\n"
        "    return {'train': D(), 'val': D(), 'test': D()}\n",
        ["the Dataset's items differ in shape: x of item 0 is (1, 16, 16), of item 3 "
         "(1, 16, 15)"]),
    "a Dataset of file names": (
        "    from torch.utils.data import Dataset\n\n"
        "    class D(Dataset):\n        def __len__(self): return 4\n"
        "        def __getitem__(self, i): return f'img{i}.png', y[i]\n"
        "    return {'train': D(), 'val': D(), 'test': D()}\n",
        ["a Dataset's x must be a numeric array or tensor; item 0's is str", "ToTensor"]),
    "a Dataset of PIL images": (     # np.array() takes them: HWC 0..255, a later layout error
        "    from PIL import Image\n    from torch.utils.data import Dataset\n\n"
        "    class D(Dataset):\n        def __len__(self): return 4\n"
        "        def __getitem__(self, i): return Image.new('RGB', (8, 8)), y[i]\n"
        "    return {'train': D(), 'val': D(), 'test': D()}\n",
        ["a Dataset's x must be a numeric array or tensor; item 0's is Image", "ToTensor"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_data_mistakes(tmp_path, capsys, case):
    """Labels that are not class indices 0..K-1, non-finite or channels-last inputs, a class
    only in test, a Dataset of dicts: one line naming the split, before any training."""
    insert, fragments = DATA_CASES[case]
    cfg = own_config(tmp_path, **{"mydata.py": (RETURN, insert + RETURN)})
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert "mydata:make_data" in line and all(f in line for f in fragments), line
    assert not (tmp_path / "run").exists()


def test_a_split_fraction_with_own_data(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"config.yaml": ("data: mydata:make_data",
                                                  "data: {source: mydata:make_data, "
                                                  "val_fraction: 0.3}")})
    line = run_cli(capsys, "search", str(cfg))
    assert "data.val_fraction: val_fraction splits the built-in digits only" in line


def test_model_with_the_wrong_number_of_outputs(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"mynets.py": ("nn.Linear(64, num_classes)", "nn.Linear(64, 7)")})
    line = run_cli(capsys, "search", str(cfg))
    assert "model.builder: the model outputs (1, 7), expected logits of shape (N, 10)" in line


def test_a_model_that_ends_in_softmax_is_refused(tmp_path, capsys):
    """Trained with cross-entropy on probabilities, a DS-CNN reached 39% instead of 83%."""
    cfg = own_config(tmp_path, **{"mynets.py": ("nn.Linear(64, num_classes),",
                                                "nn.Linear(64, num_classes), nn.Softmax(1),")})
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert "model.builder: the model outputs probabilities" in line and "softmax" in line
    assert not (tmp_path / "run").exists()


def test_input_shape_mismatch(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"mynets.py": ("channels = input_shape[0]", "channels = 3")})
    line = run_cli(capsys, "search", str(cfg))
    assert "model.builder: forward pass failed on an input of shape (1, 1, 16, 16)" in line


@pytest.mark.parametrize("key, text", [("arch", "arch: {width_mult: [0.5]}"),
                                       ("base", "base: {stem_channels: 8}"),
                                       ("family", "family: resnet")])
def test_family_keys_with_own_model(tmp_path, capsys, key, text):
    """base and family were silently ignored with model.builder; arch was refused."""
    cfg = own_config(tmp_path, **{"space.yaml": ("distill:", f"{text}\ndistill:")})
    assert f"'{key}' shapes the built-in student family, but the config names its own model" \
        in run_cli(capsys, "search", str(cfg))


def test_rule_matching_no_layer_of_own_model(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"space.yaml": ('"re:(0|3|9)"', '"re:(0|3|99)x"')})
    line = run_cli(capsys, "search", str(cfg))
    assert "space.yaml:12" in line and "matches no layer" in line


def test_a_rule_branch_matching_no_layer_is_an_error(tmp_path, capsys):
    """'re:(0|3|99)' matched layers 0 and 3, so the typo'd branch went unseen: the layers meant
    were silently left out of the search."""
    cfg = own_config(tmp_path, **{"space.yaml": ('"re:(0|3|9)"', '"re:(0|3|99)"')})
    line = run_cli(capsys, "search", str(cfg))
    assert "space.yaml:12" in line and "its branch '99' matches no layer" in line
    assert "fix or remove that branch" in line


def test_a_prune_rule_on_the_output_layer_says_why_it_matches_nothing(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"space.yaml": ('"re:(0|3|9)"', '"14"')})
    line = run_cli(capsys, "search", str(cfg))
    assert "'14' matches no layer prune.ratio applies to" in line
    assert "the layer writing the model's output is never pruned" in line


def test_resume_of_something_that_is_not_a_run(tmp_path, capsys):
    assert "not a run directory" in run_cli(capsys, "search", "--resume", str(tmp_path))


def test_report_of_something_that_is_not_a_run(tmp_path, capsys):
    assert "not a run directory" in run_cli(capsys, "report", str(tmp_path))


def test_search_without_config(capsys):
    assert "missing CONFIG" in run_cli(capsys, "search")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("errors")
    cfg = write_config(tmp, TINY.replace("max_latency_ms: 50", "max_latency_ms: 2")
                       .replace("trials: 3", "trials: 4"))
    assert main(["search", str(cfg), "--run-dir", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def test_export_errors(finished_run, tmp_path, capsys):
    import json

    records = [json.loads(x) for x in (finished_run / "records.jsonl").read_text().splitlines()]
    line = run_cli(capsys, "export", str(finished_run), "--trial", "42")
    assert "--trial" in line and "trial 42 has no record" in line
    line = run_cli(capsys, "export", str(finished_run), "--max-latency-ms", "0.001")
    assert "no front point meets latency <= 0.001 ms" in line and "fastest" in line
    line = run_cli(capsys, "export", str(finished_run), "--device", "pixel4",
                   "--max-latency-ms", "3")
    assert "unknown device 'pixel4'" in line
    infeasible = [r["number"] for r in records if r["state"] == "infeasible"]
    assert infeasible, "the seeded 2 ms run is expected to reject at least one proposal"
    line = run_cli(capsys, "export", str(finished_run), "--trial", str(infeasible[0]))
    assert "is infeasible" in line
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = run_cli(capsys, "export", str(finished_run), "--trial", "0",
                   "--out", str(blocker / "out"))
    assert "cannot write the output folder" in line


def test_existing_run_dir_and_changed_config_on_resume(finished_run, capsys):
    cfg = finished_run / "config.resolved.yaml"
    assert "--resume" in run_cli(capsys, "search", str(cfg), "--run-dir", str(finished_run))
    line = run_cli(capsys, "search", "--resume", str(finished_run), "--set", "seed=1")
    assert "--set seed=1 would change it" in line and "search.threads" in line
    line = run_cli(capsys, "search", "--resume", str(finished_run), "--set", "search.threads=0")
    assert "search.threads" in line, line          # the value is still checked


@pytest.mark.parametrize(("argv", "fragment"), [
    (["export"], "autocompress export: the following arguments are required: run_dir"),
    (["serch"], "invalid choice: 'serch'"),
    (["search", "x.yaml", "--workers", "two"], "argument --workers: invalid int value"),
])
def test_command_line_mistakes_are_one_line(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "usage:" not in err
    assert err.startswith("error: command line: ") and fragment in err and "--help)" in err


def test_a_model_with_layers_the_cost_model_does_not_know_is_refused(tmp_path, capsys):
    """A ConvTranspose2d (or Conv1d, GRU) was costed as zero: budgets and fronts wrong."""
    cfg = own_config(tmp_path, **{"mynets.py": (
        "nn.Conv2d(48, 64, 1, bias=False)", "nn.ConvTranspose2d(48, 64, 1, bias=False)")})
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert "model.builder: cannot cost the model: 3,072 parameters in layers the cost model " \
           "does not know count as no compute and no Flash (an op's overhead at most): 9 " \
           "(ConvTranspose2d, 3,072)" \
        in line
    assert not (tmp_path / "run").exists()


GRU_NET = """    return Recurrent(input_shape[0], num_classes)


class Recurrent(nn.Module):
    def __init__(self, channels, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 3, padding=1)
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(self.gru(self.conv(x).mean(3).transpose(1, 2))[0][:, -1])


def unused():
    return nn.Sequential("""


def test_a_model_with_a_gru_is_refused_not_a_crash(tmp_path, capsys):
    """Torch-Pruning raised IndexError on it (exit 1, a traceback) before the refusal."""
    cfg = own_config(tmp_path, **{"mynets.py": ("    return nn.Sequential(", GRU_NET),
                                  "space.yaml": ('"14"', "fc")})
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert "model.builder: cannot cost the model" in line and "(GRU, " in line, line


def test_what_a_new_search_refuses_an_old_run_still_exports(tmp_path, capsys, monkeypatch):
    """Labels that skip a class index and `cluster.k: 1` are refused when a search starts.
    Refused on every load, they stopped the export and resume of a run made before the
    checks (its weights have the outputs those labels gave)."""
    from autocompress.cli import main
    from autocompress.search import setup

    cfg = own_config(tmp_path, **{"mydata.py": (RETURN, "    y = y + 1\n" + RETURN),
                                  "space.yaml": ("quant.bits: [4, 8]",
                                                 "quant.bits: [4, 8]\n    cluster.k: [0, 1]")})
    run = tmp_path / "run"
    monkeypatch.setattr(setup, "label_gaps", lambda *args: None)     # a run made before them
    monkeypatch.setattr(setup, "_one_cluster", lambda space: None)
    assert main(["search", str(cfg), "--run-dir", str(run), "--trials", "1", "--no-baselines",
                 "--quiet"]) == 0
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["export", str(run), "--trial", "0"]) == 0
    assert main(["search", "--resume", str(run), "--trials", "2"]) == 0    # says what is off
    assert "warning: the labels skip class index(es) 0" in capsys.readouterr().out
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "new"))
    assert "the labels skip class index(es) 0" in line
    mynets = cfg.with_name("mynets.py")      # a builder with its class count written in:
    kept = mynets.read_text()                # the labels are named, not its 10 outputs
    mynets.write_text(kept.replace("nn.Linear(64, num_classes)", "nn.Linear(64, 10)"))
    monkeypatch.delitem(sys.modules, "mynets")
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "new"))
    assert "the labels skip class index(es) 0" in line
    mynets.write_text(kept)
    monkeypatch.delitem(sys.modules, "mynets")
    cfg.with_name("mydata.py").write_text(cfg.with_name("mydata.py").read_text()
                                          .replace("    y = y + 1\n", ""))
    monkeypatch.delitem(sys.modules, "mydata")                    # imported again
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "new"))
    assert "space.yaml:" in line and "cluster.k: value 1 is not supported" in line


def test_a_changed_data_module_is_named_on_resume_and_export(tmp_path, capsys):
    """A resume after the user's data module changed mixed trials trained on two datasets in
    one study, and an export rebuilt the model with the changed builder, silently."""
    cfg = own_config(tmp_path)
    run = tmp_path / "run"
    quick = ["--set", "teacher.epochs=1", "--set", "train.epochs=1", "--set",
             "train.finetune_epochs=0", "--set", "search.threads=1"]
    assert main(["search", str(cfg), "--run-dir", str(run), "--trials", "1", "--no-baselines",
                 "--quiet", *quick]) == 0
    env = json.loads((run / "env.json").read_text())["user_code_sha256"]
    assert set(env) == {"mydata", "mynets"}
    capsys.readouterr()
    assert main(["export", str(run), "--trial", "0", "--out", str(tmp_path / "e1")]) == 0
    assert "warning:" not in capsys.readouterr().err
    rebuild = json.loads((tmp_path / "e1" / "manifest.json").read_text())["rebuild"]
    assert rebuild["builder"] == "mynets:build_model" and rebuild["family"] is None  # not
    import autocompress as ac  # the family's name: "mobilenet_v2"

    assert ac.load_export(tmp_path / "e1")[0].in_channels == 1
    data = cfg.parent / "mydata.py"
    data.write_text(data.read_text() + "\n# noise raised\n")
    assert main(["search", "--resume", str(run), "--trials", "2", "--quiet"]) == 0
    err = capsys.readouterr().out               # the search's warnings go with its lines
    assert f"warning: {data.resolve()} (mydata) changed since the search started" in err
    assert "mynets" not in err
    assert main(["export", str(run), "--trial", "0", "--out", str(tmp_path / "e2")]) == 0
    assert "(mydata) changed since the search started: the model is rebuilt" in \
        capsys.readouterr().err
    # a builder whose widths changed: the weights no longer fit. Export blamed the checkpoint
    # ("not a valid checkpoint ... restore the file"), its message cut off mid-shape
    nets = cfg.parent / "mynets.py"
    nets.write_text(nets.read_text().replace("Conv2d(channels, 24", "Conv2d(channels, 16")
                    .replace("BatchNorm2d(24)", "BatchNorm2d(16)").replace("Conv2d(24, 48",
                                                                           "Conv2d(16, 48"))
    sys.modules.pop("mynets", None)
    assert main(["export", str(run), "--trial", "0", "--out", str(tmp_path / "e3")]) == 2
    err = capsys.readouterr().err
    assert "trial 0's saved weights do not fit the model built from your code now" in err
    assert f"(mydata) changed; {nets.resolve()} (mynets) changed since the search started: " \
           "restore your code as it was then" in err
    assert "not a valid checkpoint" not in err and "torch.Size([16, 1, 3, 3])" in err


def test_a_file_given_as_the_run_dir_names_its_folder(tmp_path, capsys):
    """A run's file (or a config) given where a run dir goes read 'run directory not found'
    though the path exists."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.resolved.yaml").write_text("name: x\n")
    (run / "records.jsonl").write_text("")
    line = run_cli(capsys, "report", str(run / "records.jsonl"))
    assert "records.jsonl: a file, not a run directory" in line and f"holds it: {run}" in line
    cfg = config(tmp_path)
    line = run_cli(capsys, "search", "--resume", str(cfg))
    assert "a file, not a run directory" in line and "autocompress search CONFIG" in line
