"""The teacher cache: its key covers the train split's content and order and every setting,
since the cached logits are indexed by sample position."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import torch

from autocompress.data import Split, load_digits_bundle
from autocompress.train import TrainSettings, get_teacher


def test_a_reordered_split_or_another_batch_size_is_not_served_the_cached_teacher(tmp_path):
    data = load_digits_bundle(0)
    settings = TrainSettings(epochs=1)
    first = get_teacher(tmp_path, data, widths=(4, 8, 8), settings=settings, seed=0)
    again = get_teacher(tmp_path, data, widths=(4, 8, 8), settings=settings, seed=0)
    assert again.key == first.key and len(list(tmp_path.glob("teacher-*.pt"))) == 1
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(1))
    shuffled = replace(data, train=Split(data.train.x[order], data.train.y[order]))
    moved = get_teacher(tmp_path, shuffled, widths=(4, 8, 8), settings=settings, seed=0)
    assert moved.key != first.key                      # same sums, another order
    assert torch.equal(moved.train_logits.argmax(1),
                       moved.model(shuffled.train.x).argmax(1))   # logits follow the samples
    other = get_teacher(tmp_path, data, widths=(4, 8, 8), seed=0,
                        settings=replace(settings, batch_size=8))
    assert other.key not in (first.key, moved.key)


TEACHER_MODULE = '''\
import torch
from torch import nn


class MyTeacher(nn.Module):     # a class of the user's module: Ray's workers cannot
    def __init__(self, inputs, num_classes):   # unpickle it (the module is not on their path)
        super().__init__()
        self.fc = nn.Linear(inputs, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def load_teacher(input_shape, num_classes):
    torch.manual_seed(SEED)      # stands for loading the user's trained weights
    return MyTeacher(int(torch.tensor(input_shape).prod()), num_classes)


def not_a_model(input_shape, num_classes):
    return "weights.pt"


def wrong_outputs(input_shape, num_classes):
    return nn.Flatten()


def with_softmax(input_shape, num_classes):
    return nn.Sequential(load_teacher(input_shape, num_classes), nn.Softmax(1))


def wrong_inputs(input_shape, num_classes):
    return nn.Linear(3, num_classes)


def nan_weights(input_shape, num_classes):
    model = load_teacher(input_shape, num_classes)
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    return model
'''


def test_your_own_teacher_gives_the_logits_and_is_cached_by_its_weights(tmp_path, monkeypatch):
    """The teacher was always the built-in CNN trained from scratch: a user could not
    distill from their own trained model."""
    import pytest

    from autocompress.errors import ModelError
    from autocompress.train import teacher as teacher_mod
    from autocompress.train.teacher import UserTeacher

    data = load_digits_bundle(0)
    code = tmp_path / "code"
    code.mkdir()
    (code / "myteacher.py").write_text(TEACHER_MODULE.replace("SEED", "0"))
    own = UserTeacher("myteacher:load_teacher", code)
    first = get_teacher(tmp_path, data, widths=(4,), settings=TrainSettings(epochs=1), seed=0, own=own)
    with torch.no_grad():
        assert torch.equal(first.train_logits, first.model(data.train.x))
    assert not any(p.requires_grad for p in first.model.parameters())

    def no_predict(*args, **kwargs):
        raise AssertionError("the cached logits must be reused")

    monkeypatch.setattr(teacher_mod, "predict", no_predict)
    again = get_teacher(tmp_path, data, widths=(4,), settings=TrainSettings(epochs=1), seed=0, own=own)
    assert again.key == first.key and again.val_accuracy == first.val_accuracy
    monkeypatch.undo()
    (code / "myteacher.py").write_text(TEACHER_MODULE.replace("SEED", "1"))   # new weights
    import sys
    sys.modules.pop("myteacher", None)
    other = get_teacher(tmp_path, data, widths=(4,), settings=TrainSettings(epochs=1), seed=0, own=own)
    assert other.key != first.key
    for name, what in (("not_a_model", "returned str, expected a torch.nn.Module"),
                       ("wrong_outputs", "the teacher outputs (2, 64), expected logits of "
                                         "shape (N, 10)"),
                       ("wrong_inputs", "the teacher raised RuntimeError on two validation "
                                        "images"),
                       ("with_softmax", "the teacher outputs probabilities"),
                       # a checkpoint holding NaN: every trial failed on a NaN loss, exit 0
                       ("nan_weights", "the teacher's logits on two validation images are "
                                       "not finite")):
        with pytest.raises(ModelError, match=re.escape(what)):
            UserTeacher(f"myteacher:{name}", code).build(data)


def test_a_search_distills_from_your_own_teacher(tmp_path, capsys):
    from autocompress.cli import main
    from tests.conftest import TINY, write_config

    (tmp_path / "myteacher.py").write_text(TEACHER_MODULE.replace("SEED", "0"))
    cfg = write_config(tmp_path, TINY.replace("teacher: {widths: [16, 32], epochs: 3}",
                                              "teacher: {model: myteacher:load_teacher}"))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run), "--trials", "1",
                 "--no-baselines"]) == 0
    out = capsys.readouterr().out
    assert "teacher " in out and "val accuracy" in out
    (cache,) = run.glob("teacher-*.pt")
    assert set(torch.load(cache, weights_only=True)) == {"train_logits"}   # no weights copied
    ray_run = tmp_path / "ray"     # its workers failed: No module named 'myteacher'
    assert main(["search", str(cfg), "--run-dir", str(ray_run), "--trials", "1",
                 "--no-baselines", "--backend", "ray", "--workers", "1", "--quiet"]) == 0
    (rec,) = [json.loads(line) for line in (ray_run / "records.jsonl").read_text().splitlines()]
    assert rec["state"] == "complete", rec["error"]
    capsys.readouterr()
    bad = write_config(tmp_path, TINY.replace("teacher: {widths: [16, 32], epochs: 3}",
                                              "teacher: {model: myteacher:load_teachr}"),
                       name="bad.yaml")
    assert main(["search", str(bad), "--run-dir", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:5 teacher.model" in err and "load_teachr" in err
    assert not (tmp_path / "bad").exists()                    # refused before the run dir
