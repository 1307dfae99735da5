"""export: a trial's model.pt that cannot be read is a one-line error (exit 2); a failed
export leaves nothing behind; a finished one has the usual permissions and says what it is."""
from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
import torch

from autocompress.cli import main
from tests.conftest import SPACE, TINY, write_config
from tests.test_errors import _in_tmp, finished_run, run_cli  # noqa: F401  (fixtures)


def test_unreadable_or_newer_weights_are_an_export_error(finished_run, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    weights = run / "trials" / "0" / "model.pt"
    packed = torch.load(weights, weights_only=True)
    torch.save({**packed, "version": packed["version"] + 1}, weights)
    line = run_cli(capsys, "export", str(run), "--trial", "0")
    assert "model.pt" in line and "cannot read the trial's saved weights" in line
    weights.write_bytes(b"not a checkpoint")
    line = run_cli(capsys, "export", str(run), "--trial", "0")
    assert "cannot read the trial's saved weights" in line


def _copy(finished_run, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


def test_a_corrupt_checkpoint_error_gives_no_unsafe_advice(finished_run, tmp_path, capsys):  # noqa: F811
    run = _copy(finished_run, tmp_path)
    (run / "trials" / "0" / "model.pt").write_bytes(b"not a checkpoint")
    line = run_cli(capsys, "export", str(run), "--trial", "0")
    assert "trials/0/model.pt" in line and "not a valid checkpoint for trial 0" in line
    assert "UnpicklingError: Unsupported operand" in line and "restore the file" in line
    assert "weights_only" not in line and "will likely succeed" not in line


def test_a_failed_export_leaves_no_temporary_folder(finished_run, tmp_path, capsys,  # noqa: F811
                                                   monkeypatch):
    import autocompress.export.run as export_mod

    run = _copy(finished_run, tmp_path)
    (run / "trials" / "0" / "model.pt").write_bytes(b"not a checkpoint")
    run_cli(capsys, "export", str(run), "--trial", "0")
    assert list((run / "export").iterdir()) == []

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_mod, "build_context", interrupted)   # Ctrl-C while loading data
    with pytest.raises(KeyboardInterrupt):
        export_mod.export_run(run, trial=1, quiet=True)
    assert list((run / "export").iterdir()) == []
    # a kill -9 leaves its staging folder: the next export of that trial removes it, but
    # not one another export is writing now (it holds the folder's lock)
    killed, busy = run / "export" / ".1.0badf00d", run / "export" / ".1.5ca1ab1e"
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"half")
    young = run / "export" / ".1.0000beef"       # just made by another export, not locked yet
    young.mkdir()
    busy.mkdir()
    for folder in (killed, busy):                # older than a minute
        os.utime(folder, (1e9, 1e9))
    from autocompress.export.staging import locked

    held = locked(busy)
    try:
        with pytest.raises(KeyboardInterrupt):
            export_mod.export_run(run, trial=1, quiet=True)
    finally:
        os.close(held)
    assert sorted((run / "export").iterdir()) == [young, busy]


def test_a_failed_int8_step_names_the_export_folder_not_the_removed_staging_one(
        finished_run, tmp_path, capsys, monkeypatch):  # noqa: F811
    import onnxruntime.quantization as q

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel")

    monkeypatch.setattr(q, "quantize_static", broken)
    run = _copy(finished_run, tmp_path)
    line = run_cli(capsys, "export", str(run), "--trial", "0")
    final = str(run / "export" / "0")
    assert "int8 quantization failed: RuntimeError: no kernel" in line
    assert f"{final}/model.onnx" in line and f"nothing was written to {final}" in line
    assert "/export/.0." not in line                        # the staging folder, gone now
    assert list((run / "export").iterdir()) == []


