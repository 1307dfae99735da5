"""Numeric formats: names (``int8``, ``fp32``), bit-widths, and the per-layer choice.

A format name is ``int<bits>`` or ``fp<bits>``; 32 and 16 bits mean float, anything else an
integer format. This module is pure and tiny so that profile, keys, latency and memory can
all share it without import cycles.

>>> format_for_bits(4), format_for_bits(16), format_for_bits(32)
('int4', 'fp16', 'fp32')
>>> bits_of("int8"), is_float("fp16")
(8, True)
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

_FORMAT_RE = re.compile(r"^(int|fp)([1-9][0-9]?)$")

Int8Activations = Literal["uint8", "int8", "int8-symmetric"]
# How a runtime takes int8 activations (a profile's ``formats.int8_activations``; the form
# export writes model.int8.onnx in): uint8 with a zero point (ONNX Runtime's fast x86
# kernels), int8 with a zero point (TFLite, TFLite Micro, CMSIS-NN), int8 with zero point 0
# (TensorRT: symmetric only).
INT8_ACTIVATIONS: tuple[Int8Activations, ...] = ("uint8", "int8", "int8-symmetric")


@dataclass(frozen=True, kw_only=True)
class LayerFormat:
    """How one layer is compressed, as far as the cost model cares.

    ``weight_bits``/``act_bits``: 32 (or 16) mean float, 2..8 mean integer.
    ``sparsity``: fraction of weights that are zero (unstructured), in [0, 1).
    ``codebook``: shared values of a clustered layer (0 = not clustered); its weights are
    then ``weight_bits``-bit indices into ``codebook`` entries of ``codebook_bits`` each
    (0: ``weight_bits``), which Flash counts once per layer.
    ``per_channel``: an integer layer stores one scale per output channel; False: one per
    tensor (``QuantConfig.per_channel=False``, or a clustered layer whose indices are not
    narrower than its bits: clustering quantizes per tensor). A codebook implies one scale.
    ``symmetric``: False adds a 1-byte zero point per scale (asymmetric integer weights).

    >>> LayerFormat(weight_bits=4).weight_format
    'int4'
    """

    weight_bits: int = 8
    act_bits: int = 8
    sparsity: float = 0.0
    codebook: int = 0
    codebook_bits: int = 0
    per_channel: bool = True
    symmetric: bool = True

    def __post_init__(self) -> None:
        for name in ("weight_bits", "act_bits"):
            bits = getattr(self, name)
            if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 32:
                raise ValueError(f"{name} must be an int in 1..32, got {bits!r}")
        for name, high in (("codebook", 1 << 16), ("codebook_bits", 32)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
                raise ValueError(f"{name} must be an int in 0..{high}, got {value!r}")
        for name in ("per_channel", "symmetric"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.sparsity) < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity!r}")

    @property
    def weight_format(self) -> str:
        return format_for_bits(self.weight_bits)

    @property
    def value_bits(self) -> int:
        """Bits of the weight values the layer computes with: the codebook's entries for a
        clustered layer (its ``weight_bits`` are then index bits), else ``weight_bits``."""
        return (self.codebook_bits or self.weight_bits) if self.codebook else self.weight_bits

    @property
    def act_format(self) -> str:
        return format_for_bits(self.act_bits)


def format_for_bits(bits: int, kind: Literal["int", "float"] | None = None) -> str:
    """Format name for a bit-width: 32 -> fp32, 16 -> fp16, else ``int<bits>``.

    ``kind`` forces the family (``format_for_bits(16, "int") == "int16"``).

    >>> format_for_bits(8)
    'int8'
    """
    if kind == "float" or (kind is None and bits in (16, 32)):
        return f"fp{bits}"
    return f"int{bits}"


def is_format(name: str) -> bool:
    """True for ``int<bits>`` / ``fp<bits>`` names (bits 1..99)."""
    return isinstance(name, str) and _FORMAT_RE.match(name) is not None


@lru_cache(maxsize=256)
def bits_of(fmt: str) -> int:
    """Bit-width of a format name. ``bits_of('int4') == 4``."""
    match = _FORMAT_RE.match(fmt)
    if match is None:
        raise ValueError(f"not a format name: {fmt!r} (expected e.g. int8, fp32)")
    return int(match.group(2))


def is_float(fmt: str) -> bool:
    return fmt.startswith("fp")


def bytes_per_element(fmt: str) -> float:
    """Packed storage per element in bytes (``int4`` -> 0.5)."""
    return bits_of(fmt) / 8.0


def runnable_format(fmt: str, supported: Iterable[str]) -> str:
    """The format a device actually executes when asked for ``fmt``.

    A native format runs as itself. Otherwise the narrowest supported format at least as
    wide (same family preferred: int4 -> int8, fp16 -> fp32); if none is wide enough, the
    widest supported one.

    >>> runnable_format("int4", ["int8", "fp32"])
    'int8'
    >>> runnable_format("fp16", ["int8", "fp32"])
    'fp32'
    """
    return _runnable(fmt, tuple(supported))


@lru_cache(maxsize=1024)
def _runnable(fmt: str, native: tuple[str, ...]) -> str:
    if fmt in native or not native:
        return fmt
    bits = bits_of(fmt)
    wider = [f for f in native if bits_of(f) >= bits]
    same_family = [f for f in wider if is_float(f) == is_float(fmt)]
    pool = same_family or wider
    if not pool:
        return max(native, key=lambda f: (bits_of(f), is_float(f)))
    return min(pool, key=lambda f: (bits_of(f), is_float(f) != is_float(fmt)))


def compute_format(weight_fmt: str, act_fmt: str) -> str:
    """The arithmetic a kernel runs in: the wider of the two (float wins a tie)."""
    return max((weight_fmt, act_fmt), key=lambda f: (bits_of(f), is_float(f)))
