"""Packed checkpoints (``model.pt``): a compressed model's state dict at its stored size.

Every conv/linear weight is stored in the cheapest exact encoding found for it:

- values: integer codes packed at the layer's bit-width (``bitpack``; two 4-bit codes per
  byte) + a float32 scale per output channel (per tensor when so quantized) + a uint8 zero
  point per group when asymmetric; float32 for float layers, and for a weight whose
  quantization cannot be reproduced exactly (said in ``PackReport.fallback``);
- a codebook when the weight has few distinct values (clustering): the distinct values
  (codes at the bit-width, or float32) + indices packed at ceil(log2 n) bits;
- positions: dense, or the non-zeros only with a 1-bit mask or CSR (int16 column per
  non-zero, int32 row pointers) when that is smaller.

Everything else (BatchNorm, biases, activation ranges) is stored as is. All bytes live in
one uint8 tensor (``blob``), described by a list of entries (key, shape, encoding, offsets;
JSON, zlib-compressed, in a second uint8 tensor ``index``), in a plain dict that
``torch.load(..., weights_only=True)`` reads; ``unpack_state`` rebuilds the float state dict,
equal (``torch.equal``; the sign of a zero is not kept) to the one packed. One blob instead of
a tensor per key, and a compressed index, keep the container small: a tensor per key costs
~150 B of zip record each, and the uncompressed entry list ~8 KB on the 32x32 student
(state-dict key names), against ~1.2 KB compressed.

>>> report = save_packed(baked_model, plan, Path("model.pt"))    # doctest: +SKIP
>>> model.load_state_dict(load_state(Path("model.pt")))           # doctest: +SKIP
"""
from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from autocompress.compress.bitpack import (
    dequantize,
    pack_bits,
    packed_nbytes,
    recover_codes,
    unpack_bits,
)
from autocompress.compress.plan import ClusterConfig, CompressionPlan, QuantConfig
from autocompress.compress.size import layer_config
from autocompress.hardware.memory import CSR_INDEX_BYTES, CSR_ROWPTR_BYTES

FORMAT = "autocompress.packed-state"
VERSION = 1
DTYPES: dict[str, torch.dtype] = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool)}


class _Blob:
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


def _read(blob: Tensor, offset: int, dtype: torch.dtype, count: int) -> Tensor:
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


def _pack_weight(blob: _Blob, name: str, w: Tensor, cfg: QuantConfig | None,
                 report: PackReport, *, clustered: bool = False) -> list[Any]:
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


