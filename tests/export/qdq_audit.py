"""Audit helpers for ``model.int8.onnx``: a pure-numpy integer reference and TensorRT's rules
(its float islands, the nodes an integer-only runtime would run in float, are the package's
``autocompress.export.islands.float_islands``, which export reports).

``integer_reference(proto, x)``: runs an int8/uint8 QDQ file the way an integer runtime does
(a float island, a layer the plan keeps float, runs float as in a hybrid runtime):
codes in, int32 accumulation (weights int8, bias int32 at s_in * s_w), requantization to the
next Q's scale/zero point with round-half-to-even, saturating; Add, GlobalAveragePool and
Flatten on codes. Returns the output codes' dequantized logits.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from autocompress.export.islands import QDQ
from autocompress.export.onnx_io import stored_arrays as _consts


def _rq(acc: np.ndarray, mult: np.ndarray, zp: int, dtype: np.dtype) -> np.ndarray:
    """Requantize int32 accumulators by a real multiplier (per channel allowed), add the
    zero point, saturate (round half to even, as QuantizeLinear does)."""
    info = np.iinfo(dtype)
    q = np.rint(acc.astype(np.float64) * mult) + zp
    return np.clip(q, info.min, info.max).astype(np.int32)


def _conv_int(x: np.ndarray, w: np.ndarray, group: int, pads: list[int], strides: list[int],
              dtype: Any = np.int64) -> np.ndarray:
    """int32 NCHW convolution of (zero-point-corrected) int32 codes by int8 weights."""
    n = x.shape[0]
    m, cg, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (x.shape[2] - kh) // strides[0] + 1
    ow = (x.shape[3] - kw) // strides[1] + 1
    out = np.zeros((n, m, oh, ow), dtype)
    mg = m // group
    for gi in range(group):
        xs = x[:, gi * cg:(gi + 1) * cg]
        ws = w[gi * mg:(gi + 1) * mg].astype(dtype)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + strides[0] * oh:strides[0], j:j + strides[1] * ow:strides[1]]
                out[:, gi * mg:(gi + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j])
    assert dtype is not np.int64 or np.abs(out).max() < 2 ** 31   # int32 accumulators
    return out


def integer_reference(proto: Any, x: np.ndarray) -> np.ndarray:
    """Float logits of the integer-only execution of the int8 QDQ ``proto`` on ``x``."""
    g = proto.graph
    consts = _consts(proto)
    producer = {o: n for n in g.node for o in n.output}
    codes: dict[str, tuple[np.ndarray, float, int, np.dtype]] = {}   # tensor -> (q, s, z, dtype)

    def qparams(node: Any) -> tuple[np.ndarray, np.ndarray, np.dtype]:
        s = consts[node.input[1]]
        z = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros_like(s, np.uint8)
        return s.astype(np.float64), z.astype(np.int64), z.dtype

    def dq_source(name: str) -> tuple[np.ndarray, float, int, np.dtype]:
        """The codes behind the DequantizeLinear producing ``name``."""
        dq = producer[name]
        assert dq.op_type == "DequantizeLinear", f"{name} comes from {dq.op_type}"
        q = codes[dq.input[0]]
        s, z, _ = qparams(dq)
        assert np.isclose(float(s), q[1]) and int(z) == q[2], "DQ params differ from Q's"
        return q

    def weight(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integer codes, scales and zero points of a weight: an integer initializer under a
        DQ, or a float one behind a Q/DQ pair (the TensorRT form), quantized here."""
        dq = producer[name]
        assert dq.op_type == "DequantizeLinear"
        s, z, _ = qparams(dq)
        if dq.input[0] in consts:
            return consts[dq.input[0]].astype(np.int64), s, z
        q = producer[dq.input[0]]
        assert q.op_type == "QuantizeLinear" and q.input[0] in consts
        w = consts[q.input[0]].astype(np.float64)
        shape = [1] * w.ndim
        shape[next((a.i for a in q.attribute if a.name == "axis"), 1)] = -1
        sq, zq, dt = qparams(q)
        info = np.iinfo(dt)
        codes_ = np.clip(np.rint(w / sq.reshape(shape)) + zq.reshape(shape), info.min, info.max)
        return codes_.astype(np.int64), s, z

    def out_q(node: Any) -> tuple[list[str], np.ndarray, np.ndarray, np.dtype]:
        """The outputs of the QuantizeLinear nodes reading ``node``'s output (several with
        dedicated Q/DQ pairs, TensorRT's form; they must agree) and their parameters."""
        qs = [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == node.output[0]]
        params = [qparams(q) for q in qs]
        s, z, dt = params[0]
        assert all(np.array_equal(p[0], s) and np.array_equal(p[1], z) for p in params), \
            f"{node.name}: its output's Q nodes differ"
        return [q.output[0] for q in qs], s, z, dt

    def store(names: list[str], value_: tuple[np.ndarray, float, int, np.dtype]) -> None:
        for name in names:
            codes[name] = value_

    floats: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        """A tensor's float value: a float island's output, a constant, or a DQ output."""
        if name in floats:
            return floats[name]
        if name == g.input[0].name:
            return x.astype(np.float64)
        if name in consts:
            return consts[name].astype(np.float64)
        dq = producer[name]
        s, z, _ = qparams(dq)
        src = codes[dq.input[0]][0] if dq.input[0] in codes else consts[dq.input[0]]
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if s.size > 1:
            shape = [1] * src.ndim
            shape[axis] = -1
            s, z = s.reshape(shape), z.reshape(shape)
        return (src.astype(np.int64) - z) * s

    def integer(node: Any) -> bool:
        """Whether a node runs on codes: its activation input from a DQ of codes, its weight
        behind a DQ, its output read by a QuantizeLinear only."""
        for i in node.input[:2] if node.op_type == "Add" else node.input[:1]:
            src = producer.get(i)
            if src is None or src.op_type != "DequantizeLinear" or src.input[0] not in codes:
                return False
        if node.op_type in ("Conv", "Gemm", "MatMul") and (node.input[1] in consts
                                                  or producer[node.input[1]].op_type != "DequantizeLinear"):
            return False
        readers = [r for r in g.node if node.output[0] in r.input]
        return bool(readers) and all(r.op_type == "QuantizeLinear" for r in readers)

    def float_op(node: Any) -> np.ndarray:
        x_ = value(node.input[0])
        if node.op_type == "Add":
            return x_ + value(node.input[1])
        if node.op_type in ("GlobalAveragePool", "ReduceMean"):
            return x_.mean(axis=(2, 3), keepdims=True)
        if node.op_type in ("Flatten", "Reshape"):
            return x_.reshape(x_.shape[0], -1)
        if node.op_type in ("Relu", "Clip"):
            lo = float(value(node.input[1])) if len(node.input) > 1 and node.input[1] else 0.0
            hi = float(value(node.input[2])) if len(node.input) > 2 and node.input[2] else np.inf
            return np.clip(x_, lo, hi)
        w_ = value(node.input[1])
        b_ = value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if node.op_type in ("Gemm", "MatMul"):
            tb = any(a.name == "transB" and a.i for a in node.attribute)
            y_ = x_ @ (w_.T if tb else w_)
            return y_ if b_ is None else y_ + b_
        att = {a.name: a for a in node.attribute}
        y_ = _conv_int(x_, w_, att["group"].i if "group" in att else 1,
                       list(att["pads"].ints) if "pads" in att else [0, 0, 0, 0],
                       list(att["strides"].ints) if "strides" in att else [1, 1], np.float64)
        return y_ if b_ is None else y_ + b_.reshape(1, -1, 1, 1)

    for n in g.node:
        if n.op_type == "QuantizeLinear" and n.input[0] in floats:     # float island -> codes
            s, z, dt = qparams(n)
            info = np.iinfo(dt)
            q = np.clip(np.rint(floats[n.input[0]] / s) + z, info.min, info.max).astype(np.int32)
            codes[n.output[0]] = (q, float(s), int(z), dt)
        elif n.op_type == "QuantizeLinear" and n.input[0] in [i.name for i in g.input]:
            s, z, dt = qparams(n)
            info = np.iinfo(dt)
            q = np.clip(np.rint(x / s) + z, info.min, info.max).astype(np.int32)
            codes[n.output[0]] = (q, float(s), int(z), dt)
        elif n.op_type in QDQ or n.op_type == "Constant":
            continue
        elif not integer(n):
            floats[n.output[0]] = float_op(n)       # a float island: a hybrid runtime's float kernel
        elif n.op_type in ("Conv", "Gemm", "MatMul"):
            xq, sx, zx, _ = dq_source(n.input[0])
            w, sw, zw = weight(n.input[1])
            assert not zw.any(), "weight zero point"
            qn, so, zo, dt = out_q(n)
            xi = xq.astype(np.int64) - zx
            if n.op_type == "Conv":
                att = {a.name: a for a in n.attribute}
                group = att["group"].i if "group" in att else 1
                pads = list(att["pads"].ints) if "pads" in att else [0, 0, 0, 0]
                strides = list(att["strides"].ints) if "strides" in att else [1, 1]
                acc = _conv_int(xi, w, group, pads, strides)
                shape = (1, -1, 1, 1)
            else:       # Gemm (transB: w is (out, in)) or MatMul (w is (in, out))
                tb = any(a.name == "transB" and a.i for a in n.attribute)
                acc = xi @ (w.T if tb else w)
                shape = (1, -1)
            if len(n.input) > 2 and n.input[2] in consts:      # a float bias (TensorRT form)
                acc = acc + consts[n.input[2]].astype(np.float64).reshape(shape) / (sx * sw).reshape(shape)
            elif len(n.input) > 2 and n.input[2]:
                bq, sb, zb = weight(n.input[2])
                assert np.allclose(sb, sx * sw, rtol=1e-6), "bias scale != s_in * s_w"
                acc = acc + (bq - zb).reshape(shape)
            mult = (sx * sw / so).reshape(shape)
            store(qn, (_rq(acc, mult, int(zo), dt), float(so), int(zo), dt))
        elif n.op_type == "Add":
            (a, sa, za, _), (b, sb, zb, _) = dq_source(n.input[0]), dq_source(n.input[1])
            qn, so, zo, dt = out_q(n)
            real = (a - za) * sa + (b - zb) * sb     # what a fixed-point Add approximates
            store(qn, (_rq(real, 1 / so, int(zo), dt), float(so), int(zo), dt))
        elif n.op_type in ("GlobalAveragePool", "ReduceMean"):
            a, sa, za, _ = dq_source(n.input[0])
            qn, so, zo, dt = out_q(n)
            total = (a.astype(np.int64) - za).sum(axis=(2, 3), keepdims=True)
            count = a.shape[2] * a.shape[3]
            store(qn, (_rq(total, sa / so / count, int(zo), dt), float(so), int(zo), dt))
        elif n.op_type in ("Flatten", "Reshape"):
            a, sa, za, _ = dq_source(n.input[0])
            qn, so, zo, dt = out_q(n)
            flat = (a.astype(np.int64) - za).reshape(a.shape[0], -1)
            store(qn, (_rq(flat, sa / so, int(zo), dt), float(so), int(zo), dt))
        elif n.op_type in ("Relu", "Clip"):
            a, sa, za, _ = dq_source(n.input[0])
            qn, so, zo, dt = out_q(n)
            clip = n.op_type == "Clip"
            lo = float(consts[n.input[1]]) if clip and len(n.input) > 1 and n.input[1] else 0.0
            hi = float(consts[n.input[2]]) if clip and len(n.input) > 2 and n.input[2] else np.inf
            real = np.clip((a - za) * sa, lo, hi)
            store(qn, (_rq(real, 1 / so, int(zo), dt), float(so), int(zo), dt))
        else:
            raise NotImplementedError(n.op_type)
    (out,) = g.output
    if out.name in floats:
        return floats[out.name]
    dq = producer[out.name]
    q, s, z, _ = codes[dq.input[0]]
    return (q - z) * s


