"""Clustered layers: the cost model's Flash counts the codebook (k entries at the layer's
bits, one per-tensor scale) and agrees with the stored-size accounting of the compressed
model (``autocompress.compress.size``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autocompress.compress import ClusterConfig, CompressionPlan, QuantConfig, apply_plan
from autocompress.compress.formats import plan_formats
from autocompress.compress.size import stored_bytes
from autocompress.graph import LayerInfo, inspect_model
from autocompress.hardware import CostModel, LayerFormat, layer_flash_bytes

FC = LayerInfo(fqn="fc", op="linear", in_shape=(64,), out_shape=(10,), params=640, bias=10)


def test_codebook_bytes_are_counted() -> None:
    plain = layer_flash_bytes(FC, LayerFormat(weight_bits=4))
    clustered = layer_flash_bytes(FC, LayerFormat(weight_bits=4, codebook=16, codebook_bits=8))
    assert plain == 640 * 4 / 8 + 10 * 4 + 10 * 4              # indices, bias, per-channel scales
    assert clustered == 640 * 4 / 8 + 16 * 8 / 8 + 10 * 4 + 4  # + codebook, one scale
    # codebook_bits 0 means the entries are weight_bits wide
    assert layer_flash_bytes(FC, LayerFormat(weight_bits=4, codebook=16)) == clustered - 8


@pytest.mark.parametrize("bad", [{"codebook": -1}, {"codebook_bits": 33}, {"codebook": 2.5},
                                 {"per_channel": 1}])
def test_codebook_fields_are_checked(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LayerFormat(**bad)  # type: ignore[arg-type]


def test_plan_formats_carry_the_codebook() -> None:
    plan = CompressionPlan(layers={
        "a": (QuantConfig(bits=8), ClusterConfig(k=16)),     # 4-bit indices + 16 int8 values
        "b": (QuantConfig(bits=4), ClusterConfig(k=64)),     # 6-bit indices: not narrower
        "c": (ClusterConfig(k=16),)})                        # float: 4-bit indices, fp32 book
    formats = plan_formats(plan)
    assert (formats["a"].weight_bits, formats["a"].codebook, formats["a"].codebook_bits) == \
        (4, 16, 8)
    assert (formats["b"].weight_bits, formats["b"].codebook) == (4, 0)
    assert (formats["c"].weight_bits, formats["c"].codebook, formats["c"].codebook_bits,
            formats["c"].act_bits) == (4, 16, 32, 32)


def test_a_clustered_layer_runs_in_its_codebook_format() -> None:
    """Latency: the indices are decoded to the codebook's values, so an int8-codebook layer
    runs int8 and a float one fp32, whatever the index width."""
    from autocompress.hardware.latency import executed_formats
    from autocompress.hardware.profile import load_profile

    pixel = load_profile("pixel4")
    assert executed_formats(pixel, LayerFormat(weight_bits=4, codebook=16, codebook_bits=8,
                                               act_bits=8)) == ("int8", "int8")
    assert executed_formats(pixel, LayerFormat(weight_bits=4, codebook=16, codebook_bits=32,
                                               act_bits=32)) == ("fp32", "fp32")


def test_cost_flash_matches_stored_size_of_a_clustered_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    plan = CompressionPlan(layers={"1": (QuantConfig(bits=8), ClusterConfig(k=16)),
                                   "3": (QuantConfig(bits=8),)})
    example = torch.randn(1, 64)
    compressed = apply_plan(model, plan, example)
    sizes = {row.fqn: row for row in stored_bytes(compressed, plan).layers}
    assert sizes["1"].codebook == 16                          # all 16 shared values distinct
    est = CostModel("stm32f746").estimate(inspect_model(model, example), plan_formats(plan))
    flash = {layer.fqn: layer.flash_kb * 1024 for layer in est.layers}
    for fqn in ("1", "3"):                                    # clustered, plain int8
        assert flash[fqn] == sizes[fqn].weight_bytes + sizes[fqn].extra_bytes, fqn


def test_per_tensor_scales_match_stored_size() -> None:
    """A clustered layer whose indices are not narrower than its bits (4-bit, k=16: no
    codebook stored) is still quantized per tensor, as is ``per_channel=False``: one scale;
    asymmetric weights add a zero point per scale."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16),
                          nn.ReLU(), nn.Linear(16, 10))
    plan = CompressionPlan(layers={"1": (QuantConfig(bits=4), ClusterConfig(k=16)),
                                   "3": (QuantConfig(bits=8, per_channel=False),),
                                   "5": (QuantConfig(bits=4, symmetric=False),)})
    example = torch.randn(1, 64)
    sizes = {row.fqn: row for row in stored_bytes(apply_plan(model, plan, example), plan).layers}
    assert sizes["1"].codebook == 0
    formats = plan_formats(plan)
    assert not formats["1"].per_channel and not formats["3"].per_channel
    est = CostModel("stm32f746").estimate(inspect_model(model, example), formats)
    flash = {layer.fqn: layer.flash_kb * 1024 for layer in est.layers}
    assert not formats["5"].symmetric and formats["5"].per_channel
    for fqn in ("1", "3", "5"):
        assert flash[fqn] == sizes[fqn].weight_bytes + sizes[fqn].extra_bytes, fqn


