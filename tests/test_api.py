"""The Python API (``import autocompress as ac``) gets what the command line gets: checked
calls, a config changed in Python validated, a resume with the run's own config, the report."""
from __future__ import annotations

import multiprocessing
from dataclasses import replace

import pytest
import torch

import autocompress as ac
from autocompress.errors import AutocompressError, ConfigError, RunDirError

from .conftest import TINY, write_config


def _cfg(tmp_path, trials: int = 1):
    return ac.load_config(write_config(tmp_path, TINY.replace("trials: 3", f"trials: {trials}")))


def test_search_from_python_str_paths_report_short_repr_threads_given_back(tmp_path):
    torch.set_num_threads(2)
    res = ac.run_search(_cfg(tmp_path), str(tmp_path / "run"), quiet=True, baselines=False)
    assert torch.get_num_threads() == 2                         # search.threads is 1
    assert (tmp_path / "run" / "report" / "index.html") in res.report
    assert len(repr(res)) < 200 and "1 records" in repr(res)
    # resume: None continues with the run's own config; a changed config is refused
    again = ac.run_search(None, tmp_path / "run", quiet=True, resume=True, trials=2,
                          report=False)
    assert len(again.records) == 2 and again.report == ()
    changed = _cfg(tmp_path)
    changed = replace(changed, train=replace(changed.train, lr=0.5))
    with pytest.raises(RunDirError, match=r"differs from the run's at train.lr: 0.5"):
        ac.run_search(changed, tmp_path / "run", resume=True)
    faster = replace(changed.search, threads=2)            # speed may change on a resume
    ac.run_search(replace(_cfg(tmp_path), search=faster), tmp_path / "run", quiet=True,
                  resume=True, report=False)
    zero = replace(_cfg(tmp_path).search, threads=0)
    with pytest.raises(ConfigError, match=r"search\.threads"):    # checked on a resume too
        ac.run_search(replace(_cfg(tmp_path), search=zero), tmp_path / "run", resume=True)
    assert ac.report_run(str(tmp_path / "run"))                  # rewrites report/


@pytest.mark.parametrize("change, field", [
    (lambda c: replace(c, search=replace(c.search, sampler="tpee")), "search.sampler"),
    (lambda c: replace(c, search=replace(c.search, trials=-1)), "search.trials"),
    (lambda c: replace(c, hardware=replace(c.hardware, budgets={
        "stm32f746": {"max_latency": 5}})), "max_latency"),
])
def test_a_config_changed_in_python_is_checked_before_anything_runs(tmp_path, change, field):
    """They failed after the teacher trained (KeyError), or ran nothing without a word."""
    with pytest.raises(ConfigError, match=field):
        ac.run_search(change(_cfg(tmp_path)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs", [{"trials": 0}, {"trials": -2}, {"workers": 0}])
def test_trial_and_worker_counts_are_checked(tmp_path, kwargs):
    with pytest.raises(AutocompressError, match=f"{next(iter(kwargs))}: expected a whole"):
        ac.run_search(_cfg(tmp_path), tmp_path / "run", **kwargs)


def test_a_search_started_by_a_worker_importing_the_script_says_what_to_do(tmp_path,
                                                                            monkeypatch):
    """Without a main guard, a spawned worker re-ran the script's run_search: a RunDirError
    traceback, then the parent ran every trial itself."""
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(AutocompressError, match="__main__"):
        ac.run_search(_cfg(tmp_path), tmp_path / "run")


def test_the_public_names_are_listed_and_cost_a_plan_by_hand():
    assert {"run_search", "QuantConfig", "plan_formats", "AutocompressError"} <= set(dir(ac))
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.Flatten(),
                              torch.nn.Linear(288, 10)).eval()
    x = torch.zeros(1, 1, 8, 8)
    plan = ac.CompressionPlan(layers={"0": (ac.QuantConfig(bits=4),),
                                      "2": (ac.QuantConfig(bits=8),)})
    cm = ac.CostModel("stm32f746")
    graph = ac.inspect_model(ac.apply_plan(net, plan, x), x)
    packed = cm.estimate(graph, ac.plan_formats(plan, cm.profile.default_format))
    native = cm.estimate(graph)              # every layer int8, the MCU's own format
    assert packed.flash_kb < native.flash_kb                    # the 4-bit conv is packed


def test_apply_plan_refuses_what_would_silently_go_wrong():
    from autocompress.errors import ModelError

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8),
                              torch.nn.Flatten(), torch.nn.Linear(288, 10)).eval()
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ModelError, match=r"output from \(1, 10\) to \(1, 5\)"):
        ac.apply_plan(net, ac.CompressionPlan(layers={"3": (ac.PruneConfig(ratio=0.5),)}), x)
    with pytest.raises(ModelError, match="'1' is a BatchNorm2d"):
        ac.apply_plan(net, ac.CompressionPlan(layers={"1": (ac.PruneConfig(ratio=0.5),)}), x)
    with pytest.raises(ModelError, match="not a layer of the model"):
        ac.apply_plan(net, ac.CompressionPlan(layers={"4": (ac.QuantConfig(bits=8),)}), x)
    pruned = ac.apply_plan(net, ac.CompressionPlan(layers={"0": (ac.PruneConfig(ratio=0.5),)}),
                           x)
    assert pruned(x).shape == (1, 10) and pruned[0].out_channels == 4
    with pytest.raises(ValueError, match="did you mean 'per_channel'"):
        ac.CompressionPlan.from_dict({"layers": {"fc": [{"kind": "quant", "bits": 4,
                                                         "per_chanel": False}]}})


