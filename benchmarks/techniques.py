"""Every compression technique alone and combined, on a fixed student, measured in one run.

Two datasets: sklearn digits (1x8x8) and a harder variant generated here with a seed
(3x32x32: digits upsampled, random affine distortion, random per-channel colour and
Gaussian noise). One dense student is trained per dataset; each technique is applied to it
and fine-tuned for the same few epochs (``train.finetune.compress_and_finetune``; PTQ:
calibrated, not fine-tuned; iterative sparsity: raised over the fine-tune epochs).
Columns: test accuracy (torch and onnxruntime int8), weight parameters (non-zero), stored
bytes (``compress.size.stored_bytes``: packed bits, sparse/codebook encodings), the packed
``model.pt`` (``compress.checkpoint``), ONNX file sizes and onnxruntime latency (median,
batch 1, 1 thread) of the fp32 export and of its static int8 QDQ quantization. Size
breakdowns of the int8 ONNX file and of the 4-bit stored bytes follow the table. A KD study
trains the 32x32 student with and without a teacher on 3 seeds.

    python benchmarks/techniques.py [--epochs 8] [--finetune 3] [--out runs/bench_techniques]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autocompress.compress import (
    ClusterConfig,
    CompressionPlan,
    DistillConfig,
    LowRankConfig,
    PruneConfig,
    QuantConfig,
    SparsityConfig,
    TechniqueConfig,
    bake,
    stored_bytes,
)
from autocompress.compress.actquant import input_ranges, remove_act_quant
from autocompress.compress.checkpoint import save_packed
from autocompress.compress.prune import prune_groups
from autocompress.compress.size import BIAS_BYTES, SizeReport
from autocompress.data import DataBundle, Split, load_digits_bundle
from autocompress.export.compact import onnx_size_breakdown
from autocompress.export.onnx_io import export_onnx, measure_latency, onnx_accuracy
from autocompress.export.quant_ort import quantize_int8
from autocompress.graph import inspect_model
from autocompress.models import ResNetArch, StudentArch, build_resnet, build_student
from autocompress.train import TrainSettings, accuracy, fit, predict
from autocompress.train.finetune import compress_and_finetune

CLASSIFIER = "classifier"
Layers = dict[str, tuple[TechniqueConfig, ...]]


def distorted_digits(seed: int, size: int = 32, noise: float = 0.15) -> DataBundle:
    """Digits at 3 x size x size: seeded affine (rotation +-15 deg, scale 0.85..1.05,
    shear +-0.1, shift +-10%), random background colour, digit lighter or darker than it
    by 0.5..0.9 per channel, Gaussian noise (sigma 0.15)."""
    base = load_digits_bundle(seed)
    gen = torch.Generator().manual_seed(seed + 1000)

    def warp(split: Split) -> Split:
        n = len(split)
        x = F.interpolate(split.x, size=(size, size), mode="bilinear", align_corners=False)
        angle = (torch.rand(n, generator=gen) - 0.5) * (30 * np.pi / 180)
        scale = 0.85 + 0.2 * torch.rand(n, generator=gen)
        shear = (torch.rand(n, generator=gen) - 0.5) * 0.2
        shift = (torch.rand(n, 2, generator=gen) - 0.5) * 0.2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin + shear, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
        x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
        bg = 0.25 + 0.5 * torch.rand(n, 3, 1, 1, generator=gen)
        sign = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, -1.0, 1.0)
        contrast = sign * (0.5 + 0.4 * torch.rand(n, 3, 1, 1, generator=gen))
        x = bg + contrast * x + noise * torch.randn(n, 3, size, size, generator=gen)
        return Split(x.float().contiguous(), split.y)

    return DataBundle(train=warp(base.train), val=warp(base.val), test=warp(base.test),
                      num_classes=10, name=f"distorted_digits_{size}")


def techniques(model: nn.Module, example: torch.Tensor) -> dict[str, Layers]:
    """name -> plan layers for the fixed student."""
    layers = [f.fqn for f in inspect_model(model, example).compressible]
    convs = [f for f in layers if f != CLASSIFIER]
    leaders = [f for f in prune_groups(model, example, (CLASSIFIER,)) if f != CLASSIFIER]
    dense_1x1 = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
                 and m.groups == 1 and m.kernel_size == (1, 1) and m.in_channels >= 16]

    def each(names: list[str], *cfgs: TechniqueConfig) -> Layers:
        return {f: cfgs for f in names}

    def quant(bits: int, **kw: Any) -> Layers:
        return {**each(convs, QuantConfig(bits=bits, **kw)),
                CLASSIFIER: (QuantConfig(bits=8, **kw),)}

    def combo(sparsity: float, act_bits: int = 32) -> Layers:
        out: Layers = {f: (PruneConfig(ratio=0.5),) for f in leaders}
        for f in layers:
            extra: tuple[TechniqueConfig, ...] = \
                (SparsityConfig(ratio=sparsity),) if sparsity and f != CLASSIFIER else ()
            out[f] = (*out.get(f, ()), *extra,
                      QuantConfig(bits=4 if f != CLASSIFIER else 8, act_bits=act_bits))
        return out

    return {
        "fp32 dense": {},
        "prune 50% L1": each(leaders, PruneConfig(ratio=0.5)),
        "prune 50% Taylor": each(leaders, PruneConfig(ratio=0.5, criterion="taylor")),
        "sparsity 75%": each(layers, SparsityConfig(ratio=0.75)),
        "sparsity 75% iterative (3 steps, cubic)": each(layers, SparsityConfig(ratio=0.75,
                                                                               steps=3)),
        "sparsity 75% global": each(layers, SparsityConfig(ratio=0.75, scope="global")),
        "low-rank 0.25 (1x1)": each(dense_1x1, LowRankConfig(rank_ratio=0.25)),
        "cluster k=16": each(layers, ClusterConfig(k=16)),
        "w8 QAT": quant(8),
        "w4 QAT": quant(4),
        "w4 PTQ (MSE)": quant(4, mode="ptq", calib="mse"),
        "w4 a8 QAT": quant(4, act_bits=8),
        "combo: prune50 + w4 a8 QAT": combo(0.0, 8),
        "combo: prune50 + sparse50 + w4 QAT": combo(0.5),
    }


def stored_parts(size: SizeReport) -> dict[str, float]:
    """Stored bytes by part: integer weight values (packed, with codebooks and sparse
    indices), float weights of layers left unquantized, biases, scales/zero points and
    activation quantization parameters."""
    bias = sum(t.rows * BIAS_BYTES for t in size.layers)
    return {"int_values": sum(t.weight_bytes for t in size.layers if t.bits < 32),
            "float_weights": sum(t.weight_bytes for t in size.layers if t.bits >= 32),
            "bias": bias, "scales": sum(t.extra_bytes for t in size.layers) - bias}


def ort_metrics(model: nn.Module, data: DataBundle, tmp: Path, name: str) -> dict[str, Any]:
    """Export fp32 (activation fake quant removed: the int8 QDQ file quantizes activations
    itself, at 8 bits, over the torch-calibrated ranges where the plan has them) and int8
    QDQ; file sizes, test accuracy of int8, latency of both."""
    fp32, int8 = tmp / f"{name}.onnx", tmp / f"{name}.int8.onnx"
    export_onnx(remove_act_quant(copy.deepcopy(model)), data.example(), fp32)
    ranges = input_ranges(model, data.example())    # torch-calibrated activation ranges
    quantize_int8(fp32, int8, data.train.x[:256].numpy(), input_ranges=ranges)
    x1 = data.test.x[:1].numpy()
    out: dict[str, Any] = {"onnx_fp32_kb": fp32.stat().st_size / 1024,
                           "onnx_int8_kb": int8.stat().st_size / 1024,
                           "onnx_int8_parts": onnx_size_breakdown(int8)}
    out["ort_fp32_us"] = measure_latency(fp32, x1, threads=1, iters=300)["median_ms"] * 1e3
    out["ort_int8_us"] = measure_latency(int8, x1, threads=1, iters=300)["median_ms"] * 1e3
    out["acc_ort_int8"] = onnx_accuracy(int8, data.test.x.numpy(), data.test.y.numpy())
    return out


def run_dataset(data: DataBundle, arch: StudentArch, epochs: int, finetune: int, lr: float,
                tmp: Path, log: Callable[[str], None]) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    dense = build_student(arch, in_channels=data.input_shape[0], num_classes=10)
    t0 = time.perf_counter()
    fit(dense, data.train, TrainSettings(epochs=epochs, lr=lr), seed=0)
    log(f"  dense student trained in {time.perf_counter() - t0:.1f}s")
    example = data.example()
    calib = data.train.x[:256]
    rows = []
    for i, (name, layers) in enumerate(techniques(dense, example).items()):
        t0 = time.perf_counter()
        plan = CompressionPlan(layers=layers)
        model, info = compress_and_finetune(
            dense, plan, data.train, TrainSettings(epochs=finetune, lr=lr / 2),
            example=example, seed=1, round_to=4, ignored=(CLASSIFIER,), calibration=calib)
        model = bake(model).eval()
        size = stored_bytes(model, plan)
        packed = save_packed(model, plan, tmp / f"{data.name}_{i}.pt")
        row: dict[str, Any] = {"technique": name, "acc": accuracy(model, data.test),
                               "finetune_epochs": info.epochs,
                               "params": size.params,
                               "nonzero": sum(t.nonzero for t in size.layers),
                               "stored_bytes": size.total_bytes,
                               "stored_parts": stored_parts(size),
                               "weight_bytes": sum(t.weight_bytes for t in size.layers),
                               "model_pt_kb": packed.file_bytes / 1024,
                               "model_pt_parts": packed.to_dict()}
        row.update(ort_metrics(model, data, tmp, f"{data.name}_{i}"))
        rows.append(row)
        log(f"  {name:38s} acc {row['acc']:.4f}  {row['stored_bytes'] / 1024:7.1f} KB  "
            f"fp32 {row['ort_fp32_us']:6.1f} us  int8 {row['ort_int8_us']:6.1f} us  "
            f"({time.perf_counter() - t0:.1f}s)")
    return rows


def kd_study(data: DataBundle, arch: StudentArch, epochs: int, lr: float, seeds: int,
             log: Callable[[str], None]) -> dict[str, Any]:
    # Teacher: a wider ResNet-like net (the 3-conv TeacherCNN of the digits demo cannot see a
    # whole distorted 32x32 digit and stayed near chance here).
    torch.manual_seed(0)
    teacher = build_resnet(ResNetArch(width_mult=2.0, strides=(2, 2, 2)),
                           in_channels=data.input_shape[0], num_classes=10)
    fit(teacher, data.train, TrainSettings(epochs=epochs + epochs // 2, lr=lr), seed=0)
    logits = predict(teacher, data.train)
    distill = DistillConfig(temperature=4.0, alpha=0.7)
    out: dict[str, Any] = {"teacher_acc": accuracy(teacher, data.test), "kd": [], "plain": []}
    for seed in range(seeds):
        for key, kw in (("plain", {}), ("kd", {"teacher_logits": logits, "distill": distill})):
            torch.manual_seed(seed)
            net = build_student(arch, in_channels=data.input_shape[0], num_classes=10)
            fit(net, data.train, TrainSettings(epochs=epochs, lr=lr), seed=seed, **kw)
            out[key].append(accuracy(net, data.test))
        log(f"  seed {seed}: plain {out['plain'][-1]:.4f}  kd {out['kd'][-1]:.4f}")
    out["median_plain"], out["median_kd"] = (statistics.median(out["plain"]),
                                             statistics.median(out["kd"]))
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| technique | fine-tune epochs | acc torch | acc ORT int8 | weights (non-zero) | "
            "stored KB | model.pt KB | ONNX fp32 / int8 KB | ORT fp32 µs | ORT int8 µs |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['technique']} | {r['finetune_epochs']} | {r['acc']:.4f} | "
                     f"{r['acc_ort_int8']:.4f} | "
                     f"{r['params']} ({r['nonzero']}) | {r['stored_bytes'] / 1024:.1f} | "
                     f"{r['model_pt_kb']:.1f} | "
                     f"{r['onnx_fp32_kb']:.1f} / {r['onnx_int8_kb']:.1f} | "
                     f"{r['ort_fp32_us']:.1f} | {r['ort_int8_us']:.1f} |")
    return "\n".join(lines)


def _kb(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v / 1024:.1f}" for k, v in parts.items())


def figures(rows: list[dict[str, Any]], kd: dict[str, Any] | None) -> list[str]:
    """The issue's targets on the 32x32 student, measured, with the size breakdowns."""
    by = {r["technique"]: r for r in rows}
    d, p, w8, w4 = by["fp32 dense"], by["prune 50% L1"], by["w8 QAT"], by["w4 QAT"]
    sp, it = by["sparsity 75%"], by["sparsity 75% iterative (3 steps, cubic)"]
    int8 = d["onnx_int8_parts"]
    lines = [
        f"- 50% structured pruning, ORT fp32 speed-up: {d['ort_fp32_us'] / p['ort_fp32_us']:.2f}x"
        " (target >= 1.5x)",
        f"- int8 QDQ vs fp32: {d['ort_fp32_us'] / d['ort_int8_us']:.2f}x faster (target >= 1.3x),"
        f" file {d['onnx_int8_kb'] / d['onnx_fp32_kb']:.2f}x (target <= 0.4x)",
        f"  - int8 file of the dense student, KB: {_kb(int8)} (total {d['onnx_int8_kb']:.1f};"
        f" the int8 weights alone are {int8['weights'] / 1024 / d['onnx_fp32_kb']:.2f}x of the"
        " fp32 file)",
        f"- 4-bit vs 8-bit weights, stored bytes: {w4['stored_bytes'] / w8['stored_bytes']:.2f}x"
        f" (target <= 0.55x; weight values alone {w4['weight_bytes'] / w8['weight_bytes']:.2f}x)",
        f"  - w4 stored, KB: {_kb(w4['stored_parts'])}; w8 stored, KB: {_kb(w8['stored_parts'])}"
        " (bias: 4 B per output channel, scales: 4 B per output channel; the depthwise convs"
        " have 9 weights per channel)",
        f"- packed model.pt, 4-bit vs 8-bit: {w4['model_pt_kb']:.1f} vs {w8['model_pt_kb']:.1f} KB"
        f" ({w4['model_pt_kb'] / w8['model_pt_kb']:.2f}x); w4 model.pt = weights"
        f" {w4['model_pt_parts']['weights'] / 1024:.1f} + scales"
        f" {w4['model_pt_parts']['scales'] / 1024:.1f} + other state (BatchNorm unfolded, biases)"
        f" {w4['model_pt_parts']['other'] / 1024:.1f} + index {w4['model_pt_parts']['index'] / 1024:.1f}"
        f" KB; stored_bytes {w4['stored_bytes'] / 1024:.1f} KB",
        f"- QAT vs PTQ at 4 bits: {w4['acc']:.4f} vs {by['w4 PTQ (MSE)']['acc']:.4f}"
        f" (target QAT >= PTQ; PTQ fine-tune epochs: {by['w4 PTQ (MSE)']['finetune_epochs']})",
        f"- sparsity 75%, one-shot vs iterative (3 cubic steps over the fine-tune):"
        f" {sp['acc']:.4f} vs {it['acc']:.4f} (non-zero weights {sp['nonzero']} vs {it['nonzero']})",
    ]
    if kd is not None:
        lines.append(f"- KD vs no teacher (median of {len(kd['kd'])} seeds): "
                     f"{kd['median_kd']:.4f} vs {kd['median_plain']:.4f} "
                     f"({100 * (kd['median_kd'] - kd['median_plain']):+.2f} points; "
                     f"teacher {kd['teacher_acc']:.4f}; target >= +1)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=12, help="dense training epochs")
    ap.add_argument("--finetune", type=int, default=3, help="fine-tuning epochs per technique")
    ap.add_argument("--kd-seeds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--only", choices=["digits", "distorted"], default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_techniques"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {msg}", flush=True)

    setups = {
        "digits": (load_digits_bundle(0), StudentArch()),
        # stride-2 stages keep the 32x32 student affordable on a shared 2-core CPU
        "distorted": (distorted_digits(0), StudentArch(width_mult=1.5, strides=(2, 2, 2))),
    }
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    report: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-tech-") as tmp:
        for key, (data, arch) in setups.items():
            if args.only and key != args.only:
                continue
            log(f"{data.name} {data.input_shape}: student {arch}")
            rows = run_dataset(data, arch, args.epochs, args.finetune, args.lr, Path(tmp), log)
            kd = kd_study(data, arch, args.epochs, args.lr, args.kd_seeds, log) \
                if key == "distorted" and args.kd_seeds > 0 else None
            results[key] = {"rows": rows, "kd": kd}
            report += [f"\n### {data.name} {'x'.join(map(str, data.input_shape))}\n", table(rows),
                       "", *figures(rows, kd)]
    text = "\n".join(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "techniques.json").write_text(json.dumps(results, indent=2))
    (args.out / "techniques.md").write_text(text + "\n")
    log(f"done; wrote {args.out}/techniques.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
