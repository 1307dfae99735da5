"""Mistakes with your own model and data, found by bringing one: each exits 2 with one line
whose fix is the right one (before, several hints sent the user the wrong way, and a model
whose forward reads a layer's size crashed the set-up with a traceback)."""
from __future__ import annotations

from pathlib import Path

import pytest

from autocompress.errors import SpaceError

from .test_errors import RETURN, own_config, run_cli

SEQ = "    return nn.Sequential("
POOL_HEAD = "nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n        nn.Linear(64, num_classes),"


def _net(forward: str, layers: str = "nn.Conv2d(channels, 8, 3)", head: str = "nn.Linear(8, "
         "num_classes)") -> str:
    """mynets.py's build_model returning a model of its own, ``forward`` its body."""
    return (f"    return Own(input_shape[0], num_classes)\n\n\nclass Own(nn.Module):\n"
            f"    def __init__(self, channels, num_classes):\n        super().__init__()\n"
            f"        self.conv = {layers}\n        self.fc = {head}\n\n{forward}\n\n"
            f"def unused():\n{SEQ}")


@pytest.mark.parametrize("insert, fragments, wrong", [
    # y.argmax(1) of a column is all zeros: the next error was "a single class"
    ("    y = y[:, None]\n", ["got shape (1257, 1)", "pass y.reshape(-1)"], "argmax"),
    ("    y = np.concatenate([y, y[:3]])\n",
     ["(mydata:make_data -> test)", "x has 270 samples and y 273 labels"], "argmax"),
    # grey images without their channel axis: the hint spoke of 1-D signals only
    ("    x = x[:, 0]\n", ["got shape (1257, 16, 16)", "x[:, None]"], "one-hot"),
])
def test_label_and_image_shape_hints(tmp_path, capsys, insert, fragments, wrong):
    cfg = own_config(tmp_path, **{"mydata.py": (RETURN, insert + RETURN)})
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert all(f in line for f in fragments) and wrong not in line, line


def test_a_model_without_a_flatten_is_told_to_flatten(tmp_path, capsys):
    """(N, 10, 1, 1) from a 1x1 conv head: the hint said to give the last layer num_classes
    outputs, which it has."""
    cfg = own_config(tmp_path, **{"mynets.py": (POOL_HEAD, "nn.AdaptiveAvgPool2d(1), "
                                                "nn.Conv2d(64, num_classes, 1),")})
    line = run_cli(capsys, "search", str(cfg))
    assert "the model outputs (1, 10, 1, 1)" in line and "torch.flatten(x, 1)" in line, line
    assert "num_classes outputs" not in line


def test_a_model_that_returns_a_dict_is_told_to_return_the_logits(tmp_path, capsys):
    net = _net("    def forward(self, x):\n        return {'logits': self.fc(self.conv(x)"
               ".mean((2, 3)))}")
    cfg = own_config(tmp_path, **{"mynets.py": (SEQ, net), "space.yaml": ('"14"', "fc")})
    line = run_cli(capsys, "search", str(cfg))
    assert "the model outputs dict" in line and "return the logits tensor alone" in line, line


def test_a_forward_with_two_inputs_is_named(tmp_path, capsys):
    """It said: forward() missing 1 required positional argument, check the data's shape."""
    net = _net("    def forward(self, x, mask):\n        return self.fc(self.conv(x * mask)"
               ".mean((2, 3)))")
    cfg = own_config(tmp_path, **{"mynets.py": (SEQ, net), "space.yaml": ('"14"', "fc")})
    line = run_cli(capsys, "search", str(cfg))
    assert "model.builder: the model's forward takes 2 inputs (x, mask)" in line, line
    assert "forward(x) calls it with the others fixed" in line and "shape the model" not in line


def test_a_forward_that_fails_names_its_line(tmp_path, capsys):
    net = _net("    def forward(self, x):\n        return self.fc(self.conv(x).flatten(1))")
    cfg = own_config(tmp_path, **{"mynets.py": (SEQ, net), "space.yaml": ('"14"', "fc")})
    line = run_cli(capsys, "search", str(cfg))
    assert "forward pass failed" in line and "mynets.py:" in line and "in forward)" in line, line


