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

The encodings are ``weightcodec``'s. Everything else (BatchNorm, biases, activation ranges) is
stored as is. All bytes live in one uint8 tensor (``blob``), described by a list of entries
(key, shape, encoding, offsets; JSON, zlib-compressed, in a second uint8 tensor ``index``),
in a plain dict that ``torch.load(..., weights_only=True)`` reads; ``unpack_state`` rebuilds
the float state dict, equal (``torch.equal``; the sign of a zero is not kept) to the one
packed. One blob instead of a tensor per key, and a compressed index, keep the container
small: a tensor per key costs ~150 B of zip record each, and the uncompressed entry list
~8 KB on the 32x32 student (state-dict key names), against ~1.2 KB compressed.

>>> report = save_packed(baked_model, plan, Path("model.pt"))    # doctest: +SKIP
>>> model.load_state_dict(load_state(Path("model.pt")))           # doctest: +SKIP
"""
from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from autocompress.compress.plan import ClusterConfig, CompressionPlan, QuantConfig
from autocompress.compress.size import layer_config
from autocompress.compress.weightcodec import Blob, PackReport, pack_weight, read, unpack_weight

FORMAT = "autocompress.packed-state"
VERSION = 1
DTYPES: dict[str, torch.dtype] = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool)}


def pack_state(model: nn.Module, plan: CompressionPlan | None = None
               ) -> tuple[dict[str, Any], PackReport]:
    """The packed dict of a baked ``model`` (bits and granularity of each weight from
    ``plan``), and its byte report (``file_bytes`` filled by ``save_packed``)."""
    state = model.state_dict()
    weights = {f"{n}.weight": n for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))}
    blob, report, entries = Blob(), PackReport(), []
    for key, tensor in state.items():
        if key in weights and tensor.dtype == torch.float32:
            cfg = layer_config(plan, weights[key], QuantConfig)
            clustered = isinstance(layer_config(plan, weights[key], ClusterConfig),
                                   ClusterConfig)
            entries.append(pack_weight(blob, key, tensor, cfg if isinstance(cfg, QuantConfig)
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
            out[key] = unpack_weight(blob, shape, meta, segs)
        else:
            _, key, shape, dtype, offset = entry
            count = int(torch.Size(shape).numel())
            out[key] = read(blob, offset, DTYPES[dtype], count).reshape(shape)
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