def test_a_resume_beside_a_live_search_of_the_run_dir_is_refused(tmp_path):
    """It marked the live run's running trials failed (and on Ray killed its processes)."""
    import fcntl
    import os

    ac.run_search(_cfg(tmp_path), tmp_path / "run", quiet=True, baselines=False, report=False)
    fd = os.open(tmp_path / "run" / ".lock", os.O_RDWR)   # what a live search's driver holds
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(RunDirError, match="another search is running"):
            ac.run_search(None, tmp_path / "run", resume=True, trials=2)
    finally:
        os.close(fd)
    assert len(ac.run_search(None, tmp_path / "run", quiet=True, resume=True, trials=2,
                             report=False).records) == 2


def test_apply_plan_checks_keep_what_the_search_does():
    """PTQ after the fine-tune names a low-rank pair (it stopped the search); a model whose
    output is a tuple is checked too; global layers left at ratio 0 stay dense."""
    from autocompress.compress import LowRankConfig
    from autocompress.compress.plan import CompressionPlan as Plan
    from autocompress.data import Split
    from autocompress.errors import ModelError
    from autocompress.train.finetune import compress_and_finetune
    from autocompress.train.fit import TrainSettings

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                              torch.nn.Flatten(), torch.nn.Linear(128, 10)).eval()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    plan = Plan(layers={"2": (LowRankConfig(rank_ratio=0.5), ac.QuantConfig(bits=8, mode="ptq"))})
    compress_and_finetune(net, plan, Split(x, y), TrainSettings(epochs=1), example=x[:1],
                          seed=0, calibration=x)

    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = net

        def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.body(v)
            return out, out.softmax(1)

    with pytest.raises(ModelError, match="changed the model's output"):
        ac.apply_plan(Two(), Plan(layers={"body.4": (ac.PruneConfig(ratio=0.5),)}), x[:1])
    glob = Plan(layers={"0": (ac.SparsityConfig(ratio=0.5, scope="global"),),
                        "2": (ac.SparsityConfig(ratio=0.0, scope="global"),)})
    assert glob.with_global_lead() == glob


def test_load_config_takes_a_mapping_or_one_string_of_overrides(tmp_path):
    path = write_config(tmp_path, TINY)
    cfg = ac.load_config(path, {"search.trials": 5, "teacher.widths": [8, 16]})
    assert (cfg.search.trials, cfg.teacher.widths) == (5, (8, 16))
    assert ac.load_config(path, "search.trials=7").search.trials == 7   # was read per letter
    with pytest.raises(ConfigError, match="did you mean 'trials'"):
        ac.load_config(path, {"search.trails": 5})


def test_a_module_called_twice_is_one_layer_to_compress_and_stored_once():
    """Its 2nd call (``shared#1``) was offered as a layer of its own: a rule `re:.*` stopped
    the search ('not a layer of the model'); costed, it ran in the device's default format
    and its weights were counted twice."""
    class Shared(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.shared = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.shared(self.shared(self.stem(x))).mean(dim=(2, 3)))

    x = torch.zeros(1, 1, 8, 8)
    graph = ac.inspect_model(Shared().eval(), x)
    assert [la.fqn for la in graph.compressible] == ["stem", "shared", "shared#1", "fc"]
    plan = ac.CompressionPlan(layers={"shared": (ac.QuantConfig(bits=4),)})
    est = ac.CostModel("pixel4").estimate(graph, ac.plan_formats(plan))
    first, again = (next(c for c in est.layers if c.fqn == n) for n in ("shared", "shared#1"))
    assert again.key == first.key and first.flash_kb > 0 and again.flash_kb == 0


def test_a_module_called_twice_calibrates_over_both_calls():
    """Its activation range was the last call's only: the first call's inputs (twice as
    large here) were clipped, in torch and in the int8 file alike."""
    from autocompress.compress.actquant import ATTR, calibrate_act_quant

    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = torch.nn.Linear(4, 4)
            torch.nn.init.eye_(self.shared.weight)
            torch.nn.init.zeros_(self.shared.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shared(self.shared(x) * 0.5)

    x = torch.rand(64, 4) * 2
    plan = ac.CompressionPlan(layers={"shared": (ac.QuantConfig(bits=8, act_bits=8),)})
    model = ac.apply_plan(Twice(), plan, x[:1])
    calibrate_act_quant(model, x)
    quant = getattr(model.shared, ATTR)
    assert float(quant.hi) == pytest.approx(float(x.max()), rel=0.02)   # the first call's
