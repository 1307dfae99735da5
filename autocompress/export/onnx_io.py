"""Export a torch model to one self-contained ONNX file and run it with onnxruntime (CPU).

Exporter choice (measured side by side, torch 2.13 / onnxruntime 1.32, 2-core CPU, on
MobileNetV2-like nets with depthwise convs, BatchNorm, ReLU6, residual adds, AdaptiveAvgPool2d
and Linear): the legacy TorchScript exporter (``dynamo=False``) takes 0.06-0.45 s (0.7 s for a
process's first export) and prints only a deprecation warning; the dynamo exporter takes
1.5-3.3 s, chats on stdout/stderr and writes a 7-50% larger file (per-node metadata). Both fold
BatchNorm into Conv and give the same parity (~1e-8) and ORT latency (within 1%).
``exporter="auto"`` therefore uses TorchScript and falls back to dynamo (``external_data=False``)
where TorchScript fails, or is gone in a later torch.

>>> path = export_onnx(model, torch.randn(1, 3, 32, 32), Path("model.onnx"))
>>> parity(model, path, torch.randn(8, 3, 32, 32)) < 1e-4
True
>>> measure_latency(path, np.zeros((1, 3, 32, 32), np.float32))["median_ms"]
0.11
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from autocompress.errors import ExportError

if TYPE_CHECKING:
    import torch

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_AXIS = "batch"
Exporter = Literal["auto", "torchscript", "dynamo"]

_INSTALL_HINT = "install the export extras: pip install onnx onnxruntime onnxscript"


def _require(module: str) -> Any:
    """Import ``module`` lazily, turning a missing package into a clear :class:`ExportError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(f"'{module}' is needed for ONNX export/inference", hint=_INSTALL_HINT) from exc


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Silence Python warnings, noisy loggers and stdout/stderr (also at fd level, where C++
    code and pre-bound logging handlers write). Yields a buffer filled with what was hidden,
    so a failure can still show it."""
    captured = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch.export", "onnxruntime")]
    levels = [lg.level for lg in loggers]
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                yield captured
        finally:
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
            sink.seek(0)
            captured.write(sink.read().decode(errors="replace"))


def _export_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A CPU, fp32, eval-mode deepcopy with every parametrization baked into a plain weight."""
    from autocompress.compress.quantize import bake

    return bake(copy.deepcopy(model)).cpu().float().eval()


# The ONNX opset of the exported files: the newest that TensorRT 8.5/8.6's parser takes
# (onnx-tensorrt 8.5/8.6 operators.md: "supports operators up to Opset 17"; JetPack 5 and
# 6.0). torch 2.13 writes 20 by default, which only TensorRT 10 documents; older converters
# and runtimes read 17 too, and per-channel Q/DQ needs only 13. The same graph and outputs.
DEPLOY_OPSET = 17


def opset_of(path: Path) -> int:
    """The default-domain ONNX opset of the file at ``path`` (torch's dynamo exporter, the
    fallback where TorchScript fails, writes 18 when asked for 17)."""
    onnx = _require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _export_once(net: torch.nn.Module, example: torch.Tensor, path: Path, opset: int,
                 dynamo: bool) -> None:
    import torch

    kwargs: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME],
                              "opset_version": opset, "dynamo": dynamo}
    if dynamo:
        kwargs.update(external_data=False, verbose=False,
                      dynamic_shapes=({0: torch.export.Dim(BATCH_AXIS)},))
    else:
        kwargs.update(dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
                      do_constant_folding=True)
    with torch.no_grad():
        torch.onnx.export(net, (example,), str(path), **kwargs)


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, *,
                opset: int = DEPLOY_OPSET, exporter: Exporter = "auto") -> Path:
    """Export ``model`` (a copy: CPU, fp32, eval, parametrizations baked) to one ``.onnx`` file
    at ONNX ``opset`` (default ``DEPLOY_OPSET``).

    Input ``"input"``, output ``"logits"``, dynamic batch axis ``"batch"``; no ``.onnx.data``
    side file; internal tensor names shortened (``compact.compact_onnx``). ``example`` is
    one input batch (its batch size does not matter).

    >>> export_onnx(net, torch.randn(1, 1, 8, 8), Path("out/model.onnx"))
    PosixPath('out/model.onnx')
    """
    _require("onnx")
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = _export_copy(model)
    example = example.detach().cpu().float()
    order = {"auto": (False, True), "torchscript": (False,), "dynamo": (True,)}[exporter]
    errors: list[str] = []
    for dynamo in order:
        if dynamo:
            _require("onnxscript")
        log = io.StringIO()
        try:
            with quiet() as log:
                _export_once(net, example, path, opset, dynamo)
        except Exception as exc:
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {type(exc).__name__}: {exc}\n"
                          f"{log.getvalue()[-2000:]}")
            continue
        side = path.with_name(path.name + ".data")
        if side.exists():  # never expected; keep the promise of one self-contained file
            proto = onnx.load(str(path))
            side.unlink()
            onnx.save_model(proto, str(path), save_as_external_data=False)
        from autocompress.export.compact import compact_onnx

        compact_onnx(path)
        return path
    raise ExportError(f"ONNX export of {type(model).__name__} failed", loc=str(path),
                      hint="; ".join(errors)[-4000:])


def make_session(path: Path | str, *, threads: int = 1) -> Any:
    """An ``onnxruntime.InferenceSession`` on CPU with ``threads`` intra-op threads and all
    graph optimizations on.

    >>> sess = make_session("model.onnx", threads=2)
    """
    ort = _require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_predict(path: Path | str, x: np.ndarray, *, threads: int = 1, batch: int = 256) -> np.ndarray:
    """Logits of the ONNX model at ``path`` for inputs ``x`` (N, ...), run in chunks of ``batch``.

    >>> onnx_predict("model.onnx", np.zeros((4, 1, 8, 8), np.float32)).shape
    (4, 10)
    """
    sess = make_session(path, threads=threads)
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(x, dtype=np.float32)
    outs = [sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)


def parity(model: torch.nn.Module, path: Path | str, x: torch.Tensor, *, batch: int = 256) -> float:
    """Max abs difference between torch (eval copy, CPU) and ORT logits on ``x``.

    >>> parity(net, "model.onnx", torch.randn(16, 1, 8, 8)) < 1e-4
    True
    """
    import torch

    x = x.detach().cpu().float()
    if len(x) == 0:
        return 0.0
    net = copy.deepcopy(model).cpu().float().eval()
    with torch.no_grad():
        ref = np.concatenate([net(x[i:i + batch]).numpy() for i in range(0, len(x), batch)])
    got = onnx_predict(path, x.numpy(), batch=batch)
    return float(np.max(np.abs(ref - got)))


def measure_latency(path: Path | str, example: np.ndarray, *, threads: int = 1, warmup: int = 20,
                    iters: int = 200) -> dict[str, Any]:
    """Time ``iters`` single runs of ``example`` (batch 1) after ``warmup`` runs.

    >>> measure_latency("model.onnx", np.zeros((1, 1, 8, 8), np.float32), iters=50)["median_ms"]
    0.0104
    """
    ort = _require("onnxruntime")
    sess = make_session(path, threads=threads)
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(example, dtype=np.float32)}
    run = sess.run
    for _ in range(warmup):
        run(None, feed)
    times = np.empty(iters, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(iters):
        t0 = clock()
        run(None, feed)
        times[i] = clock() - t0
    times /= 1e6  # ns -> ms
    return {
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "mean_ms": float(times.mean()),
        "std_ms": float(times.std(ddof=1)) if iters > 1 else 0.0,
        "iters": iters,
        "threads": threads,
        "ort_version": str(ort.__version__),
    }


def onnx_accuracy(path: Path | str, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the ONNX model on ``(x, y)``.

    >>> onnx_accuracy("model.onnx", x_test, y_test)
    0.98
    """
    if len(x) == 0:
        return 0.0
    pred = onnx_predict(path, x).argmax(axis=1)
    return float(np.mean(pred == np.asarray(y).reshape(-1)))


def stored_arrays(proto: Any) -> dict[str, np.ndarray]:
    """The tensors an ONNX ``proto`` stores, by name: its initializers and the ``value`` of
    its Constant nodes (the TorchScript exporter stores some biases that way)."""
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            out.update((node.output[0], numpy_helper.to_array(a.t))
                       for a in node.attribute if a.name == "value")
    return out


def count_onnx_params(path: Path | str) -> int:
    """Elements stored in the model's tensors: all initializers plus ``Constant`` node tensors
    (the TorchScript exporter stores some biases that way). Compare fp32 files with each other:
    an int8 QDQ file also counts its scales and zero points.

    >>> count_onnx_params("model.onnx")
    30330
    """
    onnx = _require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    total = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    for node in proto.graph.node:
        if node.op_type == "Constant":
            total += sum(int(np.prod(a.t.dims)) for a in node.attribute if a.name == "value")
    return total
