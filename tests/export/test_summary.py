"""What export says beside its files: host profile missing, malformed or a --quick one, and
the summary lines for a baseline or an over-budget trial."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import autocompress.hardware.profile as profile_mod
from autocompress.export.summary import NO_HOST, host_prediction_error, print_summary
from autocompress.graph import inspect_model

MEASURED = {"fp32": {"median_ms": 0.02}, "int8": {"median_ms": 0.03}}


def _graph():
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 8 * 8, 10))
    return inspect_model(net.eval(), torch.zeros(1, 1, 8, 8))


def test_missing_and_malformed_host_profiles_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(profile_mod, "PROFILE_DIR", tmp_path)
    assert host_prediction_error(None, MEASURED) == {"note": NO_HOST}
    (tmp_path / "host.yaml").write_text("version: 1\nname: [host\n")
    check = host_prediction_error(None, MEASURED)
    assert "no host profile" not in check["note"]
    assert check["note"].startswith(f"malformed host profile {tmp_path / 'host.yaml'}:3: "
                                    "malformed YAML: expected ',' or ']'")
    assert check["note"].count("host.yaml") == 2      # where it is, and the fix
    assert check["note"].endswith(f"`autocompress profile --out {tmp_path / 'host.yaml'}`")
    assert check["malformed"] == str(tmp_path / "host.yaml")


def test_a_quick_host_profile_is_flagged(tmp_path, monkeypatch, capsys):
    src = (profile_mod.PROFILE_DIR / "stm32f746.yaml").read_text()
    assert "name: stm32f746\n" in src and "  STM32F746NG MCU" in src
    text = src.replace("name: stm32f746\n", "name: host\n")
    monkeypatch.setattr(profile_mod, "PROFILE_DIR", tmp_path)
    (tmp_path / "host.yaml").write_text(text)
    assert host_prediction_error(_graph(), MEASURED)["quick_grid"] is False
    (tmp_path / "host.yaml").write_text(text.replace("  STM32F746NG MCU", "  (quick grid) MCU"))
    check = host_prediction_error(_graph(), MEASURED)
    assert check["quick_grid"] is True and "fp32" in check
    print_summary(tmp_path, _manifest(host_predicted_vs_measured=check), "stm32f746")
    assert "host profile is a --quick smoke test" in capsys.readouterr().out


def test_a_signed_int8_file_is_not_compared_with_the_host_profile(tmp_path, monkeypatch,
                                                                    capsys):
    """A host profile times uint8 activations (ONNX Runtime's fast x86 kernels); an int8 file
    exported for an MCU or a Jetson runs signed ones, with other, slower kernels."""
    src = (profile_mod.PROFILE_DIR / "stm32f746.yaml").read_text()
    monkeypatch.setattr(profile_mod, "PROFILE_DIR", tmp_path)
    (tmp_path / "host.yaml").write_text(src.replace("name: stm32f746\n", "name: host\n"))
    assert "int8" in host_prediction_error(_graph(), MEASURED)
    check = host_prediction_error(_graph(), MEASURED, form="int8")
    assert "fp32" in check and "int8" not in check
    print_summary(tmp_path, _manifest(host_predicted_vs_measured=check,
                                      onnx_int8_activation_type="int8"), "stm32f746")
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "host model" in ln)
    assert "fp32 predicted" in line and "(int8 not compared: the host profile times uint8 " \
        "activations, this file has int8)" in line


def test_an_opset_above_the_deployed_one_is_a_warning(tmp_path, capsys):
    """torch's dynamo exporter, the fallback where TorchScript fails, writes opset 18 when
    asked for 17: TensorRT 8.x users must hear of it."""
    print_summary(tmp_path, _manifest(onnx_opset=17), "stm32f746")
    assert "are at opset" not in capsys.readouterr().out
    print_summary(tmp_path, _manifest(onnx_opset=18), "stm32f746")
    assert "warning    the ONNX files are at opset 18, not 17" in capsys.readouterr().out


def _manifest(**extra):
    cost = {"latency_ms": 1.0, "flash_kb": 1.0, "peak_sram_kb": 1.0}
    return {"trial": 5, "plan_id": "abc", "baseline": None, "over_budget": [],
            "accuracy": {"val_trial": 0.9, "test_torch": 0.9, "test_onnx_fp32": 0.9,
                         "test_onnx_int8": 0.9},
            "predicted": {"stm32f746": cost}, "host_latency_ms": MEASURED,
            "files": {"model.onnx": 1024, "model.int8.onnx": 512}, "params": 10,
            "parity_max_abs_diff": 0.0, "host_predicted_vs_measured": {"note": NO_HOST},
            **extra}


def test_summary_lines_only_when_they_apply(tmp_path, capsys):
    print_summary(tmp_path, _manifest(), "stm32f746")
    plain = capsys.readouterr().out
    assert "baseline" not in plain and "budget" not in plain and "--quick" not in plain
    print_summary(tmp_path, _manifest(baseline="fp32", over_budget=[
        {"budget": "stm32f746.max_latency_ms", "value": 10.3, "limit": 2.0},
        {"budget": "pixel4.max_flash_kb", "over_by": 4.0}]), "stm32f746")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("  baseline   trial 5 is the 'fp32' baseline, a reference point, not a "
                        "searched plan")
    assert lines[2] == ("  budget     over the run's budget: stm32f746.max_latency_ms 10.3 > 2, "
                        "pixel4.max_flash_kb over by 4")


def test_an_int8_file_over_the_flash_budget_is_said(tmp_path, capsys):
    """A 4-bit plan costed 10.8 KB packed, within the run's 20 KB; model.int8.onnx (8-bit
    weights) costs 20.1 KB, and export said nothing."""
    print_summary(tmp_path, _manifest(int8_onnx_over_budget=[
        {"budget": "stm32f746.max_flash_kb", "value": 20.1, "limit": 20.0}]), "stm32f746")
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "model.int8.onnx breaks" in ln]
    assert line.startswith("  warning    model.int8.onnx breaks stm32f746.max_flash_kb 20.1 > 20 ")


@pytest.mark.parametrize(("bits", "in_file", "reason"), [
    ({"fc": 4, "conv": 8}, {"fc": 8, "conv": 8}, "(it stores sub-8-bit weights at 8 bits"),
    ({"fc": 8}, {"fc": 8}, "(as the plan does)"),
    ({"fc": 32}, {}, "(as the float model it is)")])
def test_the_int8_files_warning_gives_the_plans_own_reason(tmp_path, capsys, bits, in_file,
                                                           reason):
    """An fp32 baseline's model.int8.onnx (no layer quantized) was said to store sub-8-bit
    weights at 8 bits."""
    print_summary(tmp_path, _manifest(weight_bits=bits, onnx_int8_weight_bits=in_file,
                                      int8_onnx_over_budget=[{"budget": "stm32f746.max_flash_kb",
                                                              "value": 30.0, "limit": 20.0}]),
                  "stm32f746")
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if "model.int8.onnx breaks" in ln]
    assert line.endswith(reason) or reason in line
    assert ("int8 file  the plan quantizes no layer" in out) == (not in_file)


def test_every_profile_of_the_run_gets_its_predicted_line_the_chosen_one_first(tmp_path,
                                                                               capsys):
    mcu = {"latency_ms": 1.8, "flash_kb": 18.0, "peak_sram_kb": 3.0}
    phone = {"latency_ms": 0.0534, "flash_kb": 20.0, "peak_sram_kb": 3.5}
    print_summary(tmp_path, _manifest(predicted={"stm32f746": mcu, "pixel4": phone}), "pixel4")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.split()[1:2] == ["predicted"]]
    assert lines == ["  pixel4     predicted 0.0534 ms, flash 20.0 KB, peak SRAM 3.5 KB",
                     "  stm32f746  predicted 1.8 ms, flash 18.0 KB, peak SRAM 3.0 KB"]


def test_phone_latencies_keep_their_digits_and_one_image_is_no_int8_warning(tmp_path, capsys):
    """A 0.0534 ms phone latency is not printed as 0.05; an int8 file that misses one more
    test image of 200 (0.795 in float32 vs 0.79) loses 0.5 points: no warning."""
    acc = {"val_trial": 0.9, "test_torch": float(torch.tensor(159 / 200)),
           "test_onnx_fp32": 0.795, "test_onnx_int8": 158 / 200}
    cost = {"latency_ms": 0.0534, "flash_kb": 13.0, "peak_sram_kb": 3.0}
    print_summary(tmp_path, _manifest(accuracy=acc, predicted={"pixel4": cost},
                                      over_budget=[{"budget": "pixel4.max_latency_ms",
                                                    "value": 0.0534, "limit": 0.0515}]),
                  "pixel4")
    out = capsys.readouterr().out
    assert "pixel4.max_latency_ms 0.0534 > 0.0515" in out
    assert "pixel4     predicted 0.0534 ms" in out and "WARNING" not in out
    print_summary(tmp_path, _manifest(accuracy={**acc, "test_onnx_int8": 157 / 200}), "stm32f746")
    assert "WARNING: int8 ONNX loses 1.0 points of test accuracy" in capsys.readouterr().out


def test_the_host_profile_is_found_where_the_note_says_to_write_it(tmp_path, monkeypatch):
    """`autocompress profile --out hardware_profiles/host.yaml` run in your own project
    folder (not the repo's) is the profile the export then compares against."""
    src = (profile_mod.PROFILE_DIR / "stm32f746.yaml").read_text()
    monkeypatch.setattr(profile_mod, "PROFILE_DIR", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    assert host_prediction_error(_graph(), MEASURED) == {"note": NO_HOST}
    (tmp_path / "hardware_profiles").mkdir()
    (tmp_path / "hardware_profiles" / "host.yaml").write_text(
        src.replace("name: stm32f746\n", "name: host\n"))
    assert "fp32" in host_prediction_error(_graph(), MEASURED)


def test_the_host_profile_is_found_by_name_where_the_profile_command_writes_it(
        tmp_path, monkeypatch, capsys):
    """`profile --out hardware_profiles/host.yaml` then `predict --profile host` in the same
    folder said 'unknown profile'; a run costed on its own host profile exported with 'no
    host profile'. Both find it now, and predict warns that a --quick one is rough."""
    from autocompress.cli import main

    src = (profile_mod.PROFILE_DIR / "stm32f746.yaml").read_text()
    host = src.replace("name: stm32f746\n", "name: host\n").replace("  STM32F746NG MCU",
                                                                     "  (quick grid) MCU")
    (tmp_path / "hardware_profiles").mkdir()
    (tmp_path / "hardware_profiles" / "host.yaml").write_text(host)
    (tmp_path / "run" / "profiles").mkdir(parents=True)
    (tmp_path / "run" / "profiles" / "host.yaml").write_text(host)
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "tests.export.test_summary:_net", "--profile", "host",
                 "--input-shape", "1,8,8"]) == 0
    out = capsys.readouterr().out
    assert "on host:" in out and "warning: profile 'host' is a --quick smoke test" in out
    (tmp_path / "hardware_profiles" / "host.yaml").unlink()
    assert host_prediction_error(_graph(), MEASURED) == {"note": NO_HOST}
    run_dirs = [tmp_path / "run", tmp_path / "run" / "profiles"]
    assert host_prediction_error(_graph(), MEASURED, run_dirs)["quick_grid"] is True


