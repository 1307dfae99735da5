"""``report/index.html``: a self-contained page (sections, embedded PNGs, a sortable table,
provenance), checked as text and, where Chromium is installed, in a real headless browser."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from autocompress.pareto import Objective
from tests.report.sample import BUDGET, PNG_MAGIC, run_records

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

SECTIONS = ("pareto", "layers", "hypervolume", "trials", "provenance")
ENV = {"seed": 7, "git_rev": "0123abcd", "python": "3.11.7", "created": "2026-11-25T14:00:00Z",
       "packages": {"torch": "2.13.0+cpu", "optuna": "5.0.0"},
       "profiles_sha256": {"mcu": "ab" * 32}}
CONFIG = "# resolved <config> & co\nname: demo\nseed: 7\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from autocompress.report import write_report

    run = tmp_path_factory.mktemp("run")
    (run / "env.json").write_text(json.dumps(ENV))
    (run / "config.resolved.yaml").write_text(CONFIG)
    write_report(run, run_records(), [Objective.accuracy(), Objective.latency("mcu")], [BUDGET])
    return run / "report"


class _Tags(HTMLParser):
    VOID = frozenset({"meta", "img", "br", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attrs: list[tuple[str, dict[str, Any]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_page_has_every_section_and_is_well_formed(report: Path) -> None:
    html = (report / "index.html").read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(html)
    assert parser.errors == [] and parser.stack == []
    ids = [a.get("id") for t, a in parser.attrs if t == "section"]
    assert ids == list(SECTIONS)
    every_id = [a["id"] for _, a in parser.attrs if "id" in a]
    assert len(every_id) == len(set(every_id))  # unique: #sort=<id> and the nav rely on it
    for sid in SECTIONS:
        assert f'href="#{sid}"' in html  # navigation
    assert "7 trials: 5 complete, 1 infeasible, 1 failed, 0 pruned" in html
    assert "budgets: mcu latency ≤ 10 ms" in html
    assert "weight bits, prune ratio, rank ratio, cluster k, mystery strength" in html


def test_images_are_embedded_and_written_beside(report: Path) -> None:
    html = (report / "index.html").read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(html)
    srcs = [a["src"] for t, a in parser.attrs if t == "img"]
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert pngs == ["hypervolume.png", "layers.png", "pareto_mcu.png", "pareto_mcu_flash.png",
                    "pareto_mcu_sram.png"]
    assert len(srcs) == len(pngs) and all(s.startswith("data:image/png;base64,") for s in srcs)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in srcs}
    assert embedded == {(report / n).read_bytes() for n in pngs}
    assert all(b.startswith(PNG_MAGIC) for b in embedded)
    # opens offline: nothing is fetched from anywhere
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", html)
    assert "<link" not in html and "@import" not in html


def test_trials_table_is_sortable_and_escaped(report: Path) -> None:
    html = (report / "index.html").read_text(encoding="utf-8")
    assert '<table class="dataframe sortable" id="trials-table">' in html
    assert '<table class="dataframe sortable" id="trials-all">' in html  # every column
    assert "<script>" in html and "sortTable" in html and "aria-sort" in html
    head = _header(html, "trials-table")
    assert head[:5] == ["trial", "state", "baseline", "front", "accuracy %"]
    assert "± ms" in head and "SRAM KB" in head
    assert _column(html, "trials-table", 0) == ["0", "1", "2", "3", "4", "5", "6"]
    assert _column(html, "trials-table", 3) == ["", "✓", "✓", "", "✓", "", ""]  # front
    assert "RuntimeError: &lt;shape&gt; &amp; boom" in html
    assert "None" not in _table(html, "trials-table")
    assert 'href="trials.csv"' in html


def test_provenance_section(report: Path) -> None:
    html = (report / "index.html").read_text(encoding="utf-8")
    prov = html.split('id="provenance"', 1)[1]
    assert "<dt>seed</dt><dd>7</dd>" in prov and "0123abcd" in prov
    assert "ab" * 32 in prov and "2.13.0+cpu" in prov and "optuna" in prov
    assert "# resolved &lt;config&gt; &amp; co" in prov  # the config text, escaped


def test_page_without_provenance_files(tmp_path: Path) -> None:
    from autocompress.report import write_report

    write_report(tmp_path, run_records()[:2], (), [])
    html = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "Not available: config.resolved.yaml not found; env.json not found" in html
    assert "<dt>seed</dt><dd>-</dd>" in html


# ------------------------------------------------------------------ real browser


def _chromium() -> str | None:
    return next((p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and
                 Path(p).exists()), None)


def _run_chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (/usr/bin/chromium or chromium on PATH)")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", *extra, url]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"Chromium could not run here: {exc}")


def test_screenshot_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    out = _run_chromium(tmp_path, (report / "index.html").as_uri(), f"--screenshot={shot}",
                        "--window-size=1280,2000")
    if not shot.exists():
        pytest.skip(f"Chromium did not start (rc {out.returncode}): {out.stderr[-300:]}")
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        rgb = im.convert("RGB")
        assert rgb.getpixel((8, 8)) == (0x16, 0x24, 0x3D)  # the header band: CSS applied
        colours = rgb.resize((320, 500)).getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 200  # plots drawn, not a blank page


def test_clicking_order_sorts_in_chromium(report: Path, tmp_path: Path) -> None:
    col = _header((report / "index.html").read_text(encoding="utf-8"), "trials-table").index(
        "accuracy %")
    out = _run_chromium(tmp_path, (report / "index.html").as_uri() + f"#sort=trials-table:{col}:desc",
                        "--dump-dom")
    if "<html" not in out.stdout:
        pytest.skip(f"Chromium did not start (rc {out.returncode}): {out.stderr[-300:]}")
    # accuracy 0.96, 0.95, 0.93, 0.90, 0.85, then the untrained / failed trials (blank) last
    assert _column(out.stdout, "trials-table", 0) == ["4", "0", "2", "1", "3", "5", "6"]
    assert 'aria-sort="descending"' in _table(out.stdout, "trials-table")


def _table(html: str, table_id: str) -> str:
    match = re.search(rf'<table[^>]*id="{table_id}"[^>]*>(.*?)</table>', html, flags=re.S)
    assert match, f"no table {table_id}"
    return match.group(1)


def _header(html: str, table_id: str) -> list[str]:
    head = _table(html, table_id).split("</thead>")[0]
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<th[^>]*>(.*?)</th>", head)]


def _column(html: str, table_id: str, index: int) -> list[str]:
    body = _table(html, table_id).split("<tbody>")[1]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    return [re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)[index])
            .strip() for r in rows]
