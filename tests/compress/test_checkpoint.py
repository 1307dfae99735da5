"""Packed checkpoints: exact round trip for every technique, n-bit packing, sizes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autocompress.compress import CompressionPlan, QuantConfig, apply_plan, bake, stored_bytes
from autocompress.compress.bitpack import pack_bits, packed_nbytes, recover_codes, unpack_bits
from autocompress.compress.checkpoint import load_state, save_packed
from autocompress.models import StudentArch, build_student
from tests.compress.test_conformance import ARCH, CASES, X, _apply, _train_step

INDEX_MAX_BYTES = 4096   # entry list + torch.save container, stated in checkpoint.py


@pytest.mark.parametrize("bits", range(1, 9))
def test_pack_bits_round_trip(bits):
    codes = torch.randint(0, 2 ** bits, (1001,), generator=torch.Generator().manual_seed(bits))
    data = pack_bits(codes, bits)
    assert data.dtype == torch.uint8 and data.numel() == packed_nbytes(1001, bits)
    assert torch.equal(unpack_bits(data, bits, 1001), codes)


def test_two_4bit_codes_per_byte():
    assert pack_bits(torch.tensor([1, 2, 15, 0]), 4).tolist() == [0x21, 0x0F]


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_channel", [True, False])
def test_recover_codes_of_fake_quantized_weights(symmetric, per_channel):
    from autocompress.compress.quantize import fake_quantize, mse_clip

    w = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(0))
    for bits in (2, 3, 4, 8):
        q = fake_quantize(w, bits, per_channel, symmetric,
                          mse_clip(w, bits, per_channel, symmetric))
        codes = recover_codes(q, bits, per_channel, symmetric)
        assert codes is not None and int(codes.codes.max()) < 2 ** bits
        assert int(codes.codes.min()) >= 0
    assert recover_codes(w, 4, per_channel, symmetric) is None     # float weights: no codes


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_packed_round_trip_is_exact(tmp_path, name, quantize):
    layers = CASES[name][0]
    if quantize:   # every technique composed with 3-bit asymmetric weights
        q = QuantConfig(bits=3, symmetric=False)
        layers = {f: cfgs if any(isinstance(c, QuantConfig) for c in cfgs) else (*cfgs, q)
                  for f, cfgs in layers.items()}
    plan = CompressionPlan(arch=ARCH.to_dict(), layers=layers)
    model = _apply(plan)
    _train_step(model)                        # QAT / codebook training moved the weights
    baked = bake(model)
    report = save_packed(baked, plan, tmp_path / "model.pt")
    state = baked.state_dict()
    again = load_state(tmp_path / "model.pt")
    assert again.keys() == state.keys()
    for key, value in state.items():
        assert again[key].dtype == value.dtype and torch.equal(again[key], value), key
    assert report.fallback == []
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(raw) == {"format", "version", "blob", "index"}
    fresh = bake(_apply(plan, seed=5))
    fresh.load_state_dict(again)
    torch.testing.assert_close(fresh.eval()(X), baked.eval()(X))


def test_a_weight_whose_quantization_is_not_reproducible_stays_float(tmp_path):
    net = nn.Sequential(nn.Linear(8, 4))
    plan = CompressionPlan(layers={"0": (QuantConfig(bits=4),)})
    report = save_packed(net, plan, tmp_path / "m.pt")       # never quantized
    assert report.fallback == ["0.weight"]
    assert torch.equal(load_state(tmp_path / "m.pt")["0.weight"], net[0].weight)


def test_plain_state_dicts_still_load(tmp_path):
    net = nn.Linear(3, 2)
    torch.save(net.state_dict(), tmp_path / "old.pt")
    assert torch.equal(load_state(tmp_path / "old.pt")["weight"], net.weight)


def _student32(bits: int) -> tuple[nn.Module, CompressionPlan]:
    torch.manual_seed(0)
    net = build_student(StudentArch(width_mult=1.5, strides=(2, 2, 2)), in_channels=3,
                        num_classes=10)
    layers = {n: (QuantConfig(bits=bits if n != "classifier" else 8),)
              for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    plan = CompressionPlan(layers=layers)
    return bake(apply_plan(net, plan, torch.zeros(1, 3, 32, 32))), plan


def test_file_size_is_stored_bytes_plus_the_float_state_and_a_small_index(tmp_path):
    files = {}
    for bits in (4, 8):
        model, plan = _student32(bits)
        path = tmp_path / f"w{bits}.pt"
        report = save_packed(model, plan, path)
        size = stored_bytes(model, plan)
        rows = sum(t.rows for t in size.layers)
        # weights and scales: packed as stored_bytes counts them (+ byte rounding/alignment)
        counted = size.total_bytes - 4 * rows           # stored_bytes' folded biases
        assert report.weights + report.scales == pytest.approx(counted, abs=4 * len(size.layers))
        # the rest: the state dict's other tensors (BatchNorm unfolded) and the index
        assert path.stat().st_size == report.file_bytes
        assert report.file_bytes - report.weights - report.scales - report.other \
            <= INDEX_MAX_BYTES
        files[bits] = report.file_bytes
    assert files[4] < 0.75 * files[8]


def test_csr_columns_use_all_16_bits(tmp_path):
    # 40,000 inputs: column indices above 32767 still fit the uint16 the cost model counts
    net = nn.Sequential(nn.Linear(40000, 2, bias=False))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0, [5, 32767, 32768, 39999]] = torch.tensor([1.0, 2.0, 3.0, 4.0])
        net[0].weight[1, 40000 - 1] = 5.0
    report = save_packed(net, None, tmp_path / "m.pt")
    assert report.layers == {"0.weight": "float32 csr"}
    assert report.weights <= 5 * 4 + 5 * 2 + 3 * 4 + 3     # + alignment of the values
    assert torch.equal(load_state(tmp_path / "m.pt")["0.weight"], net[0].weight)


def test_a_clustered_layer_is_packed_with_one_scale_as_counted(tmp_path):
    """Clustering quantizes per tensor: the packed file keeps one scale for the layer (as
    stored_bytes and the cost model count), though its codes could be recovered per channel."""
    from autocompress.compress import ClusterConfig

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
    plan = CompressionPlan(layers={"0": (ClusterConfig(k=16), QuantConfig(bits=8)),
                                   "2": (QuantConfig(bits=8),)})
    baked = bake(apply_plan(model, plan, torch.randn(4, 256)))
    report = save_packed(baked, plan, tmp_path / "m.pt")
    assert report.layers["0.weight"] == "int8 dense +codebook"
    assert report.scales == 4 + 10 * 4                      # one scale, then ten per channel
    assert torch.equal(load_state(tmp_path / "m.pt")["0.weight"], baked[0].weight)