def _net():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 10))


def test_the_host_check_costs_the_int8_file_as_written(tmp_path, monkeypatch):
    """The int8 file keeps a plan's float layers float; the host check predicted it with
    every layer int8 (for the fp32 baseline: an all-int8 prediction against a float file)."""
    import pytest

    from autocompress.export.onnx_io import export_onnx
    from autocompress.export.quant_ort import quantize_int8

    src = (profile_mod.PROFILE_DIR / "pixel4.yaml").read_text()
    (tmp_path / "host.yaml").write_text(src.replace("name: pixel4\n", "name: host\n"))
    net = _net().eval()
    x = torch.rand(16, 1, 8, 8)
    fp32 = export_onnx(net, x[:1], tmp_path / "m.onnx")
    all_float = quantize_int8(fp32, tmp_path / "f.int8.onnx", x.numpy(), keep_float=[True] * 2)
    int8 = quantize_int8(fp32, tmp_path / "q.int8.onnx", x.numpy())
    graph = inspect_model(net, x[:1])
    plain = host_prediction_error(graph, MEASURED, [tmp_path])
    as_written = host_prediction_error(graph, MEASURED, [tmp_path], all_float)
    assert as_written["fp32"] == plain["fp32"]
    assert as_written["int8"]["predicted_ms"] == pytest.approx(plain["fp32"]["predicted_ms"])
    assert plain["int8"]["predicted_ms"] < 0.95 * plain["fp32"]["predicted_ms"]
    quantized = host_prediction_error(graph, MEASURED, [tmp_path], int8)
    assert quantized["int8"]["predicted_ms"] == pytest.approx(plain["int8"]["predicted_ms"])


