"""Hardware profiles: the versioned YAML that describes one device + runtime.

``load_profile("stm32f746")`` reads ``hardware_profiles/stm32f746.yaml``; a path works too.
Every validation error names ``file:line field.path`` (see ``hardware_profiles/*.yaml`` and
DESIGN.md section 3 for the format).

>>> p = load_profile("stm32f746")
>>> p.device.sram_kb, p.formats.weights[0], p.default_format.weight_bits
(320.0, 'int8', 8)
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from autocompress.errors import ProfileError, did_you_mean
from autocompress.hardware._lut_text import split_entries
from autocompress.hardware._profile_sections import analytic_spec, calibration, entries, format_spec
from autocompress.hardware._validate import Reader
from autocompress.hardware.formats import format_for_bits
from autocompress.hardware.spec import (
    AlignSpec,
    AnalyticSpec,
    CalibrationPoint,
    DeviceSpec,
    FormatSpec,
    HardwareProfile,
    LutEntry,
    MeasurementSpec,
    RuntimeSpec,
)
from autocompress.yamlio import load_yaml, parse_yaml

__all__ = [
    "SUPPORTED_VERSIONS",
    "AlignSpec",
    "AnalyticSpec",
    "CalibrationPoint",
    "DeviceSpec",
    "FormatSpec",
    "HardwareProfile",
    "LutEntry",
    "MeasurementSpec",
    "RuntimeSpec",
    "format_for_bits",
    "list_profiles",
    "load_profile",
    "parse_profile",
    "profile_dirs",
]

SUPPORTED_VERSIONS = (1,)
# The repo's folder of shipped profiles (``<repo>/hardware_profiles``).
PROFILE_DIR = Path(__file__).resolve().parents[2] / "hardware_profiles"
_PROFILE_HEAD = re.compile(r"^device:", re.MULTILINE)   # what tells a profile from a config


def profile_dirs(search_dirs: Iterable[str | Path] | None = None) -> list[Path]:
    """Folders searched for ``<name>.yaml``: the caller's first, then ``hardware_profiles/``
    under the working folder (where ``autocompress profile`` says to write the host's), then
    the repo's."""
    dirs = [*(Path(d) for d in (search_dirs or ())), Path.cwd() / "hardware_profiles",
            PROFILE_DIR]
    return [d for i, d in enumerate(dirs) if d.resolve() not in
            {e.resolve() for e in dirs[:i]}]


def list_profiles(search_dirs: Iterable[str | Path] | None = None) -> list[str]:
    """Names of the profiles that ``load_profile`` can find by name, sorted.

    >>> "stm32f746" in list_profiles()
    True
    """
    names: set[str] = set()
    for folder in profile_dirs(search_dirs):
        if folder.is_dir():         # a config's folder holds other YAML: only real profiles
            names.update(p.stem for p in folder.glob("*.yaml") if folder == PROFILE_DIR
                         or _PROFILE_HEAD.search(p.read_text(encoding="utf-8", errors="replace")))
    return sorted(names)


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def is_profile_path(text: str) -> bool:
    """A file path rather than a profile name (``.yaml``/``.yml``, or a folder in it)."""
    return text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text


def profile_path(name_or_path: str | Path,
                 search_dirs: Iterable[str | Path] | None = None) -> Path:
    """The file a profile name (or path) refers to; ProfileError naming the known profiles
    for an unknown name."""
    return _resolve(name_or_path, search_dirs)[0]


def _resolve(name_or_path: str | Path,
             search_dirs: Iterable[str | Path] | None) -> tuple[Path, bool]:
    """(file, found-by-name)."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or is_profile_path(text):
        return Path(text), False
    for folder in profile_dirs(search_dirs):
        path = folder / f"{text}.yaml"
        if path.is_file():
            return path, True
    known = list_profiles(search_dirs)
    raise ProfileError(f"unknown hardware profile '{text}'; known profiles: "
                       f"{', '.join(known) or 'none'}", loc="hardware",
                       hint=did_you_mean(text, known) or _by_device(text, search_dirs)
                       or "`autocompress profiles` lists them with their devices")


def _by_device(text: str, search_dirs: Iterable[str | Path] | None) -> str | None:
    """A hint naming the profiles whose header mentions ``text`` (a CPU or board name such
    as cortex-a76 or Orin), matched without case, spaces, dashes or underscores."""
    def norm(value: str) -> str:
        return re.sub(r"[\s_-]+", "", value.lower())

    want = norm(text)
    if len(want) < 3:
        return None
    hits = []
    for name in list_profiles(search_dirs):
        with profile_path(name, search_dirs).open(encoding="utf-8", errors="replace") as fh:
            if want in norm(fh.read(4000)):
                hits.append(name)
    return f"profiles for a '{text}' device: {', '.join(hits)}" if hits else None


def load_profile(name_or_path: str | Path,
                 search_dirs: Iterable[str | Path] | None = None) -> HardwareProfile:
    """Load and validate a profile by name (``hardware_profiles/<name>.yaml``) or path.

    Raises ProfileError (``file:line field: problem (hint)``) for unknown names, unknown or
    missing keys, wrong types and unsupported versions.

    >>> load_profile("stm32f746").runtime.name
    'tflite-micro+cmsis-nn'
    """
    path, by_name = _resolve(name_or_path, search_dirs)
    fast: dict[str, LutEntry] | None = None
    if path.is_file():     # a big measured LUT skips the (slow) line-numbered YAML loader
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:   # binary, another encoding, unreadable
            raise ProfileError(f"cannot read hardware profile: {exc}", loc=_display(path),
                               hint="a profile is a UTF-8 YAML file") from None
        head, fast = split_entries(text, _display(path))
    if fast is not None:
        doc = parse_yaml(head, _display(path), cls=ProfileError)
    else:
        doc = load_yaml(_display(path), what="hardware profile", cls=ProfileError)
    raw = Path(doc.file).read_bytes()
    profile = parse_profile(Reader(doc, ProfileError))
    if fast is not None:
        profile = replace(profile, entries=fast)
    if by_name and profile.name != path.stem:
        raise doc.error(("name",), f"profile name '{profile.name}' does not match its file "
                        f"name '{path.name}'", hint=f"set name: {path.stem}", cls=ProfileError)
    return replace(profile, path=doc.file, sha256=hashlib.sha256(raw).hexdigest())


_TOP_REQUIRED = ("version", "name", "device", "runtime", "formats", "measurement")
_TOP_OPTIONAL = ("description", "align", "calibration", "analytic", "fallback", "entries")


def parse_profile(r: Reader) -> HardwareProfile:
    """Build a HardwareProfile from a located document (all checks, no file access)."""
    r.section((), required=_TOP_REQUIRED, optional=_TOP_OPTIONAL)
    version = r.get(("version",), "int")
    if version not in SUPPORTED_VERSIONS:
        raise r.error(("version",), f"unsupported profile version {version}",
                      hint="this autocompress reads version "
                      f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
    r.section(("device",), required=("kind", "soc", "cpu"), optional=("sram_kb", "flash_kb"))
    device = DeviceSpec(kind=r.get(("device", "kind"), "str"), soc=r.get(("device", "soc"), "str"),
                        cpu=r.get(("device", "cpu"), "str"),
                        sram_kb=r.get(("device", "sram_kb"), "number", None, positive=True),
                        flash_kb=r.get(("device", "flash_kb"), "number", None, positive=True))
    r.section(("runtime",), required=("name",), optional=("version", "threads", "batch",
                                                          "overhead_ms"))
    runtime = RuntimeSpec(name=r.get(("runtime", "name"), "str"),
                          version=r.get(("runtime", "version"), "str", ""),
                          threads=r.get(("runtime", "threads"), "int", 1, minimum=1),
                          batch=r.get(("runtime", "batch"), "int", 1, minimum=1),
                          overhead_ms=r.get(("runtime", "overhead_ms"), "number", 0.0,
                                            minimum=0))
    formats = format_spec(r)
    r.section(("align",), optional=("channels", "fast_multiple", "int8_dw_fast",
                                    "int8_dw_block", "fp32_block"), default={})
    align = AlignSpec(channels=r.get(("align", "channels"), "int", 1, minimum=1),
                      fast_multiple=r.get(("align", "fast_multiple"), "int", 1, minimum=1),
                      int8_dw_fast=r.get(("align", "int8_dw_fast"), "int", 0, minimum=0),
                      int8_dw_block=r.get(("align", "int8_dw_block"), "int", 0, minimum=0),
                      fp32_block=r.get(("align", "fp32_block"), "int", 0, minimum=0))
    if bool(align.int8_dw_fast) != bool(align.int8_dw_block):
        raise r.error(("align",), "int8_dw_fast and int8_dw_block go together",
                      hint="give both (e.g. 16 and 8) or neither")
    mfields = ("tool", "warmup", "iters", "statistic", "date", "notes")
    r.section(("measurement",), required=("method",), optional=mfields)
    measurement = MeasurementSpec(
        method=r.get(("measurement", "method"), "str"),
        **{k: r.get(("measurement", k), "int" if k in ("warmup", "iters") else "str", None)
           for k in mfields})
    fallback = r.get(("fallback",), "bool", True)
    analytic = analytic_spec(r, formats) if r.raw(("analytic",), None) is not None else None
    if analytic is None and fallback:
        raise r.error(("analytic",), "missing required field 'analytic'",
                      hint="the analytic model answers LUT misses; or set fallback: false")
    return HardwareProfile(version=version, name=r.get(("name",), "str"),
                           description=r.get(("description",), "str", ""), device=device,
                           runtime=runtime, formats=formats, align=align,
                           measurement=measurement, analytic=analytic,
                           calibration=calibration(r), entries=entries(r), fallback=fallback)
