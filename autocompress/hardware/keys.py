"""THE lookup-table key: one string per (op, shapes, kernel, stride, groups, formats).

Every LUT writer (``autocompress profile``) and reader (the latency model) goes through
:func:`layer_key`, so a key means the same thing everywhere. Pruning changes channel
counts, which changes ``in``/``out``; the latency model then interpolates between keys that
differ only there.

>>> from autocompress.graph import LayerInfo
>>> conv = LayerInfo(fqn="c", op="conv2d", in_shape=(16, 32, 32), out_shape=(32, 32, 32),
...                  kernel=3, stride=1, groups=1)
>>> layer_key(conv, "int8", "int8")
'conv2d|in=16x32x32|out=32x32x32|k=3|s=1|g=1|w=int8|a=int8'
>>> parse_key(layer_key(conv, "int8", "int8"))["in"]
(16, 32, 32)
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from autocompress.graph import LayerInfo
from autocompress.hardware.formats import is_format

# Ops whose key carries kernel/stride/groups (they have a spatial window).
WINDOWED_OPS = frozenset({"conv2d", "avgpool", "maxpool"})
# Ops that carry weights; the rest are keyed with ``w=none``.
WEIGHTED_OPS = frozenset({"conv2d", "linear"})
NO_WEIGHTS = "none"


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(d)) for d in shape)


def layer_key(layer: LayerInfo, weight_fmt: str, act_fmt: str) -> str:
    """Build the LUT key for ``layer`` run with the given weight/activation formats.

    Weightless ops (add, pools, ...) get ``w=none`` whatever ``weight_fmt`` says.

    >>> from autocompress.graph import LayerInfo
    >>> fc = LayerInfo(fqn="fc", op="linear", in_shape=(64,), out_shape=(10,))
    >>> layer_key(fc, "int8", "int8")
    'linear|in=64|out=10|w=int8|a=int8'
    """
    parts = [layer.op, f"in={_dims(layer.in_shape)}", f"out={_dims(layer.out_shape)}"]
    if layer.op in WINDOWED_OPS:
        parts += [f"k={int(layer.kernel)}", f"s={int(layer.stride)}", f"g={int(layer.groups)}"]
    weights = weight_fmt if layer.op in WEIGHTED_OPS else NO_WEIGHTS
    parts += [f"w={weights}", f"a={act_fmt}"]
    return "|".join(parts)


def boundary_layer(shape: tuple[int, ...]) -> LayerInfo:
    """The pseudo-layer whose key stores the layout/quantization boundary cost of a tensor of
    ``shape`` in a measured profile (``boundary|in=..|out=..|w=none|a=..``; see
    ``measure.boundary_ms``): the cost model adds the model input's once.

    >>> layer_key(boundary_layer((3, 32, 32)), "int8", "int8")
    'boundary|in=3x32x32|out=3x32x32|w=none|a=int8'
    """
    return LayerInfo(fqn="boundary", op="boundary", in_shape=shape, out_shape=shape)


def parse_key(key: str) -> dict[str, Any]:
    """Split a key into ``op``, ``in``/``out`` (int tuples), ``k``/``s``/``g`` (ints, 1 when
    absent), ``w`` and ``a`` (format names or ``none``). Raises ValueError on a malformed key.

    >>> parse_key("linear|in=64|out=10|w=int8|a=int8")["out"]
    (10,)
    """
    if not isinstance(key, str):
        raise TypeError(f"a key is a string, got {type(key).__name__}")
    return dict(_parse_key(key))   # a copy: callers may mutate it, the cache stays intact


@lru_cache(maxsize=4096)
def _parse_key(key: str) -> dict[str, Any]:
    if not isinstance(key, str) or not key:
        raise ValueError("empty key")
    op, *fields = key.split("|")
    if not op or not op.replace("_", "").isalnum():
        raise ValueError(f"bad op name {op!r} in key {key!r}")
    out: dict[str, Any] = {"op": op, "k": 1, "s": 1, "g": 1}
    seen: set[str] = set()
    for field in fields:
        name, sep, value = field.partition("=")
        if not sep or name in seen:
            raise ValueError(f"bad or repeated field {field!r} in key {key!r}")
        seen.add(name)
        try:
            if name in ("in", "out"):
                out[name] = tuple(int(d) for d in value.split("x"))
                if min(out[name]) < 1:
                    raise ValueError("dimensions must be >= 1")
            elif name in ("k", "s", "g"):
                out[name] = int(value)
                if out[name] < 1:       # g=0 would divide by zero in the LUT index
                    raise ValueError("must be >= 1")
            elif name in ("w", "a"):
                if value != NO_WEIGHTS and not is_format(value):
                    raise ValueError(f"unknown format {value!r}")
                out[name] = value
            else:
                raise ValueError(f"unknown field {name!r}")
        except ValueError as exc:
            raise ValueError(f"bad field {field!r} in key {key!r}: {exc}") from None
    missing = [name for name in ("in", "out", "w", "a") if name not in out]
    if missing:
        raise ValueError(f"key {key!r} lacks {', '.join(missing)}")
    return out


def check_canonical(key: str) -> None:
    """Raise ValueError unless ``key`` is written exactly as :func:`layer_key` writes it (the
    cost model looks keys up as text: a reordered field, a left-out ``g=1`` or ``conv`` for
    ``conv2d`` validated but never matched). The message gives the form to write.

    >>> check_canonical("linear|out=10|in=64|w=int8|a=int8")
    Traceback (most recent call last):
    ...
    ValueError: not the form the cost model looks up; write it 'linear|in=64|out=10|w=int8|a=int8'
    """
    p = parse_key(key)
    windowed = any(f.split("=")[0] in ("k", "s", "g") for f in key.split("|")[1:])
    if windowed and p["op"] not in WINDOWED_OPS:
        raise ValueError(f"op '{p['op']}' takes no k/s/g fields; the ops with a window are "
                         f"{', '.join(sorted(WINDOWED_OPS))}")
    layer = LayerInfo(fqn="key", op=p["op"], in_shape=p["in"], out_shape=p["out"],
                      kernel=p["k"], stride=p["s"], groups=p["g"])
    want = layer_key(layer, p["w"], p["a"])
    if key != want:
        raise ValueError(f"not the form the cost model looks up; write it '{want}'")


def channels(shape: tuple[int, ...]) -> int:
    """The channel count of an activation shape: C of (C, H, W), F of (F,)."""
    return int(shape[0]) if len(shape) >= 3 else int(shape[-1])


def spatial(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape without its channel dimension."""
    return tuple(shape[1:]) if len(shape) >= 3 else tuple(shape[:-1])