def test_a_layer_size_read_in_forward_is_a_space_error_not_a_traceback(tmp_path, capsys):
    """Factorizing fc turns it into two layers without in_features: the set-up's largest
    candidate raised inside torch.fx, said as 'avoid data-dependent control flow', no place."""
    net = _net("    def forward(self, x):\n        x = self.conv(x).mean((2, 3))\n"
               "        return self.fc(x.view(-1, self.fc.in_features))")
    space = "version: 1\nrules:\n  - match: fc\n    lowrank.rank_ratio: [0.25, 0.5]\n"
    cfg = own_config(tmp_path, **{"mynets.py": (SEQ, net)})
    cfg.with_name("space.yaml").write_text(space)
    line = run_cli(capsys, "search", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert "candidate (fc lowrank) does not run on the model" \
        in line and "'Sequential' object has no attribute 'in_features'" in line, line
    assert "mynets.py:" in line and "control flow" not in line
    assert not (tmp_path / "run").exists()


def test_a_hard_coded_view_leaves_its_layer_out_of_the_pruning(tmp_path):
    """``x.view(-1, 8 * 14 * 14)``: pruning conv made the set-up raise (exit 1)."""
    from autocompress.config import load_config
    from autocompress.search.setup import build_context

    net = _net("    def forward(self, x):\n        x = torch.relu(self.conv[1](self.conv[0]"
               "(x)))\n        return self.fc(x.view(-1, 8 * 14 * 14))",
               layers="nn.ModuleList([nn.Conv2d(channels, 8, 3, padding=1), nn.Conv2d(8, 8, 3)])",
               head="nn.Linear(8 * 14 * 14, num_classes)")
    space = ('version: 1\nrules:\n  - match: "re:.*"\n    quant.bits: [4, 8]\n'
             '  - match: "re:.*"\n    prune.ratio: [0.0, 0.5]\n')
    cfg = own_config(tmp_path, **{"mynets.py": ("from torch import nn", "import torch\n"
                                                "from torch import nn")})
    cfg.with_name("mynets.py").write_text(cfg.with_name("mynets.py").read_text()
                                          .replace(SEQ, net))
    cfg.with_name("space.yaml").write_text(space)
    ctx = build_context(load_config(cfg))
    assert [n for n in ctx.rspace.dists if n.startswith("prune")] == ["prune/conv.0"]
    # a rule naming that layer alone says why it cannot be pruned (it listed the eligible)
    cfg.with_name("space.yaml").write_text(space.replace('"re:.*"\n    prune', 'conv.1\n    prune'))
    with pytest.raises(SpaceError, match=r"conv\.1 is left out of pruning: its group is "
                                         r"joined by a concat, split, slice or reshape"):
        build_context(load_config(cfg))


def test_an_objective_on_a_profile_the_run_does_not_cost(tmp_path, capsys):
    cfg = own_config(tmp_path, **{"config.yaml": (
        "search: {trials: 12, sampler: tpe}",
        "search: {trials: 12, objectives: [accuracy, jetson_orin_nano.latency_ms]}")})
    line = run_cli(capsys, "search", str(cfg))
    assert "objective 'jetson_orin_nano.latency_ms': profile 'jetson_orin_nano' is not in " \
           "hardware.profiles (add it there, or use one of stm32f746)" in line, line


@pytest.mark.parametrize("own", [False, True])
def test_a_failure_that_never_ran_the_users_code_is_not_blamed_on_the_space(tmp_path, monkeypatch,
                                                                            own):
    """The set-up's candidates are built to cost the space: a pruning that fails inside this
    package or Torch-Pruning (a built-in student, or a model without a forward of yours) was
    said as the space's error, exit 2, with the hint to stop reading layer sizes in forward;
    it is a bug (exit 1, its traceback)."""
    import autocompress
    from autocompress.compress import prune
    from autocompress.config import load_config
    from autocompress.search.setup import build_context

    from .conftest import TINY, write_config

    code = compile("def _prune(*args, **kwargs):\n    raise IndexError('index 7 is out of "
                   "bounds for dimension 0 with size 4')\n",
                   str(Path(autocompress.__file__).parent / "compress" / "prune.py"), "exec")
    raised_here: dict = {}
    exec(code, raised_here)                      # raised from a line of the package
    monkeypatch.setattr(prune, "_prune", raised_here["_prune"])
    cfg = own_config(tmp_path) if own else write_config(tmp_path, TINY)
    with pytest.raises(IndexError, match="index 7 is out of bounds"):
        build_context(load_config(cfg))
