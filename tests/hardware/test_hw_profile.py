"""Profile loading and validation: every error is a located ProfileError."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from autocompress.errors import ProfileError
from autocompress.hardware import list_profiles, load_profile
from autocompress.hardware.formats import format_for_bits, runnable_format
from autocompress.hardware.profile import PROFILE_DIR
from tests.hardware.hw_helpers import TINY_PROFILE, write_profile

# Pinned on purpose: run dirs record this hash. Update it when you change the shipped file.
STM32F746_SHA256 = "ff88f3d4ecb072a12e515d0aa97971a8abcbe0c82e8c4a351ff92e9965c57e83"


def test_stm32f746_loads() -> None:
    p = load_profile("stm32f746")
    assert p.name == "stm32f746" and p.version == 1
    assert p.device.soc == "STM32F746NG" and p.device.sram_kb == 320
    assert p.device.flash_kb == 1024
    assert p.formats.weights == ("int8", "fp32") and not p.formats.sparse_kernels
    assert p.align.channels == 4 and p.measurement.method == "analytic-calibrated"
    assert p.default_format.weight_bits == 8 and p.default_format.act_bits == 8
    assert p.analytic is not None and p.analytic.clock_mhz == 216
    assert any(point.held_out for point in p.calibration)
    assert "stm32f746" in list_profiles()


def test_stm32f746_sha256_is_stable() -> None:
    path = PROFILE_DIR / "stm32f746.yaml"
    first, second = load_profile("stm32f746"), load_profile(path)
    assert first.sha256 == second.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first.sha256 == STM32F746_SHA256


def test_tiny_profile_entries(tiny_profile) -> None:  # type: ignore[no-untyped-def]
    assert len(tiny_profile.entries) == 3
    entry = tiny_profile.entries["linear|in=64|out=10|w=int8|a=int8"]
    assert entry.mean_ms == 0.05 and entry.n == 10


def _error(tmp_path: Path, text: str) -> ProfileError:
    path = write_profile(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    return info.value


def test_unknown_key_with_did_you_mean(tmp_path: Path) -> None:
    err = _error(tmp_path, TINY_PROFILE + "entires: {}\n")
    assert "tiny.yaml:18 entires: unknown key 'entires'" in str(err)
    assert "did you mean 'entries'?" in str(err)
    nested = _error(tmp_path, TINY_PROFILE.replace("  clock_mhz: 100", "  clock_mhs: 100"))
    assert "tiny.yaml:9 analytic.clock_mhs" in str(nested)
    assert "did you mean 'clock_mhz'?" in str(nested)


def test_missing_field(tmp_path: Path) -> None:
    err = _error(tmp_path, TINY_PROFILE.replace("soc: TEST, ", ""))
    assert "tiny.yaml:3 device: missing required field 'soc'" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("name: tiny\n", ""))
    assert "tiny.yaml" in str(err) and "missing required field 'name'" in str(err)


def test_wrong_type(tmp_path: Path) -> None:
    err = _error(tmp_path, TINY_PROFILE.replace("channels: 4", "channels: four"))
    assert "tiny.yaml:6 align.channels: expected an integer" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("sparse_kernels: false", "sparse_kernels: 0"))
    assert "tiny.yaml:5 formats.sparse_kernels: expected true or false" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("mean_ms: 2.0", "mean_ms: fast"))
    assert "tiny.yaml:16" in str(err) and "expected a number" in str(err)


def test_unsupported_version(tmp_path: Path) -> None:
    err = _error(tmp_path, TINY_PROFILE.replace("version: 1", "version: 2"))
    assert "tiny.yaml:1 version: unsupported profile version 2" in str(err)


def test_bad_values(tmp_path: Path) -> None:
    err = _error(tmp_path, TINY_PROFILE.replace("weights: [int8]", "weights: [int8, float8]"))
    assert "tiny.yaml:5 formats.weights[1]: unknown format 'float8'" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("|k=3|s=1|g=1|w=int8|a=int8\": {mean_ms: 1.0",
                                                "|k=3|s=1|w=int9x|a=int8\": {mean_ms: 1.0"))
    assert "tiny.yaml:15" in str(err) and "malformed LUT key" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("{int8: 1.0}", "{int4: 1.0}"))
    assert "tiny.yaml:8 analytic: no compute throughput for native format 'int8'" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("mem_bw_gbps: 1.0", "mem_bw_gbps: -1"))
    assert "tiny.yaml:12 analytic.mem_bw_gbps: must be > 0, got -1" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("sram_kb: 64", "sram_kb: 0"))
    assert "tiny.yaml:3 device.sram_kb: must be > 0, got 0" in str(err)     # was accepted
    err = _error(tmp_path, TINY_PROFILE.replace("mem_bw_gbps: 1.0", "mem_bw_gbps: 0"))
    assert "tiny.yaml:12 analytic.mem_bw_gbps: must be > 0, got 0" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("{int8: 1.0}", "{int8: 0}"))
    assert "tiny.yaml:10 analytic.macs_per_cycle.int8: must be > 0" in str(err)
    row = "calibration:\n  - {model: my-own-net, published_ms: 3.0, source: mine}\n"
    err = _error(tmp_path, TINY_PROFILE.replace("entries:\n", row + "entries:\n"))  # a KeyError
    assert "tiny.yaml:15 calibration[0].model: unknown reference model 'my-own-net'" in str(err)
    ok = row.replace("my-own-net", "resnet8-ic-fp32")
    fine = load_profile(write_profile(tmp_path, TINY_PROFILE.replace("entries:\n",
                                                                     ok + "entries:\n")))
    assert fine.calibration[0].model == "resnet8-ic-fp32"


def test_non_finite_numbers_and_a_binary_file_are_refused(tmp_path: Path) -> None:
    """.nan and .inf were taken as numbers (a NaN per-op overhead, an inf rel_std, a NaN
    SRAM size shown as 'nan KB'), and a file not in UTF-8 was a UnicodeDecodeError traceback."""
    err = _error(tmp_path, TINY_PROFILE.replace("mem_bw_gbps: 1.0", "mem_bw_gbps: .nan"))
    assert "tiny.yaml:12 analytic.mem_bw_gbps: expected a finite number, got nan" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("sram_kb: 64", "sram_kb: .inf"))
    assert "tiny.yaml:3 device.sram_kb: expected a finite number, got inf" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace("mean_ms: 2.0", "mean_ms: .nan"))
    assert "tiny.yaml:16" in str(err) and "expected a finite number" in str(err)
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe version: 1")
    with pytest.raises(ProfileError, match="cannot read hardware profile"):
        load_profile(path)


def test_malformed_yaml_is_a_profile_error(tmp_path: Path) -> None:
    err = _error(tmp_path, TINY_PROFILE.replace("name: tiny", "name: [tiny"))
    assert "tiny.yaml:" in str(err) and "malformed YAML" in str(err)


def test_analytic_required_unless_fallback_off(tmp_path: Path) -> None:
    head, _, tail = TINY_PROFILE.partition("analytic:")
    no_analytic = head + "entries:" + tail.partition("entries:")[2]
    assert "missing required field 'analytic'" in str(_error(tmp_path, no_analytic))
    strict = load_profile(write_profile(tmp_path, no_analytic + "fallback: false\n"))
    assert strict.analytic is None and not strict.fallback


def test_unknown_name_lists_known_profiles() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("stm32f74")
    assert "unknown hardware profile 'stm32f74'" in str(info.value)
    assert "known profiles: " in str(info.value) and "stm32f746" in str(info.value)
    assert "did you mean 'stm32f746'?" in str(info.value)
    for device, names in (("cortex-a76", "pixel4"), ("Orin", "jetson_orin_nano"),
                          ("cortex_m7", "stm32f746, stm32h743")):
        with pytest.raises(ProfileError) as info:          # a device, not a profile name
            load_profile(device)
        assert info.value.hint == f"profiles for a '{device}' device: {names}"
    with pytest.raises(ProfileError) as info:
        load_profile("xyz")
    assert "path" not in (info.value.hint or "")          # a config refuses paths


def test_missing_file() -> None:
    with pytest.raises(ProfileError, match="hardware profile not found"):
        load_profile("no/such/profile.yaml")


def test_search_dirs_and_name_check(tmp_path: Path) -> None:
    write_profile(tmp_path, TINY_PROFILE)
    assert load_profile("tiny", search_dirs=[tmp_path]).name == "tiny"
    assert "tiny" in list_profiles([tmp_path])
    write_profile(tmp_path, TINY_PROFILE, name="other")
    with pytest.raises(ProfileError, match=r"does not match its file name 'other\.yaml'"):
        load_profile("other", search_dirs=[tmp_path])


def test_format_helpers() -> None:
    assert [format_for_bits(b) for b in (32, 16, 8, 4, 2)] == \
        ["fp32", "fp16", "int8", "int4", "int2"]
    assert format_for_bits(16, "int") == "int16" and format_for_bits(8, "float") == "fp8"
    assert runnable_format("int4", ["int8", "fp32"]) == "int8"
    assert runnable_format("fp16", ["int8", "fp32"]) == "fp32"
    assert runnable_format("int16", ["int8", "fp32"]) == "fp32"
    assert runnable_format("int8", ["int8"]) == "int8"
    assert runnable_format("fp32", ["int8"]) == "int8"     # nothing wider: the widest native


KEY = "conv2d|in=16x8x8|out=16x8x8|k=3|s=1|g=1|w=int8|a=int8"


@pytest.mark.parametrize("written", [
    "conv2d|out=16x8x8|in=16x8x8|k=3|s=1|g=1|w=int8|a=int8",      # fields reordered
    "conv2d|in=16x8x8|out=16x8x8|k=3|s=1|w=int8|a=int8",          # g=1 left out
    "conv2d|in=16x8x8|out=16x8x8|g=1|k=3|s=1|w=int8|a=int8",
])
@pytest.mark.parametrize("block", [False, True], ids=["flow", "block"])
def test_a_lut_key_the_cost_model_would_never_look_up_is_refused(tmp_path: Path, written: str,
                                                                 block: bool) -> None:
    """Such keys validated and were silently never matched (the analytic estimate ran)."""
    line = f'  "{KEY}": {{mean_ms: 1.0, std_ms: 0.1, n: 10}}'
    assert line in TINY_PROFILE
    new = (f'  "{written}":\n    mean_ms: 1.0\n    std_ms: 0.1\n    n: 10' if block
           else line.replace(KEY, written))
    err = _error(tmp_path, TINY_PROFILE.replace(line, new))
    assert "tiny.yaml:15" in str(err) and f"write it '{KEY}'" in str(err)


def test_a_lut_op_without_a_window_cannot_take_k_s_g(tmp_path: Path) -> None:
    err = _error(tmp_path, TINY_PROFILE.replace(f'"{KEY}"', f'"{KEY.replace("conv2d", "conv")}"'))
    assert "op 'conv' takes no k/s/g fields; the ops with a window are avgpool, conv2d, " \
        "maxpool" in str(err)
    err = _error(tmp_path, TINY_PROFILE.replace('"linear|in=64|out=10|w=int8|a=int8"',
                                                '"add|in=64|out=64|w=int8|a=int8"'))
    assert "write it 'add|in=64|out=64|w=none|a=int8'" in str(err)


@pytest.mark.parametrize(("kind", "form"), [("mcu", "int8"), ("phone", "int8"),
                                            ("jetson", "int8-symmetric"), ("host", "uint8")])
def test_int8_activations_default_by_the_devices_kind(tmp_path: Path, kind: str,
                                                      form: str) -> None:
    """A run dir keeps copies of its profiles; one copied before ``int8_activations`` existed
    read as uint8, so an old MCU or Jetson run exported the form its runtime refuses."""
    assert "int8_activations" not in TINY_PROFILE
    text = TINY_PROFILE.replace("kind: mcu", f"kind: {kind}")
    assert load_profile(write_profile(tmp_path, text)).formats.int8_activations == form
    given = text.replace("sparse_kernels: false}", "sparse_kernels: false, "
                         "int8_activations: uint8}")
    assert load_profile(write_profile(tmp_path, given)).formats.int8_activations == "uint8"
    wrong = _error(tmp_path, text.replace("sparse_kernels: false}", "sparse_kernels: false, "
                                          "int8_activations: s8}"))
    assert "unknown int8 activation form 's8'" in str(wrong) and "int8-symmetric" in str(wrong)
