"""Text output of the hardware commands: `predict`'s layer table and help example, the
`profiles` listing and `profile`'s progress lines (no timing, no ONNX files)."""
from __future__ import annotations

import io
import re

import pytest

from autocompress.cli import main
from autocompress.hardware.commands import EXAMPLES
from autocompress.hardware.text import align_rows, elide, layer_table, profiles_lines, progress_printer

BLOCK = "/stages/stages.0/stages.0.0/"
LAYERS = [{"fqn": "/stem/conv/Conv", "op": "conv2d", "latency_ms": 0.05, "flash_kb": 0.2,
           "provenance": "analytic"},
          *({"fqn": f"{BLOCK}{part}/conv/Conv", "op": "conv2d", "latency_ms": 0.1,
             "flash_kb": 0.25, "provenance": "analytic"} for part in ("expand", "dw", "project")),
          {"fqn": f"{BLOCK}Add", "op": "add", "latency_ms": 0.03, "flash_kb": 0.0,
           "provenance": "analytic"}]


# ---------------------------------------------------------------------- predict


def test_predict_example_names_no_trial_number(capsys: pytest.CaptureFixture[str]) -> None:
    """The help said runs/demo/export/6/... while the README demo exports another trial."""
    assert not re.search(r"export/\d+/", EXAMPLES["predict"])
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    example = capsys.readouterr().out.split("example:")[1]
    # the folder export's own example writes (a glob matched every export: several files)
    assert "runs/demo/export/best/model.int8.onnx" in example and "*" not in example
    from autocompress.cli import EXAMPLES as CLI_EXAMPLES
    assert "--out runs/demo/export/best" in CLI_EXAMPLES["export"]


def test_layer_table_tells_block_layers_apart() -> None:
    """Names were cut at 28 characters: every block layer read /stages/stages.0/stages.0.0/."""
    header, *rows = layer_table(LAYERS)
    names = [row.split()[0] for row in rows]
    assert names == [r["fqn"] for r in LAYERS]                  # short enough: shown whole
    op_at = {header.index(" op ")} | {row.index(f" {r['op']} ") for row, r in zip(rows, LAYERS,
                                                                            strict=True)}
    assert len(op_at) == 1                                       # columns line up


def test_layer_table_elides_the_middle_of_very_long_names() -> None:
    long = [dict(r, fqn="/encoder" * 10 + r["fqn"]) for r in LAYERS]
    _, *rows = layer_table(long, max_name=40)
    names = [row[2:42] for row in rows]
    assert len(set(names)) == len(names)                        # still distinct
    assert names[1].rstrip().endswith("expand/conv/Conv") and "..." in names[1]
    assert {row.index(" conv2d ") for row in rows if " conv2d " in row} == {42}


def test_elide() -> None:
    assert elide("short", 10) == "short"
    out = elide("/a" * 30 + "/dw/conv/Conv", 24)
    assert len(out) == 24 and out.endswith("/dw/conv/Conv") and "..." in out
    assert elide("abcdef", 2) == "ef" and elide("abcdef", 0) == ""


# --------------------------------------------------------------------- profiles


def test_align_rows_sizes_each_column_to_its_widest_cell() -> None:
    lines = align_rows([("stm32f746", "mcu", "x"), ("jetson_orin_nano", "jetson", "y")])
    assert lines == ["stm32f746        mcu    x", "jetson_orin_nano jetson y"]


def test_profiles_columns_line_up(capsys: pytest.CaptureFixture[str]) -> None:
    """jetson_orin_nano (16 characters) overflowed a 14-wide name column."""
    assert main(["profiles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("jetson_orin_nano ") for line in lines)
    assert lines == profiles_lines()
    assert len({line.index("sha256 ") for line in lines}) == 1
    assert len({line.index(line.split()[1], len(line.split()[0])) for line in lines}) == 1


# --------------------------------------------------------------------- progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_pipe_is_one_line_per_update() -> None:
    """Not a terminal: "timed 50/284 op models  timed 100/284 ..." ran together."""
    buf = io.StringIO()
    progress, finish = progress_printer(buf)
    for done in range(1, 121):
        progress(done, 120)
    finish()
    assert buf.getvalue() == ("  timed 50/120 op models\n  timed 100/120 op models\n"
                              "  timed 120/120 op models\n")


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    tty = FakeTTY()
    progress, finish = progress_printer(tty, every=2)
    for done in range(1, 5):
        progress(done, 4)
    finish()
    assert tty.getvalue() == "\r  timed 2/4 op models\r  timed 4/4 op models\n"


def test_progress_finish_without_updates_prints_nothing() -> None:
    buf, tty = io.StringIO(), FakeTTY()
    for stream in (buf, tty):
        progress_printer(stream)[1]()
    assert buf.getvalue() == tty.getvalue() == ""
