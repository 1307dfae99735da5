"""Latency: LUT hit, interpolation, analytic fallback and the runtime effects."""
from __future__ import annotations

from dataclasses import replace

import pytest

from autocompress.errors import ProfileError
from autocompress.graph import LayerInfo
from autocompress.hardware import LayerFormat, estimate_layer_latency
from autocompress.hardware.latency import analytic_latency_ms
from autocompress.hardware.spec import HardwareProfile
from tests.hardware.hw_helpers import conv

INT8 = LayerFormat()


def test_exact_lut_hit(tiny_profile: HardwareProfile) -> None:
    est = estimate_layer_latency(tiny_profile, conv("c", 16, 32))
    assert est.provenance == "lut"
    assert est.latency_ms == pytest.approx(2.0) and est.std_ms == pytest.approx(0.2)
    assert est.key == "conv2d|in=16x8x8|out=32x8x8|k=3|s=1|g=1|w=int8|a=int8"


def test_interpolates_between_channel_counts(tiny_profile: HardwareProfile) -> None:
    est = estimate_layer_latency(tiny_profile, conv("c", 16, 24))
    assert est.provenance == "interp"
    assert 1.0 < est.latency_ms < 2.0
    assert est.latency_ms == pytest.approx(1.5)          # linear in channel count
    assert est.std_ms == pytest.approx(0.15)


def test_interp_pads_to_alignment(tiny_profile: HardwareProfile) -> None:
    # 30 output channels run as 32 on a 4-aligned device: the 32-channel entry's time
    est = estimate_layer_latency(tiny_profile, conv("c", 16, 30))
    assert est.provenance == "interp" and est.latency_ms == pytest.approx(2.0)


def test_analytic_fallback(tiny_profile: HardwareProfile) -> None:
    layer = conv("c", 16, 16, hw=16)                      # no entry with 16x16 spatial
    est = estimate_layer_latency(tiny_profile, layer)
    assert est.provenance == "analytic"
    # 100 MHz x 1 MAC/cycle: compute 589824 MACs = 5.898 ms > memory (~10 KB at 1 GB/s)
    assert est.latency_ms == pytest.approx(layer.macs / 1e8 * 1e3)
    assert est.std_ms == pytest.approx(est.latency_ms * 0.25)


def test_fallback_disabled_names_the_key(tiny_profile: HardwareProfile) -> None:
    layer = conv("c", 16, 16, hw=16)
    with pytest.raises(ProfileError, match=r"conv2d\|in=16x16x16\|out=16x16x16"):
        estimate_layer_latency(tiny_profile, layer, fallback=False)
    strict = replace(tiny_profile, fallback=False)
    with pytest.raises(ProfileError, match="no LUT entry"):
        estimate_layer_latency(strict, layer)
    assert estimate_layer_latency(strict, conv("c", 16, 16)).provenance == "lut"


def test_int4_runs_as_int8_on_int8_only_device(mcu: HardwareProfile) -> None:
    layer = conv("c", 32, 32, hw=16)
    int8 = estimate_layer_latency(mcu, layer, LayerFormat(weight_bits=8))
    int4 = estimate_layer_latency(mcu, layer, LayerFormat(weight_bits=4))
    assert int4.latency_ms == int8.latency_ms
    assert "w=int8" in int4.key


def test_fp32_slower_than_int8(mcu: HardwareProfile) -> None:
    layer = conv("c", 32, 32, hw=16)
    fp32 = estimate_layer_latency(mcu, layer, LayerFormat(weight_bits=32, act_bits=32))
    assert fp32.latency_ms > 2 * estimate_layer_latency(mcu, layer).latency_ms
    assert fp32.key.endswith("w=fp32|a=fp32")


