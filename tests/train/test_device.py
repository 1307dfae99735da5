"""``train.device``: the checks run everywhere; the tests marked ``cuda`` run where torch sees
a GPU (skipped on the CPU-only CI machine)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from autocompress.compress import CompressionPlan, DistillConfig, QuantConfig, SparsityConfig
from autocompress.config import load_config
from autocompress.data import load_digits_bundle
from autocompress.errors import ConfigError
from autocompress.models import StudentArch, build_student
from autocompress.models.student import student_layer_names
from autocompress.models.teacher import TeacherCNN
from autocompress.search.ray_tune_parts import trial_gpus
from autocompress.search.rundir import load_run_config
from autocompress.search.session import check_device
from autocompress.train import TrainSettings, accuracy, fit
from autocompress.train.device import device_problem, placed, resolve_device
from autocompress.train.finetune import compress_and_finetune
from autocompress.train.teacher import _recipe
from tests.conftest import TINY, write_config

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CUDA", 0])
def test_a_device_that_is_none_of_the_forms_names_its_line(tmp_path, bad):
    cfg = write_config(tmp_path, TINY.replace("finetune_epochs: 1}",
                                              f"finetune_epochs: 1, device: {bad}}}"))
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.loc == f"{cfg}:6 train.device"
    assert "expected auto, cpu, cuda or cuda:N" in str(err.value)


@no_gpu
def test_auto_is_the_cpu_here_and_cuda_is_refused_saying_why():
    assert resolve_device("auto") == torch.device("cpu")
    assert device_problem("cpu") is None and device_problem("auto") is None
    problem = device_problem("cuda:1")
    assert problem is not None and problem.startswith("'cuda:1' needs a GPU, but ")
    with pytest.raises(RuntimeError, match=r"train\.device 'cuda' needs a GPU, but"):
        resolve_device("cuda")


@no_gpu
def test_a_gpu_this_machine_lacks_is_refused_and_a_resume_is_told_how_to_move(tmp_path):
    cfg = load_config(write_config(tmp_path, TINY), ["train.device=cuda"])
    with pytest.raises(ConfigError) as err:
        check_device(cfg, resume=False)
    assert err.value.loc.endswith("train.device") and "train.device: auto" in err.value.hint
    with pytest.raises(ConfigError) as err:
        check_device(cfg, resume=True)
    assert "resume with --set train.device=auto" in err.value.hint
    check_device(load_config(write_config(tmp_path, TINY)), resume=False)


def test_a_resume_may_move_to_another_device(tmp_path):
    from autocompress.search.entry import resume_config

    run = tmp_path / "run"
    cfg = load_config(write_config(tmp_path, TINY), ["train.device=cpu", "search.trials=1"])
    from autocompress.search.runner_optuna import run_search

    run_search(cfg, run, baselines=False, quiet=True, report=False)
    moved = resume_config(replace(load_run_config(run), train=replace(cfg.train,
                                                                      device="auto")), run)
    assert moved.train.device == "auto"


@no_gpu
def test_the_cli_refuses_a_gpu_it_lacks_before_the_run_dir(tmp_path):
    from tests.test_cli import assert_user_error, cli

    run = tmp_path / "run"
    res = cli("search", str(write_config(tmp_path, TINY)), "--run-dir", str(run),
              "--set", "train.device=cuda")
    assert_user_error(res, "config.yaml train.device: 'cuda' needs a GPU, but")
    assert not run.exists()


def test_the_teacher_cache_key_ignores_where_it_trains():
    assert _recipe(TrainSettings(epochs=3, device="cuda:0")) == _recipe(TrainSettings(epochs=3))
    assert "device" not in _recipe(TrainSettings(epochs=3))


def test_ray_gives_each_trial_a_share_of_the_gpus():
    assert trial_gpus("cpu", 1, 4.0) == 0.0
    assert trial_gpus("auto", 3, 1.0) == pytest.approx(1 / 3)
    assert trial_gpus("cuda:1", 2, 4.0) == 1.0
    assert trial_gpus("auto", 3, 2.0) == 0.5      # 2/3 of a GPU fits one per GPU: 1 idles
    with pytest.raises(ConfigError, match="the Ray cluster has none") as err:
        trial_gpus("cuda", 2, 0.0, loc="c.yaml train.device")
    assert err.value.loc == "c.yaml train.device"


def test_placed_leaves_a_module_where_it_is_without_a_device():
    net = torch.nn.Linear(2, 2)
    weight = net.weight
    with placed(None, net), placed("cpu", net, None):
        assert net.weight is weight
    assert net.weight is weight and net.weight.device.type == "cpu"


# --- the training path, on the CPU here and on a GPU where there is one -------------------

DEVICES = ["cpu", pytest.param("cuda", marks=cuda)]


@pytest.mark.parametrize("device", DEVICES)
def test_fit_trains_on_the_device_and_hands_back_a_cpu_model(device):
    data = load_digits_bundle(0)
    net = build_student(StudentArch(width_mult=0.5), in_channels=1, num_classes=10)
    weight = next(net.parameters())
    seen: list[str] = []
    fit(net, data.train, TrainSettings(epochs=2, device=device), seed=0,
        on_epoch=lambda _: seen.append(next(net.parameters()).device.type))
    assert seen == ["cpu", "cpu"]                       # hooks see the CPU model
    assert next(net.parameters()) is weight             # the same parameters, back on the CPU
    assert {p.device.type for p in net.parameters()} == {"cpu"}
    assert accuracy(net, data.val, device=device) > 0.5
    assert {p.device.type for p in net.parameters()} == {"cpu"}


@pytest.mark.parametrize("device", DEVICES)
def test_compression_with_features_qat_and_iterative_sparsity_on_the_device(device):
    data = load_digits_bundle(0)
    teacher = TeacherCNN(1, 10, (16, 32))
    fit(teacher, data.train, TrainSettings(epochs=2, device=device), seed=0)
    arch = StudentArch(width_mult=0.5)
    net = build_student(arch, in_channels=1, num_classes=10)
    fit(net, data.train, TrainSettings(epochs=1, device=device), seed=0)
    convs = [n for n in student_layer_names(arch) if n != "classifier"]
    plan = CompressionPlan(layers={n: (SparsityConfig(ratio=0.5, steps=2),   # QAT of inputs:
                                       QuantConfig(bits=8, mode="qat", act_bits=8,  # ranges
                                                   act_calib="percentile"))        # on device
                                   for n in convs},
                           distill=DistillConfig(alpha=0.5, feature_weight=0.1))
    out, info = compress_and_finetune(net, plan, data.train,
                                      TrainSettings(epochs=2, device=device),
                                      example=data.train.x[:1], seed=1, teacher=teacher,
                                      teacher_logits=torch.zeros(len(data.train), 10))
    assert info.sparsity_by_epoch[-1] == pytest.approx(0.5, abs=0.02)
    assert {p.device.type for p in (*out.parameters(), *teacher.parameters())} == {"cpu"}
    assert accuracy(out, data.val, device=device) > 0.3


@pytest.mark.parametrize("device", DEVICES)
def test_a_search_trains_on_the_device_and_says_so(tmp_path, capsys, device):
    from autocompress.search.runner_optuna import run_search

    cfg = load_config(write_config(tmp_path, TINY), [f"train.device={device}",
                                                     "search.early_stopping={rungs: [1]}",
                                                     "train.epochs=2"])
    result = run_search(cfg, tmp_path / "run", trials=3, report=False, baselines=False)
    assert f"training on {device}" in capsys.readouterr().out
    assert sum(r["state"] == "complete" for r in result.records) >= 2


@cuda
def test_ray_trials_train_on_their_share_of_the_gpu(tmp_path):
    from tests.test_cli import cli

    run = tmp_path / "run"
    res = cli("search", str(write_config(tmp_path, TINY)), "--run-dir", str(run),
              "--backend", "ray", "--workers", "2", "--no-baselines", "--trials", "2",
              "--set", "train.device=cuda", "--set", "search.threads=1")
    assert res.returncode == 0, res.stderr
    assert "training on cuda" in res.stdout
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert sum(r["state"] == "complete" for r in records) == 2