def tensorrt_violations(proto: Any) -> list[str]:
    """Where an ``int8-symmetric`` file breaks TensorRT's explicit-quantization rules (as the
    TensorRT 8.x ONNX parser applies them): opset >= 13; every Q/DQ zero point 0 and int8;
    activation scales per tensor; weight scales per output channel (Conv: axis 0; Gemm: axis 0
    with transB, else 1; MatMul: axis 1); no integer initializer under a DequantizeLinear;
    every activation input of a Conv/Gemm/MatMul/Add behind a DequantizeLinear."""
    g = proto.graph
    consts = _consts(proto)
    producer = {o: n for n in g.node for o in n.output}
    bad = []
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        bad.append(f"opset {opset} < 13")
    for n in g.node:
        if n.op_type in QDQ:
            z = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            if z is not None and (z.dtype != np.int8 or z.any()):
                bad.append(f"{n.op_type} {n.output[0]}: zero point {z.dtype} {z.ravel()[:3]}")
            if n.op_type == "DequantizeLinear" and n.input[0] in consts \
                    and consts[n.input[0]].dtype.kind in "iu":
                bad.append(f"DequantizeLinear of an integer initializer "
                           f"{consts[n.input[0]].dtype}{list(consts[n.input[0]].shape)}")
            s = consts.get(n.input[1])
            src = producer.get(n.input[0])
            on_weight = n.input[0] in consts or (src is not None and src.op_type == "QuantizeLinear"
                                                 and src.input[0] in consts)
            if s is not None and s.size > 1 and not on_weight:
                bad.append(f"{n.op_type} {n.output[0]}: per-channel scale on an activation")
        if n.op_type in ("Conv", "Gemm", "MatMul"):
            for k, i in enumerate(n.input[:2]):
                src = producer.get(i)
                if i in consts or src is None or src.op_type != "DequantizeLinear":
                    bad.append(f"{n.op_type} {n.name}: input {k} not behind a DequantizeLinear")
                    continue
                if k == 1:     # weight: Q(float w) -> DQ, per output channel
                    q = producer.get(src.input[0])
                    w = consts.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
                    s = consts.get(src.input[1])
                    axis = next((a.i for a in src.attribute if a.name == "axis"), 1)
                    tb = any(a.name == "transB" and a.i for a in n.attribute)
                    want = 0 if n.op_type == "Conv" or (n.op_type == "Gemm" and tb) else 1
                    if w is None:
                        bad.append(f"{n.op_type} {n.name}: weight is not float behind Q/DQ")
                    elif s is None or s.size != w.shape[want] or axis != want:
                        bad.append(f"{n.op_type} {n.name}: weight scales {None if s is None else s.size}"
                                   f" on axis {axis}, want {w.shape[want]} on axis {want}")
        if n.op_type == "Add":
            for k, i in enumerate(n.input):
                src = producer.get(i)
                if src is None or src.op_type != "DequantizeLinear":
                    bad.append(f"Add {n.name}: input {k} not behind a DequantizeLinear")
    return bad