def _unpack_weight(blob: Tensor, shape: list[int], meta: Mapping[str, Any],
                   segs: Mapping[str, int]) -> Tensor:
    numel = int(torch.Size(shape).numel())
    bits, n, pos = int(meta["bits"]), int(meta["n"]), meta["pos"]
    if pos == "dense":
        where = torch.arange(numel)
    elif pos == "bitmask":
        mask = _bits(blob, segs["mask"], 1, numel).to(torch.bool)
        where = torch.nonzero(mask)[:, 0]
    else:
        rows = shape[0]
        rowptr = _read(blob, segs["rowptr"], torch.int32, rows + 1).to(torch.int64)
        cols = _read(blob, segs["cols"], torch.int16, n).to(torch.int64) & 0xFFFF
        row_of = torch.repeat_interleave(torch.arange(rows), rowptr[1:] - rowptr[:-1])
        where = row_of * (numel // rows) + cols

    def stream(offset: int, count: int, width: int) -> Tensor:
        if width < 32:
            return _bits(blob, offset, width, count)
        return _read(blob, offset, torch.float32, count)

    if "book" in meta:
        book = stream(segs["book"], int(meta["book"]), bits)
        sym = book[_bits(blob, segs["sym"], int(meta["ibits"]), n)]
    else:
        sym = stream(segs["sym"], n, bits)
    if bits < 32:
        groups = int(meta["groups"])
        scale = _read(blob, segs["scale"], torch.float32, groups)
        zero = _read(blob, segs["zero"], torch.uint8, groups).to(torch.int64) \
            if not meta["symmetric"] else torch.full((groups,), 2 ** (bits - 1) - 1)
        sym = dequantize(sym, where // (numel // groups), scale, zero)
    out = torch.zeros(numel, dtype=torch.float32)
    out[where] = sym
    return out.reshape(shape)


def pack_state(model: nn.Module, plan: CompressionPlan | None = None
               ) -> tuple[dict[str, Any], PackReport]:
    """The packed dict of a baked ``model`` (bits and granularity of each weight from
    ``plan``), and its byte report (``file_bytes`` filled by ``save_packed``)."""
    state = model.state_dict()
    weights = {f"{n}.weight": n for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))}
    blob, report, entries = _Blob(), PackReport(), []
    for key, tensor in state.items():
        if key in weights and tensor.dtype == torch.float32:
            cfg = layer_config(plan, weights[key], QuantConfig)
            clustered = isinstance(layer_config(plan, weights[key], ClusterConfig),
                                   ClusterConfig)
            entries.append(_pack_weight(blob, key, tensor, cfg if isinstance(cfg, QuantConfig)
                                        else None, report, clustered=clustered))
        else:
            dtype = str(tensor.dtype).removeprefix("torch.")
            if dtype not in DTYPES:
                raise TypeError(f"{key}: cannot pack dtype {dtype}")
            start = blob.size
            entries.append(["t", key, list(tensor.shape), dtype, blob.add(tensor)])
            report.other += blob.size - start
    data = torch.cat(blob.parts) if blob.parts else torch.zeros(0, dtype=torch.uint8)
    index = zlib.compress(json.dumps(entries, separators=(",", ":")).encode(), 9)
    return {"format": FORMAT, "version": VERSION, "blob": data,
            "index": torch.frombuffer(bytearray(index), dtype=torch.uint8)}, report


def unpack_state(packed: Mapping[str, Any]) -> dict[str, Tensor]:
    """The float state dict a packed dict holds (``pack_state``'s inverse)."""
    if packed.get("format") != FORMAT or packed.get("version") != VERSION:
        raise ValueError(f"not a {FORMAT} v{VERSION} checkpoint")
    blob: Tensor = packed["blob"]
    out: dict[str, Tensor] = {}
    entries = json.loads(zlib.decompress(packed["index"].numpy().tobytes()))
    for entry in entries:
        if entry[0] == "w":
            _, key, shape, meta, segs = entry
            out[key] = _unpack_weight(blob, shape, meta, segs)
        else:
            _, key, shape, dtype, offset = entry
            count = int(torch.Size(shape).numel())
            out[key] = _read(blob, offset, DTYPES[dtype], count).reshape(shape)
    return out


def save_packed(model: nn.Module, plan: CompressionPlan | None, path: Path) -> PackReport:
    """Write ``model``'s packed state dict to ``path`` (atomically); returns its byte report.
    Raises if unpacking would not give back the exact state dict."""
    packed, report = pack_state(model, plan)
    state, again = model.state_dict(), unpack_state(packed)
    for key, value in state.items():
        if not torch.equal(value, again[key]):
            raise RuntimeError(f"packed checkpoint does not reproduce {key}")
    buf = io.BytesIO()
    torch.save(packed, buf)
    write_durable(Path(path), buf.getvalue())
    report.file_bytes = len(buf.getvalue())
    return report


def write_durable(path: Path, data: bytes) -> None:
    """Write beside, fsync, rename: on disk before the trial's record (fsync'd) says so,
    and never half a file under ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def load_state(path: Path) -> dict[str, Tensor]:
    """State dict of a ``model.pt``: packed (``save_packed``) or a plain state dict (runs
    written before packing existed), loaded with ``weights_only=True``."""
    data = torch.load(Path(path), weights_only=True)
    if isinstance(data, Mapping) and data.get("format") == FORMAT:
        return unpack_state(data)
    return dict(data)
