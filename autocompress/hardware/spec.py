"""The hardware-profile data types (pure; loading and validation live in ``profile.py``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from autocompress.hardware.formats import Int8Activations, LayerFormat, bits_of, is_float


@dataclass(frozen=True, kw_only=True)
class DeviceSpec:
    kind: str                     # mcu | phone | jetson | host | ...
    soc: str
    cpu: str
    sram_kb: float | None = None  # on-chip SRAM, KB (1024 B); None for non-MCU devices
    flash_kb: float | None = None  # on-chip Flash, KB


@dataclass(frozen=True, kw_only=True)
class RuntimeSpec:
    name: str
    version: str = ""
    threads: int = 1
    batch: int = 1
    overhead_ms: float = 0.0      # ms added once per inference (session run call, I/O copies)


@dataclass(frozen=True, kw_only=True)
class FormatSpec:
    """What runs natively; the first entry of each list is the preferred format.
    ``packed_weights``: the runtime stores sub-8-bit, clustered and sparse weights compressed
    (Flash counts them so); False: as ``model.int8.onnx`` stores them, dense at 8 bits (or a
    float width), as ONNX Runtime, TFLite and TensorRT do. ``int8_activations``: the form of
    int8 activations the runtime takes, one of ``formats.INT8_ACTIVATIONS`` (export writes
    model.int8.onnx so)."""

    weights: tuple[str, ...]
    activations: tuple[str, ...]
    sparse_kernels: bool = False
    packed_weights: bool = True
    int8_activations: Int8Activations = "uint8"


@dataclass(frozen=True, kw_only=True)
class AlignSpec:
    channels: int = 1             # channel multiple the kernels are written for
    # Channel counts >= this that are not a multiple of it take a slower, separate kernel
    # path (ORT's NCHWc convs need multiples of 4): the LUT interpolates them only among
    # themselves. 1 = no such split.
    fast_multiple: int = 1
    # int8 depthwise convs: a fast kernel at multiples of ``int8_dw_fast`` channels, else a
    # ``int8_dw_block``-channel kernel plus a per-channel cost for the rest (ORT's u8 kernels,
    # detected from the measured grid by ``grid_fit.detect_int8_dw_blocks``); 0 = no such split.
    int8_dw_fast: int = 0
    int8_dw_block: int = 0
    # fp32 convs on the fast path process channels in blocks of this size (ORT's NCHWc: time
    # steps at its multiples, flat in between; ``grid_fit.detect_fp32_block``); 0 = none.
    fp32_block: int = 0


@dataclass(frozen=True, kw_only=True)
class MeasurementSpec:
    method: str                   # measured | analytic-calibrated
    tool: str | None = None
    warmup: int | None = None
    iters: int | None = None
    statistic: str | None = None
    date: str | None = None
    notes: str | None = None


@dataclass(frozen=True, kw_only=True)
class CalibrationPoint:
    model: str
    published_ms: float
    predicted_ms: float | None = None
    source: str = ""
    held_out: bool = False        # True: not used to fit the constants (a genuine check)
    note: str | None = None

    @property
    def error(self) -> float | None:
        """Relative error (predicted - published) / published."""
        if self.predicted_ms is None:
            return None
        return (self.predicted_ms - self.published_ms) / self.published_ms


@dataclass(frozen=True, kw_only=True)
class AnalyticSpec:
    """Constants of the analytic latency model (see ``latency.py``).

    Compute throughput per format is ``macs_per_cycle[f] * clock_mhz`` (MCU style) or
    ``gmacs_per_s[f]``; depthwise convs use the ``depthwise_*`` tables when given.
    """

    clock_mhz: float | None = None
    macs_per_cycle: Mapping[str, float] = field(default_factory=dict)
    depthwise_macs_per_cycle: Mapping[str, float] = field(default_factory=dict)
    gmacs_per_s: Mapping[str, float] = field(default_factory=dict)
    depthwise_gmacs_per_s: Mapping[str, float] = field(default_factory=dict)
    mem_bw_gbps: float = 1.0          # GB/s (1e9 B/s) for weights (+ activations, see next)
    # GB/s for activations when they live in a faster memory than the weights (MCU: SRAM vs
    # Flash); None: activations share ``mem_bw_gbps``.
    act_bw_gbps: float | None = None
    per_op_overhead_us: float = 0.0   # µs added to every executed op
    rel_std: float = 0.25             # relative 1-sigma error of an analytic estimate

    def macs_per_s(self, fmt: str, *, depthwise: bool = False) -> float | None:
        """Effective MAC/s for compute format ``fmt`` (None if the profile has no figure)."""
        tables = [(self.depthwise_macs_per_cycle, self.depthwise_gmacs_per_s)] if depthwise else []
        tables.append((self.macs_per_cycle, self.gmacs_per_s))
        for per_cycle, giga in tables:
            if fmt in per_cycle and self.clock_mhz:
                return per_cycle[fmt] * self.clock_mhz * 1e6
            if fmt in giga:
                return giga[fmt] * 1e9
        return None

    @property
    def formats(self) -> frozenset[str]:
        return frozenset(self.macs_per_cycle) | frozenset(self.gmacs_per_s)


@dataclass(frozen=True, kw_only=True)
class LutEntry:
    mean_ms: float
    std_ms: float = 0.0
    n: int = 1


QUICK_MARK = "(quick grid)"   # in a --quick profile's description


@dataclass(frozen=True, kw_only=True)
class HardwareProfile:
    """One device + runtime: native formats, alignment, LUT entries and analytic constants."""

    version: int
    name: str
    device: DeviceSpec
    runtime: RuntimeSpec
    formats: FormatSpec
    measurement: MeasurementSpec
    align: AlignSpec = AlignSpec()
    analytic: AnalyticSpec | None = None
    calibration: tuple[CalibrationPoint, ...] = ()
    entries: Mapping[str, LutEntry] = field(default_factory=dict)
    fallback: bool = True          # False: a missing LUT entry is an error, not an estimate
    description: str = ""
    path: str | None = None
    sha256: str = ""               # of the file bytes; recorded in run dirs

    def __hash__(self) -> int:
        return hash((self.name, self.sha256))

    @property
    def default_format(self) -> LayerFormat:
        """The preferred native format (first of ``formats.weights``/``activations``)."""
        return LayerFormat(weight_bits=bits_of(self.formats.weights[0]),
                           act_bits=bits_of(self.formats.activations[0]))

    @property
    def float_bits(self) -> int:
        """The width a float layer runs in: the first float format of ``formats.weights``
        (a Jetson's TensorRT engine, built ``--fp16``, runs fp16), 32 when none is listed."""
        return next((bits_of(f) for f in self.formats.weights if is_float(f)), 32)

    def supports(self, fmt: str) -> bool:
        return fmt in self.formats.weights or fmt in self.formats.activations

    def quick_note(self) -> str | None:
        """A warning for a ``profile --quick`` smoke-test profile (its small grid leaves the
        analytic fallback's rates at defaults: latencies off by up to 50x), else None."""
        if QUICK_MARK not in self.description:
            return None
        return (f"warning: profile '{self.name}' is a --quick smoke test (quick grid): its "
                "latencies are rough; build it with `autocompress profile` without --quick")
