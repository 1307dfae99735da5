"""Measured-profile effects: slow kernel path for channel counts off the fast multiple, thin
network-input convs, and the once-per-inference run overhead."""
from __future__ import annotations

from pathlib import Path

import pytest

from autocompress.graph import ModelGraph
from autocompress.hardware import CostModel, estimate_layer_latency, load_profile
from tests.hardware.hw_helpers import TINY_PROFILE, conv, write_profile

ENTRIES = """\
  "conv2d|in=16x8x8|out=16x8x8|k=3|s=1|g=1|w=int8|a=int8": {mean_ms: 1.0, std_ms: 0.0, n: 5}
  "conv2d|in=32x8x8|out=32x8x8|k=3|s=1|g=1|w=int8|a=int8": {mean_ms: 2.0, std_ms: 0.0, n: 5}
  "conv2d|in=17x8x8|out=17x8x8|k=3|s=1|g=1|w=int8|a=int8": {mean_ms: 3.0, std_ms: 0.0, n: 5}
  "conv2d|in=31x8x8|out=31x8x8|k=3|s=1|g=1|w=int8|a=int8": {mean_ms: 9.0, std_ms: 0.0, n: 5}
  "conv2d|in=3x8x8|out=16x8x8|k=3|s=1|g=1|w=int8|a=int8": {mean_ms: 0.5, std_ms: 0.0, n: 5}
  "conv2d|in=3x8x8|out=32x8x8|k=3|s=1|g=1|w=int8|a=int8": {mean_ms: 0.7, std_ms: 0.0, n: 5}
"""


def _profile(tmp_path: Path, fast_multiple: int, overhead_ms: float = 0.0):  # type: ignore[no-untyped-def]
    text = TINY_PROFILE.split("entries:")[0].replace(
        "align: {channels: 4}", f"align: {{channels: 1, fast_multiple: {fast_multiple}}}")
    text = text.replace('threads: 1, batch: 1}', f'threads: 1, batch: 1, overhead_ms: '
                        f'{overhead_ms}}}')
    return load_profile(write_profile(tmp_path, text + "entries:\n" + ENTRIES))


def test_off_multiple_counts_interpolate_among_themselves(tmp_path: Path) -> None:
    split, mixed = _profile(tmp_path, 4), _profile(tmp_path / "..", 1)
    layer = conv("c", 28, 28)             # multiple of 4: between 16 (1 ms) and 32 (2 ms)
    assert estimate_layer_latency(split, layer).latency_ms == pytest.approx(1.0 + 528 / 768)
    odd = conv("c", 25, 25)               # off the multiple: between 17 (3 ms) and 31 (9 ms)
    x = (25 * 25 - 17 * 17) / (31 * 31 - 17 * 17)
    assert estimate_layer_latency(split, odd).latency_ms == pytest.approx(3 + 6 * x)
    assert estimate_layer_latency(split, odd).provenance == "interp"
    # without the split, the 28-channel conv would be read off the slow 17/31 entries
    assert estimate_layer_latency(mixed, layer).latency_ms > 5.0


def test_thin_input_convs_use_their_own_entries(tmp_path: Path) -> None:
    stem = conv("stem", 3, 24)
    est = estimate_layer_latency(_profile(tmp_path, 4), stem)
    assert est.provenance == "interp" and est.latency_ms == pytest.approx(0.6)


def test_run_overhead_is_added_once(tmp_path: Path) -> None:
    graph = ModelGraph(input_shape=(16, 8, 8), layers=(conv("a", 16, 16), conv("b", 16, 16)))
    base = CostModel(_profile(tmp_path, 4)).estimate(graph).latency_ms
    (tmp_path / "o").mkdir()
    plus = CostModel(_profile(tmp_path / "o", 4, overhead_ms=0.25)).estimate(graph).latency_ms
    assert base == pytest.approx(2.0) and plus == pytest.approx(2.25)


def _formula(ci: int, co: int) -> float:
    """im2col-like cost: copy (∝ c_in) + write (∝ c_out) + GEMM (∝ c_in c_out)."""
    return 0.1 + 0.01 * ci + 0.002 * co + 0.0001 * ci * co


def _plane_profile(tmp_path: Path, skewed: bool):  # type: ignore[no-untyped-def]
    pairs = [(c, c) for c in (8, 16, 32, 64, 128)]
    if skewed:
        pairs += [(8, 32), (32, 8), (16, 64), (64, 16), (32, 128), (128, 32)]
    lines = "".join(f'  "conv2d|in={ci}x8x8|out={co}x8x8|k=3|s=1|g=1|w=int8|a=int8": '
                    f"{{mean_ms: {_formula(ci, co):.6f}, std_ms: 0.0, n: 5}}\n"
                    for ci, co in pairs)
    head = TINY_PROFILE.split("entries:")[0].replace("align: {channels: 4}",
                                                     "align: {channels: 1}")
    return load_profile(write_profile(tmp_path, head + "entries:\n" + lines))


def test_pruned_convs_use_the_2d_fit_over_in_and_out_channels(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with_skew, diagonal = _plane_profile(tmp_path, True), _plane_profile(tmp_path / "a", False)
    for ci, co in ((58, 7), (7, 58), (40, 20), (100, 30)):
        layer = conv("c", ci, co)
        want = _formula(ci, co)
        got = estimate_layer_latency(with_skew, layer)
        assert got.provenance == "interp" and got.latency_ms == pytest.approx(want, rel=0.02)
    # with only cin == cout points, MAC-coordinate interpolation misses the c_in-bound cost
    assert estimate_layer_latency(diagonal, conv("c", 58, 7)).latency_ms < 0.8 * _formula(58, 7)
