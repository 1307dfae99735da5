"""Build a ``measured`` profile for this machine: time every op of a grid with onnxruntime.

``autocompress profile --out hardware_profiles/host.yaml`` calls :func:`measure_profile`.
Each grid point (conv regular / depthwise / 1x1, linear, add, global pool, at the channel
counts and resolutions of the shipped search spaces' families) is built as its own one-op
ONNX model (``onnx_ops.op_model``), fp32 and int8 QDQ, and timed: ``warmup`` runs, then
``iters`` runs in 4 rounds: the lowest round median, and a robust std (1.4826 x MAD).
Convs also pay a layout/quantization boundary on their input and output that a chain of
layers pays once; it is measured per tensor shape, subtracted (``boundary_ms``) and stored
(``boundary|...`` keys: the cost model adds the model input's once). The int8 depthwise
kernels' channel blocks are read off the grid (``detect_int8_dw_blocks``).
The fixed cost of one ``session.run````
(timed on a one-element model) is subtracted from each entry and stored once as
``runtime.overhead_ms``; the cost model adds it back once per inference. LUT keys come
from ``keys.layer_key``, so pruned shapes between grid points are interpolated.

The same command works on any device with Python + onnxruntime (a phone under Termux, a
Jetson with onnxruntime-gpu's CPU provider): run it there, copy the YAML back.

>>> grid = grid_layers(quick=True)
>>> len(grid) < 150 and {layer.op for layer in grid} >= {"conv2d", "linear", "add", "avgpool"}
True
"""
from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from autocompress.graph import LayerInfo
from autocompress.hardware.keys import WEIGHTED_OPS, boundary_layer, layer_key
from autocompress.hardware.onnx_ops import op_model
from autocompress.hardware.spec import QUICK_MARK

# Grid (see module doc). Resolutions: 32/24/16-pixel inputs down to 2x2 after stride-2
# stages. Channels up to 256 (the widest expand conv of search_spaces/mobilenet_digits.yaml:
# 64 x expand 4): every multiple of 4 to 136 (ORT's kernels have per-multiple quirks and
# steps, e.g. an fp32 3x3 conv at 8x8 goes from 17.5 us at 64 channels to 29.6 us at 68,
# measured: so the fast path is tabulated densely), plus counts off the multiple of 4 (a
# slower, smooth path; see AlignSpec.fast_multiple) for pruned widths.
FULL = {"hw": (32, 24, 16, 12, 8, 6, 4, 3, 2),
        "channels": (*range(4, 137, 4), 144, 160, 192, 224, 256,
                     5, 6, 7, 9, 11, 14, 18, 23, 30, 38, 47, 58, 71, 90, 110, 150, 190, 250),
        "kernels": (1, 3, 5), "dw_kernels": (3, 5), "stem_in": (1, 3), "stem_hw": 8,
        "classes": (10,)}
QUICK = {"hw": (8, 4), "channels": (8, 16, 32, 6), "kernels": (1, 3), "dw_kernels": (3,),
         "stem_in": (1,), "stem_hw": 8, "classes": (10,), "skewed": ((8, 32),)}
# Off-diagonal (c_in, c_out) pairs for regular convs: a pruned conv's time depends on c_in and
# c_out separately (see _lut2d.py); 4x ratios both ways, on and off the fast multiple.
FULL["skewed"] = ((4, 16), (8, 32), (16, 64), (32, 128), (64, 256), (6, 23), (11, 47),
                  (23, 90), (47, 190), (8, 24), (24, 96), (12, 48), (48, 192))
MAX_MACS = 120_000_000     # skip grid points above this (MAC); larger layers use the analytic fit
WARMUP, ITERS = 10, 40     # runs per op (full); quick: 3, 15
MAD_TO_STD = 1.4826        # normal-consistent robust std from the median absolute deviation
ROUNDS = 4                 # timing rounds per op (see time_run)
PROBE_CHAIN = 5            # convs in the boundary probe's chain
FORMAT_PAIRS = (("fp32", "fp32"), ("int8", "int8"), ("int8", "fp32"))   # (weights, activations)
FAST_MULTIPLE = 4          # ORT CPU NCHWc/NHWC kernels need channel multiples of 4 (measured)
OVERHEAD_READINGS = 5      # session.run overhead readings; the lowest is kept


@dataclass(frozen=True, kw_only=True)
class Timing:
    median_ms: float
    std_ms: float
    n: int