def test_a_model_that_costs_otherwise_than_at_the_search_is_flagged():
    """An edited model module changed what export built (0.067 test accuracy, 10.27 ms against
    9.418 recorded) without a word."""
    from autocompress.export.summary import cost_drift

    m = {"predicted": {"mcu": {"latency_ms": 10.27, "flash_kb": 20.0, "peak_sram_kb": 3.0},
                       "phone": {"latency_ms": 0.5, "flash_kb": 20.0, "peak_sram_kb": 3.0}},
         "predicted_at_search": {"mcu": {"latency_ms": 9.418, "flash_kb": 20.0},
                                 "phone": {"latency_ms": 0.5001, "flash_kb": 20.0}}}
    assert cost_drift(m) == "mcu 10.27 ms now, 9.418 ms then"        # phone: within 0.5%
    m["predicted"]["mcu"]["latency_ms"] = 9.418
    assert cost_drift(m) == ""


def test_with_repeated_trainings_the_summary_says_which_accuracy_is_which(tmp_path, capsys):
    """With train.repeats: 2 it printed the mean (0.4750) as if the exported weights had it;
    they are the best training's (0.539)."""
    m = _manifest()
    m["accuracy"] |= {"val_trial": 0.475, "val_trainings": 2, "val_exported_weights": 0.539}
    print_summary(tmp_path, m, "stm32f746")
    assert "val (search) 0.4750 (mean of 2 trainings; these weights 0.5390)" \
        in capsys.readouterr().out


