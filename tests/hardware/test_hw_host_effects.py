"""Measured-profile effects added for host fidelity: int8 depthwise block kernels (fast
multiple / block / per-channel remainder), their detection from the grid, and the model
input's boundary (quantize + layout change) added once per inference."""
from __future__ import annotations

from pathlib import Path

import pytest

from autocompress.errors import ProfileError
from autocompress.graph import ModelGraph
from autocompress.hardware import CostModel, estimate_layer_latency, load_profile
from autocompress.hardware.grid_fit import detect_fp32_block, detect_int8_dw_blocks
from autocompress.hardware.keys import boundary_layer, layer_key
from autocompress.hardware.latency import input_boundary_ms
from autocompress.hardware.measure import Timing
from tests.hardware.hw_helpers import TINY_PROFILE, conv, write_profile


def dw_ms(c: int) -> float:
    """A synthetic int8 depthwise kernel family: fast at multiples of 16 (0.01 ms/channel),
    an 8-channel block kernel otherwise (0.5 + 0.03 ms/channel) plus 0.2 ms per channel
    left over beyond the last block."""
    if c % 16 == 0:
        return 0.01 * c
    return 0.5 + 0.03 * (c // 8 * 8) + 0.2 * (c % 8)


GRID = (8, 12, 16, 20, 23, 24, 30, 32, 38, 40, 47, 48, 56, 58, 64, 71, 72, 80, 88, 96)


def _key(c: int) -> str:
    return f"conv2d|in={c}x8x8|out={c}x8x8|k=3|s=1|g={c}|w=int8|a=int8"


def _profile(tmp_path: Path, align: str, extra: str = "") -> object:
    text = TINY_PROFILE.split("entries:")[0].replace("align: {channels: 4}", align)
    entries = "".join(f'  "{_key(c)}": {{mean_ms: {dw_ms(c)}, std_ms: 0.0, n: 5}}\n'
                      for c in GRID)
    return load_profile(write_profile(tmp_path, text + "entries:\n" + entries + extra))


def test_off_block_depthwise_is_block_kernel_plus_remainder(tmp_path: Path) -> None:
    split = _profile(tmp_path, "align: {channels: 1, fast_multiple: 4, int8_dw_fast: 16, "
                               "int8_dw_block: 8}")
    (tmp_path / "plain").mkdir()
    plain = _profile(tmp_path / "plain", "align: {channels: 1, fast_multiple: 4}")
    for c in (26, 35, 50, 61, 83):        # none measured
        layer = conv("dw", c, c, groups=c)
        est = estimate_layer_latency(split, layer)
        assert est.provenance == "interp"
        assert est.latency_ms == pytest.approx(dw_ms(c), rel=1e-9), c
        assert abs(estimate_layer_latency(plain, layer).latency_ms - dw_ms(c)) > 0.05, c
    # multiples of 16 and of 8 keep their own kernels' lines
    for c in (64, 80):
        assert estimate_layer_latency(split, conv("dw", c, c, groups=c)).latency_ms == \
            pytest.approx(dw_ms(c))


def test_block_split_is_detected_from_the_grid() -> None:
    entries = {_key(c).replace("8x8", f"{hw}x{hw}"): Timing(median_ms=dw_ms(c) * hw / 8,
                                                            std_ms=0.0, n=5)
               for c in GRID for hw in (8, 16)}
    assert detect_int8_dw_blocks(entries) == (16, 8)
    linear = {k: Timing(median_ms=0.1 + 0.02 * int(k.split("x")[0].split("=")[1]), std_ms=0.0,
                        n=5) for k in entries}
    assert detect_int8_dw_blocks(linear) is None


def test_fast_and_block_go_together(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="int8_dw_fast and int8_dw_block"):
        _profile(tmp_path, "align: {channels: 1, int8_dw_fast: 16}")


def test_input_boundary_is_added_once(tmp_path: Path) -> None:
    key = layer_key(boundary_layer((16, 8, 8)), "int8", "int8")
    with_bound = _profile(tmp_path, "align: {channels: 1}",
                          f'  "{key}": {{mean_ms: 0.3, std_ms: 0.0, n: 5}}\n')
    (tmp_path / "nb").mkdir()
    without = _profile(tmp_path / "nb", "align: {channels: 1}")
    graph = ModelGraph(input_shape=(16, 8, 8), layers=(conv("a", 16, 16, groups=16),
                                                       conv("b", 16, 16, groups=16)))
    assert input_boundary_ms(with_bound, graph.layers[0]) == 0.3
    assert CostModel(with_bound).estimate(graph).latency_ms == pytest.approx(
        CostModel(without).estimate(graph).latency_ms + 0.3)
    # analytic profiles have no boundary entries: nothing added
    assert input_boundary_ms(load_profile("stm32f746"), graph.layers[0]) == 0.0


def blocked_ms(ci: int, co: int) -> float:
    """A synthetic fp32 NCHWc conv: time set by 16-channel blocks of input and output."""
    return 0.1 * (-(-ci // 16)) * (-(-co // 16))


def test_fp32_convs_are_located_at_block_padded_channels(tmp_path: Path) -> None:
    pairs = [(c, c) for c in range(8, 97, 8)] + [(16, 64), (64, 16), (32, 96), (96, 32)]
    lines = "".join(f'  "conv2d|in={a}x8x8|out={b}x8x8|k=3|s=1|g=1|w=fp32|a=fp32": '
                    f'{{mean_ms: {blocked_ms(a, b)}, std_ms: 0.0, n: 5}}\n' for a, b in pairs)
    text = TINY_PROFILE.split("entries:")[0].replace(
        "formats: {weights: [int8], activations: [int8], sparse_kernels: false}",
        "formats: {weights: [fp32], activations: [fp32], sparse_kernels: false}").replace(
        "macs_per_cycle: {int8: 1.0}", "macs_per_cycle: {fp32: 1.0}").replace(
        "depthwise_macs_per_cycle: {int8: 0.25}", "depthwise_macs_per_cycle: {fp32: 0.25}")
    blocked = load_profile(write_profile(tmp_path, text.replace(
        "align: {channels: 4}", "align: {channels: 1, fast_multiple: 4, fp32_block: 16}")
        + "entries:\n" + lines))
    (tmp_path / "p").mkdir()
    plain = load_profile(write_profile(tmp_path / "p", text.replace(
        "align: {channels: 4}", "align: {channels: 1, fast_multiple: 4}") + "entries:\n" + lines))
    for ci, co in ((36, 36), (68, 68), (20, 44), (52, 28)):
        layer = conv("c", ci, co)
        assert estimate_layer_latency(blocked, layer).latency_ms == pytest.approx(
            blocked_ms(ci, co), rel=0.02), (ci, co)
    # without the block the 68-channel conv is read between 64 (1.6 ms) and 72 (2.5 ms)
    assert estimate_layer_latency(plain, conv("c", 68, 68)).latency_ms < 0.9 * blocked_ms(68, 68)


def test_fp32_block_is_detected_from_the_grid() -> None:
    entries = {f"conv2d|in={c}x{hw}x{hw}|out={c}x{hw}x{hw}|k=3|s=1|g=1|w=fp32|a=fp32":
               Timing(median_ms=blocked_ms(c, c) * hw * (1 + 0.002 * c), std_ms=0.0, n=5)
               for c in range(8, 137, 4) for hw in (4, 8)}
    assert detect_fp32_block(entries) == 16
    smooth = {k: Timing(median_ms=0.01 * int(k.split("x")[0].split("=")[1]) ** 2, std_ms=0.0,
                        n=5) for k in entries}
    assert detect_fp32_block(smooth) == 0
