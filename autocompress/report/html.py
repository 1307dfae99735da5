"""The HTML shell of ``report/index.html``: one self-contained page (inline CSS, a few lines
of inline JS to sort tables, images as ``data:`` URIs), plus small escaping helpers.

Example:
    >>> page = render_page("demo", "3 trials", [Section(id="a", title="A", body="<p>x</p>")])
    >>> page.startswith("<!DOCTYPE html>") and 'id="a"' in page
    True
"""
from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

CSS = """
:root { --ink:#1d2330; --muted:#5b6476; --line:#dde2ea; --accent:#1f5fbf; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#16243d; color:#fff; padding:22px 32px 16px; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:650; }
header p { margin:2px 0; color:#c9d3e6; font-size:14px; }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
      padding:8px 32px; font-size:14px; }
nav a { color:var(--accent); text-decoration:none; margin-right:18px; }
main { max-width:1240px; margin:0 auto; padding:8px 32px 48px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:6px 22px 18px;
          margin:18px 0; }
h2 { font-size:19px; margin:14px 0 6px; } h3 { font-size:16px; margin:16px 0 6px; }
p.note, .muted { color:var(--muted); font-size:13.5px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin:14px 0 4px; }
.card { flex:1 1 200px; background:#fff; border:1px solid var(--line); border-radius:8px;
        padding:10px 14px; }
.card .v { font-size:22px; font-weight:650; } .card .l { color:var(--muted); font-size:13px; }
figure { margin:10px 0; } figure img { width:100%; height:auto; border:1px solid var(--line);
        border-radius:4px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; margin-top:2px; }
.narrow { max-width:860px; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:14px; }
.scroll { overflow:auto; max-height:560px; border:1px solid var(--line); border-radius:4px; }
table { border-collapse:collapse; font-size:13px; font-variant-numeric:tabular-nums; }
th, td { padding:4px 9px; border-bottom:1px solid var(--line); text-align:right;
         white-space:nowrap; }
thead th { background:#eef1f6; position:sticky; top:0; }
table.sortable thead th { cursor:pointer; user-select:none; }
table.sortable thead th::after { content:" \\2195"; color:#a3acbb; font-size:11px; }
table.sortable thead th[aria-sort=ascending]::after { content:" \\25B2"; color:var(--accent); }
table.sortable thead th[aria-sort=descending]::after { content:" \\25BC"; color:var(--accent); }
tbody tr:nth-child(even) { background:#fafbfc; } tbody tr:hover { background:#eef4ff; }
td.left, th.left { text-align:left; }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:3px 16px; margin:8px 0; }
dl.kv dt { color:var(--muted); } dl.kv dd { margin:0; font-family:ui-monospace,monospace;
        font-size:13px; overflow-wrap:anywhere; }
pre { background:#f3f5f8; border:1px solid var(--line); border-radius:4px; padding:10px 12px;
      font-size:12.5px; max-height:420px; overflow:auto; }
details summary { cursor:pointer; color:var(--accent); margin:8px 0; }
code { font-size:12.5px; }
@media (max-width: 760px) {        /* a phone: one column, wide tables scroll in place */
  header, nav { padding-left:14px; padding-right:14px; } main { padding:4px 8px 32px; }
  section { padding:4px 10px 12px; } .grid2 { grid-template-columns:1fr; }
  section table { display:block; overflow-x:auto; max-width:100%; }
  dl.kv { grid-template-columns:1fr; } dl.kv dd { margin-bottom:6px; }
}
"""

# Click a header to sort (numbers numerically, blanks last; click again to reverse).
# "#sort=<table id>:<column index>[:desc]" in the URL sorts on load.
JS = """
function sortTable(t, i, asc) {
  const hs = t.tHead.rows[0].cells, body = t.tBodies[0];
  for (const h of hs) h.removeAttribute("aria-sort");
  hs[i].setAttribute("aria-sort", asc ? "ascending" : "descending");
  const key = r => { const s = r.cells[i].textContent.trim(), n = Number(s.replace(/%$/, ""));
    return s === "" ? null : isNaN(n) ? s.toLowerCase() : n; };
  const rows = [...body.rows].map(r => [key(r), r]).sort((a, b) => {
    const x = a[0], y = b[0];
    if (x === null || y === null) return (x === null) - (y === null);
    const c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1;
    return asc ? c : -c; });
  body.append(...rows.map(p => p[1]));
}
for (const t of document.querySelectorAll("table.sortable")) {
  [...t.tHead.rows[0].cells].forEach((h, i) => { h.title = "click to sort"; h.tabIndex = 0;
    h.onclick = h.onkeydown = e => { if (e.type === "keydown" && e.key !== "Enter") return;
      sortTable(t, i, h.getAttribute("aria-sort") !== "ascending"); }; });
}
const m = location.hash.match(/^#sort=([\\w-]+):(\\d+)(:desc)?$/);
if (m && document.getElementById(m[1])) sortTable(document.getElementById(m[1]), +m[2], !m[3]);
"""


@dataclass(frozen=True, kw_only=True)
class Section:
    id: str
    title: str
    body: str  # HTML


def render_page(title: str, subtitle: str, sections: Sequence[Section], *,
                cards: Iterable[tuple[str, str]] = (), lead: str = "") -> str:
    """The whole page: header, navigation, key figures (``cards``: value, label), sections."""
    nav = "".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in sections)
    card_html = "".join(f'<div class="card"><div class="v">{escape(v)}</div>'
                        f'<div class="l">{escape(label)}</div></div>' for v, label in cards)
    body = "".join(f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>{s.body}</section>'
                   for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p>{lead}</header>"
            f"<nav>{nav}</nav><main>"
            + (f'<div class="cards">{card_html}</div>' if card_html else "")
            + f"{body}</main><script>{JS}</script></body></html>\n")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(png: bytes, file_name: str, caption: str) -> str:
    """An embedded PNG that links to its copy beside the page."""
    return (f'<figure><a href="{escape(file_name)}"><img src="{data_uri(png)}" '
            f'alt="{escape(caption)}"></a><figcaption>{escape(caption)} '
            f'(<a href="{escape(file_name)}">{escape(file_name)}</a>)</figcaption></figure>')


def key_values(pairs: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in pairs)
    return f'<dl class="kv">{items}</dl>' if items else ""


def simple_table(columns: Sequence[str], rows: Iterable[Sequence[str]], *, table_id: str = "",
                 sortable: bool = True, left: Sequence[int] = ()) -> str:
    """A small escaped table; ``left`` are column indexes aligned left."""
    cls = ' class="sortable"' if sortable else ""
    tid = f' id="{escape(table_id)}"' if table_id else ""

    def cell(tag: str, j: int, text: str) -> str:
        return f'<{tag}{" class=left" if j in left else ""}>{escape(text)}</{tag}>'

    head = "".join(cell("th", j, c) for j, c in enumerate(columns))
    body = "".join(
        "<tr>" + "".join(cell("td", j, v) for j, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{tid}{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