def test_the_int8_files_io_quantization_gets_one_line(tmp_path, capsys):
    io = {"input": {"name": "input", "shape": ["batch", 1, 8, 8], "layout": "NCHW",
                    "dtype": "uint8", "scale": 1 / 255, "zero_point": 0,
                    "float_range": [0.0, 1.0]},
          "output": {"name": "logits", "shape": ["batch", 10], "float": True}}
    print_summary(tmp_path, _manifest(onnx_int8_io=io), "stm32f746")
    line = [ln for ln in capsys.readouterr().out.splitlines() if "int8 i/o" in ln]
    assert line == ["  int8 i/o   input uint8 q = x/0.00392157 + 0 (covers 0..1); logits float"]
    print_summary(tmp_path, _manifest(), "stm32f746")          # an export made before it
    assert "int8 i/o" not in capsys.readouterr().out
    # signed codes: negative zero points read "- 128", not "+ -128"
    io = {"input": {**io["input"], "dtype": "int8", "zero_point": -128},
          "output": {"name": "logits", "dtype": "int8", "scale": 0.08, "zero_point": -25,
                     "float_range": [-8.2, 12.2]}}
    print_summary(tmp_path, _manifest(onnx_int8_io=io), "stm32f746")
    line = [ln for ln in capsys.readouterr().out.splitlines() if "int8 i/o" in ln]
    assert line == ["  int8 i/o   input int8 q = x/0.00392157 - 128 (covers 0..1); "
                    "logits int8 x = (q + 25)*0.08 (covers -8.2..12.2)"]


def test_a_profile_name_longer_than_the_label_column_keeps_the_columns(tmp_path, capsys):
    orin = {"latency_ms": 0.12, "flash_kb": 20.0, "peak_sram_kb": 3.5}
    print_summary(tmp_path, _manifest(predicted={"jetson_orin_nano": orin}), "jetson_orin_nano")
    out = capsys.readouterr().out.splitlines()
    at = out.index("  jetson_orin_nano")
    assert out[at + 1] == "             predicted 0.12 ms, flash 20.0 KB, peak SRAM 3.5 KB"


def test_the_float_islands_of_the_int8_file_are_said_per_target(tmp_path, capsys):
    """A plan keeping a layer at 32 bits leaves it and the ops after it float in
    model.int8.onnx: on an MCU target a warning (also under --quiet), elsewhere a note."""
    from autocompress.export.islands import RUNS_THEM, RUNS_THEM_ELSEWHERE

    ops = [{"node": "/head/conv/Conv", "op": "Conv", "module": "head.conv"},
           {"node": "/pool/GlobalAveragePool", "op": "GlobalAveragePool", "module": "pool"}]
    bits = {"stem.conv": 8, "head.conv": 32, "classifier": 8}
    in_file = {"stem.conv": 8, "classifier": 8}
    mcu = {"ops": ops, "device_kind": "mcu", "note": RUNS_THEM["mcu"]}
    print_summary(tmp_path, _manifest(weight_bits=bits, onnx_int8_weight_bits=in_file,
                                      int8_onnx_float_islands=mcu), "stm32f746")
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "in float" in ln]
    assert line == ("  warning    model.int8.onnx runs 2 ops in float (the layers the plan keeps "
                    "at 32 bits and the ops they feed): head.conv (Conv), pool "
                    f"(GlobalAveragePool); {RUNS_THEM['mcu']}")
    print_summary(tmp_path, _manifest(weight_bits=bits, onnx_int8_weight_bits=in_file,
                                      int8_onnx_float_islands=mcu), "stm32f746",
                  warnings_only=True)
    assert "runs 2 ops in float" in capsys.readouterr().err
    host = {"ops": ops * 5, "device_kind": "host", "note": RUNS_THEM_ELSEWHERE}
    print_summary(tmp_path, _manifest(weight_bits=bits, onnx_int8_weight_bits=in_file,
                                      int8_onnx_float_islands=host), "stm32f746")
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "in float" in ln]
    assert line.startswith("  float ops  model.int8.onnx runs 10 ops in float")
    assert ", +2 more (manifest: int8_onnx_float_islands); ONNX Runtime runs them" in line
    # none, or the whole file float (said by its own line): no islands line
    for islands, weights in (({"ops": [], "device_kind": "mcu", "note": ""}, in_file),
                             (mcu, {})):
        print_summary(tmp_path, _manifest(weight_bits=bits, onnx_int8_weight_bits=weights,
                                          int8_onnx_float_islands=islands), "stm32f746")
        assert "in float" not in capsys.readouterr().out
