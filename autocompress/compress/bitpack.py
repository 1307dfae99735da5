"""n-bit packing of integer codes, and exact recovery of the codes of quantized weights.

``pack_bits``/``unpack_bits``: unsigned codes of 1..16 bits laid end to end, least
significant bit first, in a uint8 tensor (two 4-bit codes per byte, eight 3-bit codes in
three bytes; only the last byte is padded).

``recover_codes`` finds integer codes and scales (and zero points) that reproduce a baked,
fake-quantized weight exactly, computed the way ``quantize.fake_quantize`` computes it:
``(code - qmax) * scale`` (symmetric, codes stored with an offset of ``qmax``) or
``(code - zero) * scale`` (asymmetric). The scale is the largest magnitude over
``qmax`` (the largest code is always used, clipped ranges included), corrected by a few
float32 ulps until every value matches; a weight that no such pair reproduces (not
quantized at that granularity) gives None, and its caller keeps it as float.

>>> codes = torch.tensor([3, 0, 15, 7]); unpack_bits(pack_bits(codes, 4), 4, 4).tolist()
[3, 0, 15, 7]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ULP_STEPS = (0, 1, -1, 2, -2, 3, -3)   # float32 steps tried around the estimated scale


def pack_bits(codes: Tensor, bits: int) -> Tensor:
    """Pack unsigned integer ``codes`` (any shape, each < 2**bits) into uint8, LSB first."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    flat = codes.reshape(-1).to(torch.int32)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= 1 << bits):
        raise ValueError(f"codes out of range for {bits} bits")
    if bits == 8:
        return flat.to(torch.uint8)
    shifts = torch.arange(bits, dtype=torch.int32)
    stream = ((flat[:, None] >> shifts) & 1).reshape(-1).to(torch.uint8)
    pad = (-stream.numel()) % 8
    stream = torch.cat([stream, stream.new_zeros(pad)]).reshape(-1, 8)
    weights = (1 << torch.arange(8, dtype=torch.int32))
    return (stream.to(torch.int32) * weights).sum(1).to(torch.uint8)


def unpack_bits(data: Tensor, bits: int, count: int) -> Tensor:
    """The ``count`` codes (int64) that ``pack_bits(codes, bits)`` packed into ``data``."""
    if bits == 8:
        return data[:count].to(torch.int64)
    stream = ((data.to(torch.int32)[:, None] >> torch.arange(8, dtype=torch.int32)) & 1)
    stream = stream.reshape(-1)[:count * bits].reshape(count, bits).to(torch.int64)
    return (stream << torch.arange(bits, dtype=torch.int64)).sum(1)


def packed_nbytes(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


@dataclass(frozen=True)
class QuantCodes:
    """Codes (unsigned, ``bits`` wide, shape of the weight), per-group scales and zero
    points (``groups`` = output channels when per channel, else 1)."""

    codes: Tensor
    scale: Tensor      # (groups,) float32
    zero: Tensor       # (groups,) int64; qmax for symmetric
    bits: int
    symmetric: bool

    @property
    def groups(self) -> int:
        return int(self.scale.numel())


def _step(x: Tensor, n: int) -> Tensor:
    direction = torch.full_like(x, float("inf") if n > 0 else 0.0)
    for _ in range(abs(n)):
        x = torch.nextafter(x, direction)
    return x


def recover_codes(weight: Tensor, bits: int, per_channel: bool,
                  symmetric: bool) -> QuantCodes | None:
    """Integer codes + scales that reproduce ``weight`` exactly (``torch.equal``), or None."""
    w = weight.detach().to(torch.float32)
    groups = w.shape[0] if per_channel and w.dim() > 1 else 1
    v = w.reshape(groups, -1)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        lo_code, hi_code = -qmax, qmax
        estimate = v.abs().amax(1) / qmax
        zero = torch.full((groups,), qmax, dtype=torch.int64)
    else:
        qmax = 2 ** bits - 1
        lo, hi = v.amin(1).clamp(max=0.0), v.amax(1).clamp(min=0.0)
        estimate = (hi - lo) / qmax
    estimate = torch.where(estimate > 0, estimate, torch.ones_like(estimate))
    best = torch.zeros(groups)
    found = torch.zeros(groups, dtype=torch.bool)
    for n in ULP_STEPS:
        scale = _step(estimate, n)[:, None]
        if not symmetric:
            zero = torch.round(-lo / scale[:, 0]).to(torch.int64)
            lo_code, hi_code = -zero[:, None], qmax - zero[:, None]
        q = torch.round(v / scale)
        ok = ((q * scale) == v).all(1) & (q >= lo_code).all(1) & (q <= hi_code).all(1)
        new = ok & ~found
        best = torch.where(new, scale[:, 0], best)
        found |= ok
        if bool(found.all()):
            break
    if not bool(found.all()):
        return None
    if not symmetric:   # the zero point of the scale each group settled on
        zero = torch.round(-lo / best).to(torch.int64)
    codes = torch.round(v / best[:, None]).to(torch.int64) + zero[:, None]
    return QuantCodes(codes=codes.reshape(w.shape), scale=best.to(torch.float32), zero=zero,
                      bits=bits, symmetric=symmetric)


def dequantize(codes: Tensor, groups: Tensor, scale: Tensor, zero: Tensor) -> Tensor:
    """float32 values of ``codes`` whose group (channel) index is ``groups``, computed as
    ``quantize.fake_quantize`` does: integer offset first, then one multiply by the scale."""
    return (codes - zero[groups]).to(torch.float32) * scale[groups]
