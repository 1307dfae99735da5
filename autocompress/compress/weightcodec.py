"""One conv/linear weight of a packed ``model.pt`` (``checkpoint``), in the cheapest exact
encoding found for it, and back: integer codes at the layer's bit-width with their scales
(and zero points), or float32; a codebook + packed indices where the weight has few distinct
values; dense positions, or the non-zeros only with a 1-bit mask or CSR. The bytes go to an
append-only buffer (``Blob``) that the checkpoint stores as one uint8 tensor.

>>> blob, report = Blob(), PackReport()
>>> entry = pack_weight(blob, "fc.weight", torch.tensor([[0.0, 0.5], [0.0, 0.0]]), None, report)
>>> data = torch.cat(blob.parts)
>>> unpack_weight(data, entry[2], entry[3], entry[4]).tolist(), report.layers["fc.weight"]
([[0.0, 0.5], [0.0, 0.0]], 'float32 bitmask')
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from autocompress.compress.bitpack import (
    dequantize,
    pack_bits,
    packed_nbytes,
    recover_codes,
    unpack_bits,
)
from autocompress.compress.plan import QuantConfig
from autocompress.hardware.memory import CSR_INDEX_BYTES, CSR_ROWPTR_BYTES


class Blob:
    """Append-only byte buffer; each segment aligned to its element size."""

    def __init__(self) -> None:
        self.parts: list[Tensor] = []
        self.size = 0

    def add(self, t: Tensor) -> int:
        t = t.detach().contiguous().cpu()
        pad = (-self.size) % t.element_size()
        if pad:
            self.parts.append(torch.zeros(pad, dtype=torch.uint8))
            self.size += pad
        offset = self.size
        raw = t.reshape(-1).view(torch.uint8) if t.dtype != torch.bool else t.reshape(-1).to(torch.uint8)
        self.parts.append(raw)
        self.size += raw.numel()
        return offset


def _bits(blob: Tensor, offset: int, bits: int, count: int) -> Tensor:
    return unpack_bits(blob[offset:offset + packed_nbytes(count, bits)], bits, count)


def read(blob: Tensor, offset: int, dtype: torch.dtype, count: int) -> Tensor:
    """``count`` values of ``dtype`` stored at ``offset`` of ``blob`` (a copy)."""
    if dtype == torch.bool:
        return blob[offset:offset + count].clone().to(torch.bool)
    size = torch.empty(0, dtype=dtype).element_size()
    return blob[offset:offset + count * size].clone().view(dtype)


@dataclass
class PackReport:
    """Bytes by part: ``weights`` (packed values, indices, codebooks, masks), ``scales``
    (scales and zero points), ``other`` (tensors kept as they are), ``index`` (the entry
    list and container). ``layers``: fqn -> encoding; ``fallback``: weights kept float
    because their quantization could not be reproduced exactly."""

    weights: int = 0
    scales: int = 0
    other: int = 0
    file_bytes: int = 0
    layers: dict[str, str] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.file_bytes - self.weights - self.scales - self.other

    def to_dict(self) -> dict[str, Any]:
        return {"file_bytes": self.file_bytes, "weights": self.weights, "scales": self.scales,
                "other": self.other, "index": self.index, "layers": dict(self.layers),
                "fallback": list(self.fallback)}


def _positions(w: Tensor) -> dict[str, tuple[int, Tensor | None]]:
    """Position encodings: name -> (bytes, selection of stored elements or None = all)."""
    flat = w.reshape(-1)
    nz = flat != 0
    count = int(nz.sum())
    rows = w.shape[0]
    out: dict[str, tuple[int, Tensor | None]] = {"dense": (0, None)}
    if count < flat.numel():
        out["bitmask"] = (packed_nbytes(flat.numel(), 1), nz)
        if flat.numel() // rows <= 1 << 16:   # columns fit 16 bits (stored int16, read & 0xFFFF)
            out["csr"] = (count * CSR_INDEX_BYTES + (rows + 1) * CSR_ROWPTR_BYTES, nz)
    return out


def _symbols(sym: Tensor, bits: int) -> tuple[int, str]:
    """Bytes and kind of the cheapest symbol stream: plain or codebook + indices."""
    plain = packed_nbytes(sym.numel(), bits) if bits < 32 else sym.numel() * 4
    distinct = int(torch.unique(sym).numel()) if sym.numel() else 0
    if distinct >= 1:
        idx_bits = max(1, (distinct - 1).bit_length())
        book = packed_nbytes(distinct, bits) if bits < 32 else distinct * 4
        if idx_bits < bits and book + packed_nbytes(sym.numel(), idx_bits) < plain:
            return book + packed_nbytes(sym.numel(), idx_bits), "codebook"
    return plain, "plain"


def pack_weight(blob: Blob, name: str, w: Tensor, cfg: QuantConfig | None,
                report: PackReport, *, clustered: bool = False) -> list[Any]:
    """Append ``w`` (the baked weight ``name``, quantized as ``cfg`` says, or float) to
    ``blob`` in its cheapest exact encoding, count its bytes in ``report``; returns its index
    entry ``["w", name, shape, meta, segment offsets]``."""
    bits, q = 32, None
    if cfg is not None and cfg.bits < 32:
        order = (False, True) if clustered else (cfg.per_channel, not cfg.per_channel)
        for per_channel in order:            # a clustered layer is per-tensor: one scale
            q = recover_codes(w, cfg.bits, per_channel, cfg.symmetric)
            if q is not None:
                bits = cfg.bits
                break
        else:
            report.fallback.append(name)
    values = w.reshape(-1) if q is None else q.codes.reshape(-1)
    best: tuple[int, str, str, Tensor | None] | None = None
    for pos, (pos_bytes, sel) in _positions(w).items():
        sym = values if sel is None else values[sel]
        sym_bytes, kind = _symbols(sym, bits)
        if best is None or pos_bytes + sym_bytes < best[0]:
            best = (pos_bytes + sym_bytes, pos, kind, sel)
    assert best is not None
    _, pos, kind, sel = best
    start = blob.size
    segs: dict[str, int] = {}
    if pos == "bitmask":
        segs["mask"] = blob.add(pack_bits(sel.to(torch.int64), 1))  # type: ignore[union-attr]
    elif pos == "csr":
        rows = w.shape[0]
        nz = sel.reshape(rows, -1)  # type: ignore[union-attr]
        cols = torch.nonzero(nz)[:, 1]
        segs["rowptr"] = blob.add(torch.cat([torch.zeros(1, dtype=torch.int64),
                                             nz.sum(1).cumsum(0)]).to(torch.int32))
        segs["cols"] = blob.add(cols.to(torch.int16))
    sym = values if sel is None else values[sel]
    meta: dict[str, Any] = {"pos": pos, "n": int(sym.numel()), "bits": bits}
    if kind == "codebook":
        book, idx = torch.unique(sym, return_inverse=True)
        meta["book"] = int(book.numel())
        meta["ibits"] = max(1, (int(book.numel()) - 1).bit_length())
        segs["book"] = blob.add(pack_bits(book, bits) if bits < 32 else book.float())
        segs["sym"] = blob.add(pack_bits(idx, meta["ibits"]))
    else:
        segs["sym"] = blob.add(pack_bits(sym, bits) if bits < 32 else sym.float())
    report.weights += blob.size - start
    if q is not None:
        start = blob.size
        meta["groups"], meta["symmetric"] = q.groups, int(q.symmetric)
        segs["scale"] = blob.add(q.scale)
        if not q.symmetric:
            segs["zero"] = blob.add(q.zero.to(torch.uint8))
        report.scales += blob.size - start
    report.layers[name] = f"{'int' + str(bits) if q is not None else 'float32'} {pos}" + \
        (" +codebook" if kind == "codebook" else "")
    return ["w", name, list(w.shape), meta, segs]


def unpack_weight(blob: Tensor, shape: list[int], meta: Mapping[str, Any],
                  segs: Mapping[str, int]) -> Tensor:
    """The float weight an index entry's ``shape``, ``meta`` and ``segs`` describe."""
    numel = int(torch.Size(shape).numel())
    bits, n, pos = int(meta["bits"]), int(meta["n"]), meta["pos"]
    if pos == "dense":
        where = torch.arange(numel)
    elif pos == "bitmask":
        mask = _bits(blob, segs["mask"], 1, numel).to(torch.bool)
        where = torch.nonzero(mask)[:, 0]
    else:
        rows = shape[0]
        rowptr = read(blob, segs["rowptr"], torch.int32, rows + 1).to(torch.int64)
        cols = read(blob, segs["cols"], torch.int16, n).to(torch.int64) & 0xFFFF
        row_of = torch.repeat_interleave(torch.arange(rows), rowptr[1:] - rowptr[:-1])
        where = row_of * (numel // rows) + cols

    def stream(offset: int, count: int, width: int) -> Tensor:
        if width < 32:
            return _bits(blob, offset, width, count)
        return read(blob, offset, torch.float32, count)

    if "book" in meta:
        book = stream(segs["book"], int(meta["book"]), bits)
        sym = book[_bits(blob, segs["sym"], int(meta["ibits"]), n)]
    else:
        sym = stream(segs["sym"], n, bits)
    if bits < 32:
        groups = int(meta["groups"])
        scale = read(blob, segs["scale"], torch.float32, groups)
        zero = read(blob, segs["zero"], torch.uint8, groups).to(torch.int64) \
            if not meta["symmetric"] else torch.full((groups,), 2 ** (bits - 1) - 1)
        sym = dequantize(sym, where // (numel // groups), scale, zero)
    out = torch.zeros(numel, dtype=torch.float32)
    out[where] = sym
    return out.reshape(shape)
