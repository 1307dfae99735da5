"""Latency fidelity of a measured profile: predicted vs measured on random candidate CNNs.

Generates N random CNNs (seed 20261125, unrelated to the profile's grid, which has no random
shapes) on 3x32x32, 3x24x24, 1x16x16 or 1x8x8 (digits) inputs: a stem conv, then 2-6 blocks
drawn from plain conv (k 1/3/5), depthwise-separable, inverted residual (expand x2-6, at most
256 channels like the shipped spaces' widest layer; a residual add when the shape allows) and
basic residual, with random widths 4..96 (as after pruning) and strides 1/2, then global pool
+ linear. Each is written as ONNX (Conv+ReLU, Add, GlobalAveragePool, Gemm: what the exporter
writes); every other one is quantized to int8 QDQ with
``onnxruntime.quantization.quantize_static`` (the export path). All are measured with
onnxruntime (1 thread, batch 1) in two passes over all models, each with ``time_run`` (the
profile's statistic: lowest of 4 round medians; measured = the faster pass), and predicted
by the profile through ``autocompress predict``'s ONNX reader.

    python benchmarks/latency_fidelity.py --profile hardware_profiles/host.yaml --n 200

Prints the fraction within ±10% / ±20%, the Spearman rank correlation, the median |error|,
the measurement's own spread (|pass 1 - pass 2| / measured) and the worst cases.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocompress.hardware.cost import CostModel
from autocompress.hardware.measure import session, time_run
from autocompress.hardware.onnx_graph import onnx_to_graph

SEED = 20261125


class Net:
    """A random CNN as an ONNX graph (fp32)."""

    def __init__(self, rng: np.random.Generator, in_shape: tuple[int, int, int]) -> None:
        import onnx

        self.onnx, self.rng, self.in_shape = onnx, rng, in_shape
        self.nodes: list = []
        self.inits: list = []
        self.shape = in_shape
        self.desc: list[str] = []
        self.n = 0

    def _name(self, stem: str) -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def conv(self, x: str, c_out: int, k: int, s: int = 1, dw: bool = False,
             relu: bool = True) -> str:
        c, h, _ = self.shape
        groups, c_out = (c, c) if dw else (1, c_out)
        w = self.rng.standard_normal((c_out, c // groups, k, k)).astype(np.float32)
        w *= np.sqrt(2.0 / (c // groups * k * k))
        names = [self._name("w"), self._name("b")]
        self.inits += [self.onnx.numpy_helper.from_array(w, names[0]),
                       self.onnx.numpy_helper.from_array(
                           (self.rng.standard_normal(c_out) * 0.05).astype(np.float32), names[1])]
        y = self._name("conv")
        self.nodes.append(self.onnx.helper.make_node(
            "Conv", [x, *names], [y], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4,
            group=groups))
        if relu:
            y2 = self._name("relu")
            self.nodes.append(self.onnx.helper.make_node("Relu", [y], [y2]))
            y = y2
        h_out = (h + 2 * (k // 2) - k) // s + 1
        self.shape = (c_out, h_out, h_out)
        return y

    def add(self, a: str, b: str) -> str:
        y = self._name("add")
        self.nodes.append(self.onnx.helper.make_node("Add", [a, b], [y]))
        return y

    def head(self, x: str, classes: int = 10) -> str:
        h = self.onnx.helper
        c = self.shape[0]
        p, f, y = self._name("gap"), self._name("flat"), "logits"
        w = (self.rng.standard_normal((classes, c)) / np.sqrt(c)).astype(np.float32)
        self.inits += [self.onnx.numpy_helper.from_array(w, "fc_w"),
                       self.onnx.numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b")]
        self.nodes += [h.make_node("GlobalAveragePool", [x], [p]), h.make_node("Flatten", [p], [f]),
                       h.make_node("Gemm", [f, "fc_w", "fc_b"], [y], transB=1)]
        return y

    def model(self):  # type: ignore[no-untyped-def]
        h, tp = self.onnx.helper, self.onnx.TensorProto
        graph = h.make_graph(self.nodes, "net",
                             [h.make_tensor_value_info("x", tp.FLOAT, [1, *self.in_shape])],
                             [h.make_tensor_value_info("logits", tp.FLOAT, [1, 10])], self.inits)
        m = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
        m.ir_version = 8
        return m


def random_net(rng: np.random.Generator) -> Net:
    in_shape = [(3, 32, 32), (3, 32, 32), (1, 16, 16), (3, 24, 24), (1, 8, 8)][rng.integers(5)]
    net = Net(rng, in_shape)
    width = lambda: int(rng.integers(4, 97))  # noqa: E731
    x = net.conv("x", width(), int(rng.choice([3, 5])), int(rng.choice([1, 2])))
    for _ in range(int(rng.integers(2, 7))):
        kind = rng.choice(["plain", "dwsep", "inverted", "basic"])
        s = int(rng.choice([1, 2])) if net.shape[1] >= 4 else 1
        c = net.shape[0]
        if kind == "plain":
            x = net.conv(x, width(), int(rng.choice([1, 3, 5])), s)
        elif kind == "dwsep":
            x = net.conv(net.conv(x, 0, int(rng.choice([3, 5])), s, dw=True), width(), 1)
        elif kind == "inverted":
            y = net.conv(x, min(256, int(c * rng.choice([2, 3, 4, 6]))), 1)
            y = net.conv(y, 0, int(rng.choice([3, 5])), s, dw=True)
            keep = s == 1 and rng.random() < 0.7
            y = net.conv(y, c if keep else width(), 1, relu=False)
            x = net.add(x, y) if keep else y
        else:
            y = net.conv(net.conv(x, c, 3, 1), c, 3, 1, relu=False)
            x = net.add(x, y)
        net.desc.append(f"{kind}{'/2' if s == 2 else ''}")
    net.head(x)
    return net


def quantize(fp32: Path, out: Path, in_shape: tuple[int, ...], rng: np.random.Generator) -> None:
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter([{"x": rng.uniform(0, 1, (1, *in_shape)).astype(np.float32)}
                               for _ in range(8)])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.items, None)

    q.quantize_static(str(fp32), str(out), Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, weight_type=q.QuantType.QInt8,
                      activation_type=q.QuantType.QUInt8,
                      extra_options={"WeightSymmetric": True})


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = (np.argsort(np.argsort(v)).astype(float) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="hardware_profiles/host.yaml")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--iters", type=int, default=100, help="runs per timing (4 rounds)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the per-model rows here")
    args = ap.parse_args()
    import onnx

    t0 = time.time()
    load_start = os.getloadavg()
    cost = CostModel(args.profile)
    rng = np.random.default_rng(SEED)
    nets = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):            # build, quantize, predict
            net = random_net(rng)
            path = Path(tmp) / f"net{i}.onnx"
            onnx.save(net.model(), str(path))
            if i % 2 == 1:
                quantize(path, path.with_suffix(".int8.onnx"), net.in_shape, rng)
                path = path.with_suffix(".int8.onnx")
            graph, formats = onnx_to_graph(path)
            est = cost.estimate(graph, formats)
            feed = {"x": rng.uniform(0, 1, (1, *net.in_shape)).astype(np.float32)}
            nets.append((net, session(onnx.load(str(path)), args.threads), feed, graph, est))
        passes = []
        for _ in range(2):                 # two timing passes over all models, minutes apart
            times = []
            for _net, sess, feed, _g, _e in nets:
                def run(sess=sess, feed=feed) -> None:  # type: ignore[no-untyped-def]
                    sess.run(None, feed)

                times.append(time_run(run, 20, args.iters).median_ms)
            passes.append(times)
    rows = []
    for i, (net, _s, _f, graph, est) in enumerate(nets):
        a, b = passes[0][i], passes[1][i]
        rows.append({"i": i, "fmt": "int8" if i % 2 else "fp32", "measured": min(a, b),
                     "spread": abs(a - b) / min(a, b), "predicted": est.latency_ms,
                     "desc": " ".join(net.desc), "input": "x".join(map(str, net.in_shape)),
                     "prov": dict(est.provenance), "macs": graph.macs})
    report(rows, cost.profile.name)
    end = os.getloadavg()
    print(f"({time.time() - t0:.0f} s; load averages (1/5/15 min) at the start "
          f"{'/'.join(f'{v:.2f}' for v in load_start)}, at the end "
          f"{'/'.join(f'{v:.2f}' for v in end)} on {os.cpu_count()} CPUs: other processes "
          "share the cores)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def report(rows: list[dict], profile: str) -> None:
    meas = np.array([r["measured"] for r in rows])
    pred = np.array([r["predicted"] for r in rows])
    err = pred / meas - 1
    print(f"latency fidelity: profile {profile}, {len(rows)} random CNNs (seed {SEED}), "
          f"onnxruntime 1 thread, batch 1")
    print(f"{'subset':<8} {'n':>4} {'within ±10%':>12} {'within ±20%':>12} {'Spearman':>9} "
          f"{'median |err|':>13} {'pass-to-pass spread: median, p90':>33}")
    for name in ("all", "fp32", "int8"):
        sel = np.array([name == "all" or r["fmt"] == name for r in rows])
        spread = [r["spread"] for r, s in zip(rows, sel, strict=True) if s]
        print(f"{name:<8} {sel.sum():>4} {np.mean(np.abs(err[sel]) <= 0.10):>12.1%} "
              f"{np.mean(np.abs(err[sel]) <= 0.20):>12.1%} {spearman(meas[sel], pred[sel]):>9.3f} "
              f"{np.median(np.abs(err[sel])):>13.1%} {np.median(spread):>24.1%}, "
              f"{np.percentile(spread, 90):.1%}")
    prov: dict[str, int] = {}
    for r in rows:
        for k, v in r["prov"].items():
            prov[k] = prov.get(k, 0) + v
    print("layer provenance:", ", ".join(f"{k} {v}" for k, v in sorted(prov.items())))
    print("worst cases:")
    for j in np.argsort(-np.abs(err))[:5]:
        r = rows[j]
        print(f"  #{r['i']:<4} {r['fmt']} in {r['input']:<8} {r['macs'] / 1e6:6.2f} MMAC  "
              f"measured {r['measured'] * 1e3:8.1f} us  predicted {r['predicted'] * 1e3:8.1f} us "
              f" ({err[j]:+.0%})  {r['desc']}")


if __name__ == "__main__":
    main()