def test_export_folder_permissions_and_baseline_over_budget_lines(finished_run, tmp_path,  # noqa: F811
                                                                  capsys):
    run = _copy(finished_run, tmp_path)
    old = os.umask(0o027)
    try:
        assert main(["export", str(run), "--trial", "0"]) == 0
    finally:
        os.umask(old)
    out = run / "export" / "0"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750      # 0777 less the umask, not 0700
    printed = capsys.readouterr().out
    assert "trial 0 is the 'uniform-int8' baseline" in printed
    assert "over the run's budget: stm32f746.max_latency_ms 10.32 > 2" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["baseline"] == "uniform-int8"
    assert manifest["over_budget"] == [{"budget": "stm32f746.max_latency_ms",
                                        "value": pytest.approx(10.32, abs=0.01), "limit": 2.0}]
    # the int8 file is judged by the same budgets, as written
    (broken,) = manifest["int8_onnx_over_budget"]
    assert broken["budget"] == "stm32f746.max_latency_ms" and broken["limit"] == 2.0
    assert "model.int8.onnx breaks stm32f746.max_latency_ms" in printed
    # --quiet: the folder alone on stdout (for scripts), the same warnings on stderr
    assert main(["export", str(run), "--trial", "0", "--out", str(tmp_path / "q"),
                 "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == f"{tmp_path / 'q'}\n"
    assert quiet.err.splitlines() == [
        line.strip() for line in printed.splitlines()
        if line.strip().startswith(("budget", "warning"))] and len(quiet.err.splitlines()) == 2


def _zero_points(path):
    """The types and values of the activation QuantizeLinear nodes' zero points."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    zeros = [numpy_helper.to_array(inits[n.input[2]]) for n in model.graph.node
             if n.op_type == "QuantizeLinear" and n.input[0] not in inits and len(n.input) > 2]
    return {z.dtype.name for z in zeros}, {int(z) for z in zeros}


def test_signed_int8_activations_for_cmsis_nn(finished_run, tmp_path, capsys):  # noqa: F811
    """model.int8.onnx had uint8 activations unless --activations int8 was given, also for an
    MCU, whose runtimes (CMSIS-NN, TFLite Micro) run signed int8. The profile's form is now
    the default; --activations still chooses."""
    run = _copy(finished_run, tmp_path)
    assert main(["export", str(run), "--trial", "0"]) == 0
    out = run / "export" / "0"
    types, values = _zero_points(out / "model.int8.onnx")
    assert types == {"int8"} and values - {0}        # zero points: post-ReLU ranges shifted
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["onnx_int8_activation_type"] == "int8"
    assert manifest["onnx_int8_activation_type_from"] == manifest["exported_for"] == "stm32f746"
    assert manifest["accuracy"]["test_onnx_int8"] > 0.5
    # firmware with int8 I/O gets the input's and logits' parameters, signed like the rest
    io = manifest["onnx_int8_io"]
    assert io["input"]["dtype"] == io["output"]["dtype"] == "int8"
    assert io["input"]["shape"][1:] == [1, 8, 8] and io["input"]["scale"] > 0
    printed = capsys.readouterr().out
    assert "int8 i/o   input int8 q = x/" in printed
    assert "int8 form  int8 activations with zero points (TFLite, TFLite Micro, CMSIS-NN)" \
        in printed and "the stm32f746 profile's form" in printed
    assert main(["export", str(run), "--trial", "0", "--activations", "uint8",
                 "--out", str(tmp_path / "u8")]) == 0
    assert _zero_points(tmp_path / "u8" / "model.int8.onnx")[0] == {"uint8"}
    assert "as --activations asked" in capsys.readouterr().out


def test_a_jetson_export_takes_tensorrts_symmetric_int8(tmp_path, capsys):
    """The default model.int8.onnx (uint8 activations, int8 weight and int32 bias
    initializers under DequantizeLinear) is refused by TensorRT's ONNX parser, yet README told
    Jetson users to build it with trtexec --int8. ``--device`` picks the target, also with
    ``--trial``."""
    cfg = write_config(tmp_path, TINY.replace("profiles: [stm32f746]",
                                              "profiles: [stm32f746, jetson_orin_nano]")
                       .replace("trials: 3", "trials: 1"))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run), "--quiet", "--no-baselines"]) == 0
    assert main(["export", str(run), "--trial", "0", "--device", "jetson_orin_nano"]) == 0
    out = run / "export" / "0"
    assert _zero_points(out / "model.int8.onnx") == ({"int8"}, {0})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["onnx_int8_activation_type"] == "int8-symmetric"
    assert manifest["exported_for"] == "jetson_orin_nano"
    assert "the jetson_orin_nano profile's form" in capsys.readouterr().out


def test_a_layer_kept_float_is_named_as_a_float_island_of_the_int8_file(tmp_path, capsys):
    """The plan keeps head.conv at 32 bits: in model.int8.onnx it, its activation, the
    pooling and the flatten after it run in float, which an MCU's integer-only runtime
    cannot run; export said nothing."""
    from autocompress.export.islands import QUANTIZE_THEM, RUNS_THEM

    space = tmp_path / "space.yaml"
    space.write_text(SPACE.read_text().replace(
        "rules:\n", "rules:\n  - match: head.conv\n    quant.bits: 32\n", 1))
    cfg = write_config(tmp_path, TINY.replace("SPACE", str(space)).replace("trials: 3",
                                                                            "trials: 1"))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--run-dir", str(run), "--quiet", "--no-baselines"]) == 0
    assert main(["export", str(run), "--trial", "0"]) == 0
    manifest = json.loads((run / "export" / "0" / "manifest.json").read_text())
    assert manifest["weight_bits"]["head.conv"] == 32
    islands = manifest["int8_onnx_float_islands"]
    assert [(o["module"], o["op"]) for o in islands["ops"]][:1] == [("head.conv", "Conv")]
    assert {"GlobalAveragePool", "Flatten"} <= {o["op"] for o in islands["ops"]}
    assert "classifier" not in {o["module"] for o in islands["ops"]}      # int8 again
    assert islands["device_kind"] == "mcu"
    assert islands["note"] == f"{RUNS_THEM['mcu']}; {QUANTIZE_THEM['mcu']}"
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "in float" in ln]
    assert line.startswith(f"  warning    model.int8.onnx runs {len(islands['ops'])} ops in "
                           "float (the layers the plan keeps at 32 bits and the ops they "
                           "feed): head.conv (Conv), ")


def test_report_refuses_a_run_whose_config_changed(finished_run, tmp_path, capsys):  # noqa: F811
    """An edited budget (5 -> 4 ms) was drawn and listed as the run's; export and resume
    refused the same run."""
    run = _copy(finished_run, tmp_path)
    resolved = run / "config.resolved.yaml"
    resolved.write_text(resolved.read_text() + "# edited\n")
    line = run_cli(capsys, "report", str(run))
    assert "config.resolved.yaml changed since the run started" in line


@pytest.mark.parametrize("trial", [1, 3])         # the fp32 baseline; sparse-25 (pruned)
def test_an_export_folder_loads_back_as_the_model_it_measured(finished_run, tmp_path, capsys,  # noqa: F811
                                                             trial):
    """plan.json + model.pt did not rebuild the model: the channel alignment pruning rounded
    to was recorded nowhere, and the loader (bake) was not public."""
    import autocompress as ac
    from autocompress.data import load_digits_bundle
    from autocompress.train import accuracy

    run = _copy(finished_run, tmp_path)
    assert main(["export", str(run), "--trial", str(trial), "--out", str(tmp_path / "e")]) == 0
    printed = capsys.readouterr().out
    shutil.move(str(tmp_path / "e"), str(tmp_path / "moved"))        # the folder alone
    manifest = json.loads((tmp_path / "moved" / "manifest.json").read_text())
    assert manifest["rebuild"]["family"] == "mobilenet_v2"
    model = ac.load_export(tmp_path / "moved")
    assert not any("parametrizations" in k for k in model.state_dict())
    test = load_digits_bundle(0).test
    assert accuracy(model, test) == pytest.approx(manifest["accuracy"]["test_torch"], abs=1e-9)
    float_plan = not manifest["onnx_int8_weight_bits"]
    assert float_plan == (trial == 1)
    assert ("the plan quantizes no layer: model.int8.onnx is the float model" in printed) \
        == float_plan


def test_a_folder_that_is_no_export_is_named(tmp_path):
    import autocompress as ac
    from autocompress.errors import ExportError

    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ExportError) as err:
        ac.load_export(tmp_path)
    assert err.value.loc == str(tmp_path / "manifest.json") and "export the trial again" in \
        err.value.hint