def test_alignment_padding(mcu: HardwareProfile) -> None:
    lat = {c: estimate_layer_latency(mcu, conv("c", 32, c, hw=16)).latency_ms
           for c in (29, 30, 32, 33)}
    assert lat[30] == pytest.approx(lat[32]) and lat[29] == pytest.approx(lat[32])
    assert lat[33] > lat[32]
    lat_in = {c: estimate_layer_latency(mcu, conv("c", c, 32, hw=16, k=1)).latency_ms
              for c in (30, 32)}
    assert lat_in[30] == pytest.approx(lat_in[32])
    # a 3-channel network input is not padded to 4 (im2col folds it into the row)
    assert estimate_layer_latency(mcu, conv("c", 3, 16)).latency_ms < \
        estimate_layer_latency(mcu, conv("c", 4, 16)).latency_ms


def test_sparsity_saves_time_only_with_sparse_kernels(mcu: HardwareProfile) -> None:
    layer = conv("c", 32, 32, hw=16)
    dense = estimate_layer_latency(mcu, layer).latency_ms
    sparse_fmt = LayerFormat(sparsity=0.75)
    assert estimate_layer_latency(mcu, layer, sparse_fmt).latency_ms == dense
    with_kernels = replace(mcu, formats=replace(mcu.formats, sparse_kernels=True))
    assert estimate_layer_latency(with_kernels, layer, sparse_fmt).latency_ms < 0.5 * dense


def test_depthwise_has_its_own_lower_efficiency(tiny_profile: HardwareProfile) -> None:
    dw = conv("dw", 64, 64, hw=16, groups=64)
    assert dw.macs == 64 * 9 * 256
    # 0.25 MAC/cycle at 100 MHz, compute-bound
    assert analytic_latency_ms(tiny_profile, dw, "int8", "int8") == \
        pytest.approx(dw.macs / 25e6 * 1e3)


def test_memory_bound_layer(tiny_profile: HardwareProfile) -> None:
    fc = LayerInfo(fqn="fc", op="linear", in_shape=(1000,), out_shape=(1000,),
                   params=1_000_000, macs=1_000_000)
    # compute 10 ms at 1e8 MAC/s vs memory 1.002 MB at 1 GB/s = 1.002 ms: compute-bound
    assert analytic_latency_ms(tiny_profile, fc, "int8", "int8") == pytest.approx(10.0)
    slow = replace(tiny_profile, analytic=replace(tiny_profile.analytic, mem_bw_gbps=0.01))
    assert analytic_latency_ms(slow, fc, "int8", "int8") == pytest.approx(100.2)


def test_every_analytic_estimate_is_positive_and_finite(mcu: HardwareProfile) -> None:
    layers = [conv("c", 8, 16), conv("dw", 16, 16, groups=16),
              LayerInfo(fqn="a", op="add", in_shape=(8, 4, 4), out_shape=(8, 4, 4), macs=128,
                        inputs=("x", "y")),
              LayerInfo(fqn="o", op="other", in_shape=(8, 4, 4), out_shape=(8, 4, 4))]
    for layer in layers:
        for fmt in (LayerFormat(), LayerFormat(weight_bits=2, act_bits=32)):
            est = estimate_layer_latency(mcu, layer, fmt)
            assert 0 < est.latency_ms < 1e3 and est.provenance == "analytic"


def test_a_non_square_conv_is_not_costed_from_square_entries(tiny_profile: HardwareProfile
                                                             ) -> None:
    """A (1, 9) conv's key names kernel 1, so a measured host profile costed it as its 1x1
    entry (0.020 ms against 0.186 ms measured), labelled 'lut'. The trace says it is not
    square, and the cost model goes analytic."""
    import torch
    from torch import nn

    from autocompress.graph import inspect_model

    wide = inspect_model(nn.Sequential(nn.Conv2d(16, 32, (3, 1), padding=(1, 0))),
                         torch.zeros(1, 16, 8, 8)).layers[0]
    assert not wide.square and wide.kernel == 3
    assert estimate_layer_latency(tiny_profile, replace(wide, fqn="c", square=True)
                                  ).provenance == "lut"          # its 3x3 twin's entry
    est = estimate_layer_latency(tiny_profile, wide)
    assert est.provenance == "analytic"
