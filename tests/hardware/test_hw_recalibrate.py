"""`autocompress calibrate`: predicted vs measured latency of your own models, and a profile
rescaled to them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from autocompress.cli import main
from autocompress.errors import AutocompressError
from autocompress.export.onnx_io import export_onnx
from autocompress.hardware.commands import predict
from autocompress.hardware.profile import PROFILE_DIR, load_profile
from autocompress.hardware.recalibrate import (
    calibrate,
    fit_scale,
    leave_one_out,
    profile_document,
    read_measurements,
    scaled_profile,
)
from autocompress.yamlio import dump_yaml


def _net(width: int, depthwise: bool) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(width, width, 3, padding=1, groups=width if depthwise else 1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("models")
    return [export_onnx(_net(w, dw).eval(), torch.zeros(1, 1, 16, 16), folder / f"m{w}{dw}.onnx")
            for w, dw in ((8, False), (16, True), (32, False))]


def test_the_scale_is_the_median_ratio_and_leave_one_out_is_honest():
    assert fit_scale([1.0, 1.0, 1.0], [2.0, 2.0, 200.0]) == pytest.approx(2.0)   # an outlier
    loo = leave_one_out([1.0, 1.0, 1.0], [2.0, 2.0, 4.0])
    assert loo is not None and loo[2] == pytest.approx((2.0 - 4.0) / 4.0)   # fit on 2, 2
    assert loo[0] == pytest.approx((8 ** 0.5 - 2.0) / 2.0)   # the others: 2 and 4 (log median)
    assert leave_one_out([1.0], [2.0]) is None


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
def test_a_rescaled_profile_predicts_every_model_times_the_scale(tmp_path, models, name):
    source = load_profile(name)
    data = scaled_profile(profile_document(Path(str(source.path))), 1.7, name="mine", note="t")
    out = tmp_path / "mine.yaml"
    out.write_text(dump_yaml(data, sort_keys=False))
    mine = load_profile(out)
    assert mine.name == "mine" and not mine.calibration
    for model in models:
        for fmt in dict.fromkeys(("int8", "fp32", source.formats.weights[0])):
            if not source.supports(fmt):
                continue
            old = predict(str(model), name, fmt=fmt)["latency_ms"]
            new = predict(str(model), str(out), fmt=fmt)["latency_ms"]
            assert new == pytest.approx(1.7 * old, rel=1e-9), (model.name, fmt)


def test_a_measured_lut_profile_rescales_too(tmp_path, models):
    from autocompress.hardware.commands import profile_yaml
    from autocompress.hardware.measure import measure_profile

    host = tmp_path / "host.yaml"
    host.write_text(profile_yaml(measure_profile(name="host", threads=1, quick=True)))
    csv = tmp_path / "m.csv"
    before = [predict(str(m), str(host))["latency_ms"] for m in models]
    csv.write_text("model,measured_ms\n" + "".join(f"{m},{3 * b:.9f}\n"
                                                   for m, b in zip(models, before, strict=True)))
    result = calibrate(str(host), csv, tmp_path / "host3.yaml")
    assert result["scale"] == pytest.approx(3.0, rel=1e-6)
    assert all(abs(e) < 1e-5 for e in result["after"])     # the written file's predictions
    assert len(load_profile(tmp_path / "host3.yaml").entries) == len(load_profile(host).entries)


def test_the_command_prints_the_table_and_writes_a_profile_found_by_name(tmp_path, models,
                                                                         capsys):
    csv = tmp_path / "measured.csv"
    csv.write_text("model,measured_ms,format\n"
                   f"{models[0].name},2.0,\n{models[1].name},3.0,\n{models[2].name},40,fp32\n")
    for m in models:
        (tmp_path / m.name).write_bytes(m.read_bytes())      # paths relative to the CSV
    out = tmp_path / "profiles" / "my_mcu.yaml"
    assert main(["calibrate", "--profile", "stm32f746", "--measured", str(csv),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "scale " in text and "leave-one-out" in text and f"wrote {out}" in text
    assert load_profile("my_mcu", [out.parent]).name == "my_mcu"
    assert f"--profile {out} with predict" in text       # by name only a search finds it
    assert main(["predict", str(models[0]), "--profile", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "my_mcu"
    assert main(["calibrate", "--profile", "stm32f746", "--measured", str(csv), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] is None and [r["format"] for r in result["rows"]] == [None, None, "fp32"]
    assert result["rows"][2]["predicted_ms"] > result["rows"][0]["predicted_ms"]   # fp32 slower


@pytest.mark.parametrize(("body", "where", "what"), [
    ("model,ms\nx.onnx,1\n", ":1", "the header lacks measured_ms"),
    ("model,measured_ms\nMODEL,fast\n", ":2", "expected a positive number"),
    ("model,measured_ms\nMODEL,1\nMODEL,-2\n", ":3", "expected a positive number"),
    ("model,measured_ms\nnone.onnx,1\n", ":2", "no file"),
    ("model,measured_ms\nmodel.pt,1\n", ":2", "expected an ONNX file"),
    ("model,measured_ms\n", "measured.csv", "no measurements"),
    ("model,measured_ms\nMODEL,\xe9\n", "measured.csv", "cannot read the measurements"),
    # a decimal comma: 2,41 was read as 2 ms, the 41 dropped without a word
    ("model,measured_ms\nMODEL,2,41\n", ":2", "this line has 3 fields, the header 2"),
    ("model,measured_ms,format\nMODEL,2,41,\n", ":2", "this line has 4 fields, the header 3"),
])
def test_a_bad_measurements_file_names_its_line(tmp_path, models, body, where, what):
    csv = tmp_path / "measured.csv"
    csv.write_bytes(body.replace("MODEL", str(models[0])).encode("latin-1"))
    with pytest.raises(AutocompressError) as err:
        read_measurements(csv)
    assert err.value.loc.endswith(where) and what in err.value.raw_message


def test_cli_mistakes_exit_2_in_one_line(tmp_path, models, capsys):
    csv = tmp_path / "measured.csv"
    csv.write_text(f"model,measured_ms\n{models[0]},1\n")
    source = Path(str(load_profile("stm32f746").path))
    for args, fragment in ((["--profile", "stm32f999"], "stm32f999"),
                           (["--profile", "stm32f746", "--out", str(source)],
                            "--out is the profile being calibrated"),
                           (["--profile", "stm32f746", "--out", str(tmp_path / "p.txt")],
                            "must end in .yaml"),
                           (["--profile", "stm32f746", "--out", str(tmp_path / "pixel4.yaml")],
                            "would replace or shadow a shipped profile")):
        assert main(["calibrate", "--measured", str(csv), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0]
    (tmp_path / "bad.onnx").write_text("not onnx")
    csv.write_text("model,measured_ms\nbad.onnx,1\n")
    assert main(["calibrate", "--profile", "stm32f746", "--measured", str(csv)]) == 2
    assert f"{csv}:2" in capsys.readouterr().err


def test_a_spreadsheets_csv_and_a_bad_format_name(tmp_path, models):
    """Excel's "CSV UTF-8" starts with a byte-order mark: 'the header lacks model'; an
    unknown format name was a traceback."""
    csv = tmp_path / "measured.csv"
    csv.write_bytes("\ufeffmodel,measured_ms,format\n".encode() + f"{models[0]},1.5,\n".encode())
    assert [r.measured_ms for r in read_measurements(csv)] == [1.5]
    csv.write_text(f"model,measured_ms,format\n{models[0]},1.5,fp99\n")
    with pytest.raises(AutocompressError) as err:
        calibrate("stm32f746", csv)
    assert err.value.loc == f"{csv}:2" and "'fp99' is not a format name" in str(err.value)
    assert "format column" in str(err.value) and "--format" not in str(err.value)  # predict's


def test_a_format_given_for_a_qdq_file_is_said_once(tmp_path, models, capsys):
    """A QDQ file with a format in its row printed "formats come from its QDQ nodes" twice:
    in the message and again in the hint. The hint now says what to do instead."""
    import numpy as np

    from autocompress.export.quant_ort import quantize_int8

    qdq = quantize_int8(models[0], tmp_path / "m.int8.onnx",
                        np.random.default_rng(0).random((16, 1, 16, 16), dtype=np.float32))
    csv = tmp_path / "measured.csv"
    csv.write_text(f"model,measured_ms,format\n{qdq},2.0,fp32\n")
    assert main(["calibrate", "--profile", "stm32f746", "--measured", str(csv)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {csv}:2: m.int8.onnx: a quantized (QDQ) ONNX file's formats "
                           "come from its QDQ nodes")
    assert line.count("QDQ nodes") == 1 and line.count("formats come from") == 1
    assert "leave the row's format column empty; fp32 is for a float file" in line


@pytest.mark.parametrize("scale", [0.05, 40.0])
def test_a_measured_profile_keeps_its_precision_at_any_scale(tmp_path, models, scale):
    """LUT entries written with 6 decimals lost 0.2-0.5% at scales of 0.07 and below."""
    from autocompress.hardware.commands import profile_yaml
    from autocompress.hardware.measure import measure_profile

    host = tmp_path / "host.yaml"
    host.write_text(profile_yaml(measure_profile(name="host", threads=1, quick=True)))
    csv = tmp_path / "m.csv"
    before = [predict(str(m), str(host))["latency_ms"] for m in models]
    csv.write_text("model,measured_ms\n" + "".join(
        f"{m},{scale * b:.12f}\n" for m, b in zip(models, before, strict=True)))
    result = calibrate(str(host), csv, tmp_path / "scaled.yaml")
    assert all(abs(e) < 1e-4 for e in result["after"]), result["after"]
