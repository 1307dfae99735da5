"""`autocompress predict`: ONNX and PyTorch models -> cost, and its user errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from autocompress.cli import main
from autocompress.graph import inspect_model
from autocompress.hardware import CostModel, LayerFormat
from autocompress.hardware.onnx_graph import onnx_to_graph


class ResNetLet(nn.Module):
    """conv(1->8) relu, conv(8->8), add residual, relu, GAP, linear(8->10)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.fc = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), \
            nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.c1(x))
        y = torch.relu(a + self.c2(a))
        return self.fc(y.mean(dim=(2, 3)))


def build() -> nn.Module:
    torch.manual_seed(0)
    return ResNetLet()


def _write_onnx(path: Path, net: nn.Module, dynamic_batch: bool = False) -> Path:
    """The same network written with onnx.helper (what the exporter emits, BN-free)."""
    p = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    inits = [numpy_helper.from_array(v, k) for k, v in p.items()]
    nodes = [helper.make_node("Conv", ["x", "c1.weight", "c1.bias"], ["t1"], pads=[1] * 4,
                              kernel_shape=[3, 3]),
             helper.make_node("Relu", ["t1"], ["a"]),
             helper.make_node("Conv", ["a", "c2.weight", "c2.bias"], ["t2"], pads=[1] * 4,
                              kernel_shape=[3, 3]),
             helper.make_node("Add", ["a", "t2"], ["t3"]), helper.make_node("Relu", ["t3"], ["y"]),
             helper.make_node("GlobalAveragePool", ["y"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["out"], transB=1)]
    batch = "N" if dynamic_batch else 1
    graph = helper.make_graph(nodes, "net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [batch, 1, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT,
                                                             [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_path(tmp_path: Path) -> Path:
    return _write_onnx(tmp_path / "net.onnx", build(), dynamic_batch=True)


def test_onnx_reader_agrees_with_the_torch_tracer(onnx_path: Path) -> None:
    net = build()
    g_onnx, formats = onnx_to_graph(onnx_path)
    g_torch = inspect_model(net.eval(), torch.zeros(1, 1, 8, 8))
    assert [layer.op for layer in g_onnx.layers] == ["conv2d", "conv2d", "add", "avgpool",
                                                     "linear"]
    assert g_onnx.params == g_torch.params == sum(v.numel() for v in net.state_dict().values())
    assert sum(layer.macs for layer in g_onnx.compressible) == \
        sum(layer.macs for layer in g_torch.compressible)
    assert all(f.weight_bits == 32 for f in formats.values())
    for profile in ("stm32f746", "pixel4"):
        a = CostModel(profile).estimate(g_onnx, formats)
        b = CostModel(profile).estimate(g_torch, default=LayerFormat(weight_bits=32, act_bits=32))
        assert a.peak_sram_kb == pytest.approx(b.peak_sram_kb)
        assert a.flash_kb == pytest.approx(b.flash_kb)
    # the residual input 'a' (8x8x8) stays live until the add: peak = a + conv2 out (+ input)
    est = CostModel("stm32f746").estimate(g_onnx, formats)
    assert est.peak_sram_kb * 1024 >= 2 * 8 * 8 * 8


def test_int8_qdq_file_is_costed_as_int8(onnx_path: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.it = iter([{"x": np.random.default_rng(i).random((1, 1, 8, 8), np.float32)}
                            for i in range(4)])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.it, None)

    fixed = _write_onnx(tmp_path / "fixed.onnx", build())
    int8 = tmp_path / "net.int8.onnx"
    q.quantize_static(str(fixed), str(int8), Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, weight_type=q.QuantType.QInt8)
    assert main(["predict", str(int8), "--profile", "pixel4", "--format", "fp32"]) == 2
    assert "--format: a quantized (QDQ) ONNX file's formats come from its QDQ nodes" in \
        capsys.readouterr().err
    g8, f8 = onnx_to_graph(int8)
    g32, f32 = onnx_to_graph(onnx_path)
    assert [layer.op for layer in g8.layers] == [layer.op for layer in g32.layers]
    assert {f8[layer.fqn].weight_bits for layer in g8.compressible} == {8}
    assert {f8[layer.fqn].act_bits for layer in g8.compressible} == {8}
    model = CostModel("pixel4")
    assert model.estimate(g8, f8).flash_kb < 0.5 * model.estimate(g32, f32).flash_kb
    assert model.estimate(g8, f8).latency_ms < model.estimate(g32, f32).latency_ms


def test_predict_json(onnx_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(onnx_path), "--profile", "stm32f746", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"latency_ms", "flash_kb", "peak_sram_kb", "provenance", "layers"} <= set(out)
    assert out["latency_ms"] == pytest.approx(sum(r["latency_ms"] for r in out["layers"]))
    assert out["provenance"] == {"analytic": 5}
    assert main(["predict", str(onnx_path), "--profile", "jetson_nano"]) == 0
    assert "provenance: analytic 5" in capsys.readouterr().out


def test_predict_torch_callable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hw_pred_nets.py").write_text(
        "from tests.hardware.test_hw_predict import build\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # pixel4's preferred format is fp32, like the fp32 ONNX file: the two readers must agree
    assert main(["predict", "hw_pred_nets:build", "--profile", "pixel4",
                 "--input-shape", "1,8,8", "--json"]) == 0
    torch_out = json.loads(capsys.readouterr().out)
    onnx_out = json.loads(json.dumps(
        __import__("autocompress.hardware.commands", fromlist=["predict"]).predict(
            str(_write_onnx(tmp_path / "n.onnx", build())), "pixel4")))
    for key in ("latency_ms", "flash_kb", "peak_sram_kb"):
        assert torch_out[key] == pytest.approx(onnx_out[key])
    assert torch_out["format"] == "fp32 (the profile's native)"
    assert onnx_out["format"] == "fp32 (the profile's native)"
    # jetson_nano's native format is fp16: --format fp32 costs the float model as it is
    args = ["predict", "hw_pred_nets:build", "--input-shape", "1,8,8", "--json"]
    assert main([*args, "--profile", "jetson_nano"]) == 0
    native = json.loads(capsys.readouterr().out)
    assert main([*args, "--profile", "jetson_nano", "--format", "fp32"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert native["format"].startswith("fp16") and fp32["format"] == "fp32"
    assert fp32["flash_kb"] > 1.9 * native["flash_kb"]
    assert native["note"] is None and fp32["note"] is None
    assert main([*args, "--profile", "stm32f746", "--format", "fp16"]) == 0   # int8 + fp32 MCU
    assert "fp16 is not a format stm32f746 runs" in json.loads(capsys.readouterr().out)["note"]
    # a float ONNX file too (it was costed fp32 on the Jetson, 80% over the published fp16
    # figure, and --format was refused for it)
    onnx_file = str(_write_onnx(tmp_path / "n.onnx", build()))
    assert main(["predict", onnx_file, "--profile", "jetson_nano", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] == pytest.approx(native["latency_ms"])
    assert main(["predict", onnx_file, "--profile", "jetson_nano", "--json", "--format",
                 "fp32"]) == 0
    assert json.loads(capsys.readouterr().out)["flash_kb"] == pytest.approx(fp32["flash_kb"])


def test_predict_a_config_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A ``model.builder`` of a config (build(input_shape, num_classes)) works as it is."""
    (tmp_path / "hw_cfg_nets.py").write_text(
        "from torch import nn\n"
        "def build_model(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Conv2d(input_shape[0], 4, 3), nn.Flatten(),\n"
        "                         nn.LazyLinear(num_classes))\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "hw_cfg_nets:build_model", "--profile", "stm32f746",
                 "--input-shape", "1,8,8", "--num-classes", "7", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [row["op"] for row in layers] == ["conv2d", "linear"]


@pytest.mark.parametrize("argv, expected", [
    (["predict", "{onnx}", "--profile", "stm32f999"], "--profile: unknown hardware profile"),
    (["predict", "no_such_module_xyz:build", "--profile", "stm32f999", "--input-shape",
      "1,8,8"], "unknown hardware profile"),                  # the profile is checked first
    (["predict", "missing.onnx", "--profile", "stm32f746"], "ONNX file not found"),
    (["predict", "no_such_module_xyz:build", "--profile", "stm32f746", "--input-shape", "1,8,8"],
     "cannot import module"),
    (["predict", "tests.hardware.test_hw_predict:build", "--profile", "stm32f746"],
     "needs --input-shape"),
    (["predict", "tests.hardware.test_hw_predict:build", "--profile", "stm32f746",
      "--input-shape", "3,x"], "bad --input-shape"),
    (["predict", "tests.hardware.test_hw_predict:build", "--profile", "stm32f746",
      "--input-shape", "3,8,8"], "tracing with input shape"),
    (["predict", "tests.hardware.test_hw_predict:ResNetLet.forward", "--profile", "stm32f746",
      "--input-shape", "1,8,8"], "no callable"),
    (["predict", "{onnx}", "--profile", "stm32f746", "--input-shape", "1,8"], "has 2 dims"),
    (["predict", "{onnx}", "--profile", "stm32f746", "--input-shape", "3,32,32"],
     "--input-shape 3,32,32 does not fit the model input 1,8,8"),      # was costed as given
    (["predict", "tests.hardware.test_hw_predict:build", "--profile", "stm32f746",
      "--input-shape", "1,8,8", "--format", "int9x"], "--format: 'int9x' is not a format name"),
    (["profile", "--out", "{tmp}/x.txt", "--quick"], "must end in .yaml"),
    (["profile", "--out", "{tmp}/prof/myhost.yaml", "--name", "host", "--quick"],
     "--name: the name 'host' differs from the file name 'myhost.yaml'"),
    (["profile", "--out", "{tmp}/host.yaml", "--threads", "0"], "--threads: must be >= 1, got 0"),
    (["predict", "../nets.py:build", "--profile", "stm32f746", "--input-shape", "1,8,8"],
     "expected a module name before the colon, got the file path '../nets.py' (write it as a "
     "dotted module name importable from the config's (or the working) folder, e.g. "
     "nets:build)"),
    # an absolute path: its hint read 'e.g. tmp.<...>.nets:build', importable from nowhere
    (["predict", "{cwd}/pkg/nets.py:build", "--profile", "stm32f746", "--input-shape", "1,8,8"],
     "e.g. pkg.nets:build)"),
    (["predict", "/elsewhere/nets.py:build", "--profile", "stm32f746", "--input-shape",
      "1,8,8"], "e.g. nets:build)"),
])
def test_user_errors_exit_2_with_one_line(argv: list[str], expected: str, onnx_path: Path,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(onnx=onnx_path, tmp=tmp_path, cwd=Path.cwd()) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("command", ["profile", "predict"])
def test_help_has_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "example:" in out and f"autocompress {command}" in out


def test_onnx_reader_follows_weights_through_identity_and_q_dq(onnx_path: Path,
                                                               tmp_path: Path) -> None:
    """torch.onnx.export shares equal initializers through Identity nodes (the zero biases of
    an untrained BN net): `predict` raised KeyError on the bias, and a weight reached that
    way was not costed as a conv. A float weight with Q -> DQ in the graph runs int8."""
    model = onnx.load(str(onnx_path))
    g = model.graph
    conv2 = next(n for n in g.node if n.op_type == "Conv" and n.input[1] == "c2.weight")
    gemm = next(n for n in g.node if n.op_type == "Gemm")
    g.node.insert(0, helper.make_node("Identity", ["c2.weight"], ["shared_w"]))
    g.node.insert(0, helper.make_node("Identity", ["c2.bias"], ["shared_b"]))
    conv2.input[1], conv2.input[2] = "shared_w", "shared_b"
    g.initializer.extend([numpy_helper.from_array(np.float32(0.01), "s"),
                          numpy_helper.from_array(np.int8(0), "z")])
    g.node.insert(0, helper.make_node("QuantizeLinear", ["fc.weight", "s", "z"], ["fc_q"]))
    g.node.insert(1, helper.make_node("DequantizeLinear", ["fc_q", "s", "z"], ["fc_dq"]))
    gemm.input[1] = "fc_dq"
    onnx.save(model, str(tmp_path / "shared.onnx"))
    plain, _ = onnx_to_graph(onnx_path)
    shared, formats = onnx_to_graph(tmp_path / "shared.onnx")
    assert [(x.op, x.params, x.bias, x.macs) for x in shared.layers] == \
        [(x.op, x.params, x.bias, x.macs) for x in plain.layers]
    fc = next(x for x in shared.layers if x.op == "linear")
    assert formats[fc.fqn].weight_bits == 8
    assert main(["predict", str(tmp_path / "shared.onnx"), "--profile", "stm32f746"]) == 0


def test_profiles_shows_and_validates_named_profiles(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`profiles NAME` was an argparse error: there was no way to check one profile."""
    assert main(["profiles", "stm32f746"]) == 0
    out = capsys.readouterr().out
    assert "320 KB SRAM, 1024 KB Flash" in out and "6 published figures" in out
    src = Path(__file__).parents[2] / "hardware_profiles" / "stm32f746.yaml"
    bad = tmp_path / "mine.yaml"
    bad.write_text(src.read_text().replace("name: stm32f746", "name: mine")
                   .replace("sram_kb: 320", "sram_kb: 0"))
    assert main(["profiles", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "mine.yaml:" in err and "device.sram_kb: must be > 0" in err and \
        len(err.splitlines()) == 1


def test_profiles_file_whose_name_differs_from_its_file_name_is_flagged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A search finds profiles by file name and refuses one whose ``name:`` differs; `profiles
    FILE` validated such a file silently."""
    src = Path(__file__).parents[2] / "hardware_profiles" / "stm32f746.yaml"
    other = tmp_path / "mine.yaml"
    other.write_text(src.read_text())      # name: stm32f746 in mine.yaml
    assert main(["profiles", str(other)]) == 0
    out = capsys.readouterr().out
    assert "differs from its file name" in out and "set name: mine" in out
    assert main(["profiles", "stm32f746"]) == 0
    assert "differs" not in capsys.readouterr().out


class _Tokens(nn.Module):
    """conv, then the pixels as tokens (flatten + transpose), a Linear over channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.mlp = nn.Linear(8, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        return self.head(self.mlp(tokens).mean(dim=1))


def test_unknown_shapes_are_a_one_line_error_not_a_traceback(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    """A dynamic-batch Reshape left the Linear's shapes unknown: IndexError in the LUT key
    (exit 1), and the export's int8 cost silently an error."""
    from autocompress.export.onnx_io import export_onnx

    path = export_onnx(_Tokens().eval(), torch.zeros(1, 1, 8, 8), tmp_path / "tok.onnx")
    assert main(["predict", str(path), "--profile", "pixel4"]) == 2
    err = capsys.readouterr().err
    assert "shapes around /mlp/MatMul are unknown" in err and "Traceback" not in err


def test_onnx_ops_with_weights_the_cost_model_does_not_know_are_named(tmp_path: Path) -> None:
    """A ConvTranspose cost 0.29 ms and 0 KB for 2,304 weights, silently; a GRU crashed
    `predict` with an IndexError (its sequence outputs have no batch-1 shape); a Conv1d was
    costed as a square conv2d (the PyTorch path refuses it)."""
    import torch
    from torch import nn

    from autocompress.hardware.commands import predict
    from autocompress.hardware.onnx_graph import onnx_to_graph

    class Gru(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up, self.gru = nn.ConvTranspose2d(1, 4, 2, stride=2), nn.GRU(32, 8)
            self.fc, self.conv1d = nn.Linear(8, 10), nn.Conv1d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.gru(self.conv1d(self.up(x).flatten(2))[0])
            return self.fc(out[-1:])

    path = tmp_path / "gru.onnx"
    torch.onnx.export(Gru().eval(), torch.zeros(1, 1, 4, 2), str(path), dynamo=False)
    graph, _ = onnx_to_graph(path)
    kinds = {k for _, k, _ in graph.uncosted}
    assert {"ConvTranspose", "GRU", "Conv"} <= kinds     # the Conv1d was costed as a 3x3 conv2d
    assert not [layer for layer in graph.layers if layer.op == "conv2d"]
    assert graph.uncosted_note() is not None
    out = predict(str(path), "stm32f746")
    assert out["note"].startswith("warning: ") and "GRU" in out["note"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--input-shape", "32,32,3"], "error: --input-shape: --input-shape '32,32,3' looks "
                                   "channels-last (H,W,C) (the models take C,H,W: 3,32,32)"),
    (["--input-shape", "49,10,1"], "error: --input-shape: --input-shape '49,10,1' looks "
                                   "channels-last (H,W,C) (the models take C,H,W: 1,49,10)"),
    (["--input-shape", "49,10"], "error: --input-shape: --input-shape '49,10' has two sizes "
                                 "(images are C,H,W: 1,49,10 for one channel (a vector input "
                                 "is one size))"),
    (["--input-shape", "3,32,32", "--num-classes", "0"], "error: --num-classes: expected a "
                                                         "class count >= 1, got 0")])
def test_a_channels_last_shape_or_no_class_is_refused(capsys, args, fragment):
    """32,32,3 costed a 32-input-channel model at 0.197 ms (0.443 ms as 3,32,32); a class
    count of 0 failed while tracing (ZeroDivisionError)."""
    assert main(["predict", "tests.hardware.test_hw_predict:build", "--profile", "pixel4",
                 *args]) == 2
    assert capsys.readouterr().err.strip() == fragment