def _conv(c_in: int, c_out: int, hw: int, k: int, s: int, groups: int = 1) -> LayerInfo:
    out_hw = (hw + 2 * (k // 2) - k) // s + 1
    params = c_out * (c_in // groups) * k * k
    return LayerInfo(fqn="op", op="conv2d", in_shape=(c_in, hw, hw),
                     out_shape=(c_out, out_hw, out_hw), kernel=k, stride=s, groups=groups,
                     params=params, bias=c_out, macs=params * out_hw * out_hw)


def grid_layers(quick: bool = False) -> list[LayerInfo]:
    """The ops timed by ``autocompress profile`` (``quick``: a small subset for tests)."""
    g = QUICK if quick else FULL
    out: list[LayerInfo] = []
    for hw in g["hw"]:
        strides = (1, 2) if hw >= 4 else (1,)
        for c in g["channels"]:
            out += [_conv(c, c, hw, k, s) for k in g["kernels"] for s in strides]
            out += [_conv(c, c, hw, k, s, groups=c) for k in g["dw_kernels"] for s in strides]
            if hw >= g["stem_hw"]:
                out += [_conv(c_in, c, hw, k, s) for c_in in g["stem_in"] for k in (3, 5)
                        for s in strides]
            out.append(LayerInfo(fqn="op", op="add", in_shape=(c, hw, hw), out_shape=(c, hw, hw),
                                 macs=c * hw * hw, inputs=("a", "b")))
            out.append(LayerInfo(fqn="op", op="avgpool", in_shape=(c, hw, hw), out_shape=(c,),
                                 kernel=hw, stride=hw, macs=c * hw * hw))
        for a, b in g["skewed"]:
            out += [_conv(ci, co, hw, k, s) for ci, co in ((a, b), (b, a)) for k in g["kernels"]
                    for s in strides]
    for c in g["channels"]:
        out += [LayerInfo(fqn="op", op="linear", in_shape=(c,), out_shape=(n,), params=c * n,
                          bias=n, macs=c * n) for n in g["classes"]]
    return [layer for layer in out if layer.macs <= MAX_MACS]


def session(model: Any, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def time_run(run: Callable[[], Any], warmup: int, iters: int, rounds: int = ROUNDS) -> Timing:
    """Time ``rounds`` x ``iters`` calls after ``warmup`` calls (ms).

    Statistic: the lowest of the per-round medians, which is robust both to single slow runs
    and to a round that shares the CPU with another process; std: 1.4826 x MAD of all runs.
    """
    for _ in range(warmup):
        run()
    per_round = max(1, iters // rounds)
    times = np.empty((rounds, per_round))
    clock = time.perf_counter_ns
    for r in range(rounds):
        for i in range(per_round):
            t0 = clock()
            run()
            times[r, i] = clock() - t0
    times /= 1e6
    best = float(np.median(times, axis=1).min())
    flat = times.ravel()
    return Timing(median_ms=best,
                  std_ms=float(MAD_TO_STD * np.median(np.abs(flat - np.median(flat)))),
                  n=flat.size)


def time_model(model: Any, feeds: dict[str, np.ndarray], threads: int, warmup: int,
               iters: int) -> Timing:
    sess = session(model, threads)
    return time_run(lambda: sess.run(None, feeds), warmup, iters)


def run_overhead_ms(threads: int, warmup: int, iters: int) -> float:
    """Time of ``session.run`` on a one-element Relu model: the fixed per-inference cost."""
    import onnx

    h = onnx.helper
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "empty",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return time_model(model, {"x": np.ones((1, 1), np.float32)}, threads, warmup,
                      iters * 3).median_ms


def boundary_ms(shape: tuple[int, ...], int8: bool, threads: int, warmup: int,
                iters: int, overhead_ms: float = 0.0) -> float:
    """Layout/quantization boundary cost of one tensor of ``shape`` in a one-op model.

    A lone conv pays a layout change (fp32 NCHWc reorder; int8 Quantize + NHWC transpose)
    on its input and output that a chain of convs pays only once. Timing a 1x1 depthwise
    conv alone (t1) and five times in a row (t5) gives its in-chain cost m = (t5 - t1) / 4,
    so t1 - m is both boundaries plus the run overhead. Returns one boundary. (A chain of
    two fits worse: on tiny tensors the second copy costs more than the later ones.)
    """
    layer = _conv(shape[0], shape[0], shape[1], 1, 1, groups=shape[0])
    t1, t5 = (time_model(*op_model(layer, int8=int8, repeat=r), threads, warmup,
                         iters).median_ms for r in (1, PROBE_CHAIN))
    marginal = (t5 - t1) / (PROBE_CHAIN - 1)
    return max(0.0, t1 - marginal - overhead_ms) / 2


def measure_entries(layers: Iterable[LayerInfo], *, threads: int = 1, warmup: int = WARMUP,
                    iters: int = ITERS, overhead_ms: float = 0.0,
                    progress: Callable[[int, int], None] | None = None,
                    ) -> dict[str, Timing]:
    """LUT key -> Timing for every layer in fp32, int8, and (conv/linear) weight-only int8
    (``w=int8|a=fp32``: ORT dequantizes the weights at every run, so it is not fp32 time):
    the one-op model's median minus ``overhead_ms`` and, for convs, minus the input and
    output boundary costs; for an int8 add, its marginal cost in a chain of adds. Every
    boundary measured is stored too (``boundary_layer``)."""
    todo = [(layer, w, a) for layer in layers for w, a in FORMAT_PAIRS
            if (a == w or layer.op in WEIGHTED_OPS) and layer.square]   # (1, k): no key
    bounds: dict[tuple[tuple[int, ...], bool], float] = {}
    out: dict[str, Timing] = {}
    for i, (layer, w_fmt, a_fmt) in enumerate(todo):
        int8 = a_fmt == "int8"          # the activation format sets the boundary kind
        model, feeds = op_model(layer, int8=w_fmt == "int8", act_int8=int8, seed=i)
        t = time_model(model, feeds, threads, warmup, iters)
        ms = t.median_ms - overhead_ms
        floor = 0.2 * t.median_ms        # guards the subtractions below against noise
        if layer.op == "add" and int8:
            # Alone, a QDQ add also quantizes both inputs and dequantizes its output; inside
            # an int8 graph it is one QLinearAdd on tensors already quantized. Its cost there
            # is the marginal cost of one more add in a chain (on tiny tensors a fraction of
            # the run overhead, so the floor leaves that out).
            chain = time_model(*op_model(layer, int8=True, repeat=PROBE_CHAIN, seed=i), threads,
                               warmup, iters).median_ms
            ms, floor = (chain - t.median_ms) / (PROBE_CHAIN - 1), 0.2 * ms
        if layer.op == "conv2d":
            for shape in (layer.in_shape, layer.out_shape):
                if (shape, int8) not in bounds:
                    bounds[shape, int8] = boundary_ms(shape, int8, threads, warmup, iters,
                                                      overhead_ms)
                ms -= bounds[shape, int8]
        out[layer_key(layer, w_fmt, a_fmt)] = Timing(
            median_ms=max(ms, floor), std_ms=t.std_ms, n=t.n)
        if progress is not None:
            progress(i + 1, len(todo))
    for (shape, int8), ms in bounds.items():
        fmt = "int8" if int8 else "fp32"
        out[layer_key(boundary_layer(shape), fmt, fmt)] = Timing(median_ms=max(ms, 1e-5),
                                                                 std_ms=0.0, n=iters)
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_profile(*, name: str = "host", threads: int = 1, quick: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Time the grid and return the profile as a YAML-ready dict (``profile_yaml`` writes it)."""
    import onnxruntime as ort

    warmup, iters = (3, 15) if quick else (WARMUP, ITERS)
    layers = grid_layers(quick)
    # Every entry has this subtracted, so one disturbed reading skews the whole LUT (a first
    # reading on an idle machine came out at 5.9 us against 3.3-3.5 us for the next eight):
    # take the lowest of several, the same statistic the entries use.
    overhead = min(run_overhead_ms(threads, warmup, iters) for _ in range(OVERHEAD_READINGS))
    entries = measure_entries(layers, threads=threads, warmup=warmup, iters=iters,
                              overhead_ms=overhead, progress=progress)
    from autocompress.hardware.grid_fit import (
        detect_fp32_block,
        detect_int8_dw_blocks,
        fit_analytic,
    )

    cpu = _cpu_name()
    blocks = detect_int8_dw_blocks(entries)
    dw_blocks: dict[str, int] = {"int8_dw_fast": blocks[0], "int8_dw_block": blocks[1]} \
        if blocks else {}
    fp32_block = detect_fp32_block(entries)
    if fp32_block:
        dw_blocks["fp32_block"] = fp32_block
    return {
        "version": 1, "name": name,
        "description": f"this machine ({platform.node()}), onnxruntime CPU, {threads} thread(s)"
                       + (f" {QUICK_MARK}" if quick else ""),
        "device": {"kind": "host", "soc": platform.machine(), "cpu": cpu},
        "runtime": {"name": "onnxruntime-cpu", "version": ort.__version__, "threads": threads,
                    "batch": 1, "overhead_ms": round(overhead, 5)},
        "formats": {"weights": ["fp32", "int8"], "activations": ["fp32", "int8"],
                    "sparse_kernels": False, "packed_weights": False,
                    "int8_activations": "uint8"},   # ORT stores int8
        "align": {"channels": 1, "fast_multiple": FAST_MULTIPLE, **dw_blocks},
        "measurement": {"method": "measured", "tool": "autocompress profile (one-op ONNX models)",
                        "warmup": warmup, "iters": iters,
                        "statistic": f"min over {ROUNDS} rounds of the round median",
                        "date": date.today().isoformat(),
                        "notes": f"{len(layers)} ops x fp32 / int8 QDQ / weight-only int8; "
                                 "std = 1.4826 MAD; session.run overhead subtracted, kept in "
                                 "runtime.overhead_ms; conv boundaries subtracted, kept as "
                                 "boundary entries"},
        "fallback": True,
        "analytic": {**fit_analytic(layers, entries), "rel_std": 0.3},
        "entries": {k: {"mean_ms": round(t.median_ms, 5), "std_ms": round(t.std_ms, 5),
                        "n": t.n} for k, t in entries.items()},
    }