def test_stored_size_and_cost_agree_for_sparse_clusters_float_clusters_and_low_rank() -> None:
    """Zeros among clustered weights (zero needs a code of its own when stored dense, so the
    cheapest of dense, bitmask and CSR is taken on both sides), a clustered float layer
    (indices + fp32 codebook), and a low-rank pair (the first factor has no bias)."""
    from autocompress.compress import LowRankConfig, SparsityConfig

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 32),
                          nn.ReLU(), nn.Linear(32, 10))
    plan = CompressionPlan(layers={
        "1": (SparsityConfig(ratio=0.1), ClusterConfig(k=16), QuantConfig(bits=8)),
        "3": (ClusterConfig(k=16),),
        "5": (LowRankConfig(rank_ratio=0.5), QuantConfig(bits=8))})
    example = torch.randn(2, 256)
    compressed = apply_plan(model, plan, example)
    sizes = {row.fqn: row for row in stored_bytes(compressed, plan).layers}
    assert sizes["1"].encoding == "bitmask+codebook" and sizes["3"].codebook == 16
    est = CostModel("stm32f746").estimate(inspect_model(compressed, example[:1]),
                                          plan_formats(plan))
    flash = {layer.fqn: layer.flash_kb * 1024 for layer in est.layers}
    for fqn in ("1", "3", "5.0", "5.1"):
        assert flash[fqn] == pytest.approx(sizes[fqn].total_bytes), fqn
    assert sizes["5.0"].extra_bytes == 5 * 4                  # 5 scales, no bias
    assert sizes["5.1"].extra_bytes == 10 * 4 + 10 * 4        # bias and scales


def test_global_sparsity_is_applied_and_costed_at_one_ratio_whatever_the_layer_order() -> None:
    """Global-scope layers share the ratio of the first one by name: a plan replayed from
    plan.json (layers sorted) prunes as the search did, and the cost model counts what is
    applied (it costed each layer at its own ratio)."""
    from autocompress.compress import SparsityConfig

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 128),
                          nn.ReLU(), nn.Linear(128, 10))
    layers = {"3": (SparsityConfig(ratio=0.9, scope="global"), QuantConfig(bits=8)),
              "1": (SparsityConfig(ratio=0.25, scope="global"), QuantConfig(bits=8)),
              "5": (QuantConfig(bits=8),)}
    example = torch.randn(2, 256)
    plan = CompressionPlan(layers=layers)
    replayed = CompressionPlan.from_dict(plan.to_dict())
    a, b = apply_plan(model, plan, example), apply_plan(model, replayed, example)
    zeros = [sum(int((m.weight == 0).sum()) for m in (n[1], n[3])) for n in (a, b)]
    assert zeros[0] == zeros[1] == round(0.25 * (256 * 128 + 128 * 128))     # layer "1" leads
    sizes = {row.fqn: row for row in stored_bytes(a, plan).layers}
    est = CostModel("stm32f746").estimate(inspect_model(model, example[:1]), plan_formats(plan))
    cost = sum(layer.flash_kb * 1024 for layer in est.layers if layer.fqn in ("1", "3"))
    assert cost == pytest.approx(sizes["1"].total_bytes + sizes["3"].total_bytes, rel=0.03)
