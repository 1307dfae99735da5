"""The LUT key builder: exact format and round trip."""
from __future__ import annotations

import pytest

from autocompress.graph import LayerInfo
from autocompress.hardware.keys import layer_key, parse_key
from tests.hardware.hw_helpers import conv


def test_conv_key_format() -> None:
    layer = LayerInfo(fqn="c", op="conv2d", in_shape=(16, 32, 32), out_shape=(32, 32, 32),
                      kernel=3, stride=1, groups=1)
    assert layer_key(layer, "int8", "int8") == \
        "conv2d|in=16x32x32|out=32x32x32|k=3|s=1|g=1|w=int8|a=int8"


def test_linear_and_weightless_keys() -> None:
    fc = LayerInfo(fqn="fc", op="linear", in_shape=(64,), out_shape=(10,))
    add = LayerInfo(fqn="add", op="add", in_shape=(8, 4, 4), out_shape=(8, 4, 4))
    pool = LayerInfo(fqn="p", op="avgpool", in_shape=(8, 4, 4), out_shape=(8,), kernel=4,
                     stride=4)
    assert layer_key(fc, "int4", "int8") == "linear|in=64|out=10|w=int4|a=int8"
    assert layer_key(add, "int8", "int8") == "add|in=8x4x4|out=8x4x4|w=none|a=int8"
    assert layer_key(pool, "fp32", "fp32") == "avgpool|in=8x4x4|out=8|k=4|s=4|g=1|w=none|a=fp32"


@pytest.mark.parametrize("layer", [
    conv("dw", 32, 32, hw=16, groups=32),
    LayerInfo(fqn="fc", op="linear", in_shape=(640,), out_shape=(128,)),
    LayerInfo(fqn="add", op="add", in_shape=(8, 4, 4), out_shape=(8, 4, 4)),
])
def test_round_trip(layer: LayerInfo) -> None:
    key = layer_key(layer, "int8", "fp32")
    parsed = parse_key(key)
    assert parsed["op"] == layer.op
    assert parsed["in"] == layer.in_shape and parsed["out"] == layer.out_shape
    assert parsed["a"] == "fp32"
    if layer.op == "conv2d":
        assert (parsed["k"], parsed["s"], parsed["g"]) == (layer.kernel, layer.stride,
                                                           layer.groups)
    rebuilt = LayerInfo(fqn="x", op=parsed["op"], in_shape=parsed["in"], out_shape=parsed["out"],
                        kernel=parsed["k"], stride=parsed["s"], groups=parsed["g"])
    assert layer_key(rebuilt, parsed["w"] if parsed["w"] != "none" else "int8", parsed["a"]) \
        == key


@pytest.mark.parametrize("bad", ["", "conv2d|in=3x8x8|w=int8|a=int8",
                                 "conv2d|in=3x8x8|out=8x8x8|k=three|w=int8|a=int8",
                                 "linear|in=4|out=2|w=int8|a=int8|a=int8",
                                 "linear|in=4|out=2|w=float8|a=int8",
                                 "linear|in=4|out=2|zz=1|w=int8|a=int8",
                                 "conv2d|in=16x8x8|out=16x8x8|k=3|s=1|g=0|w=int8|a=int8",
                                 "conv2d|in=16x8x8|out=16x8x8|k=3|s=0|g=1|w=int8|a=int8",
                                 "conv2d|in=0x8x8|out=16x8x8|k=3|s=1|g=1|w=int8|a=int8",
                                 "linear|in=4|out=-2|w=int8|a=int8"])
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_key(bad)
