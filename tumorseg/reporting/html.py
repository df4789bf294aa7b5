"""A ``Report`` as one self-contained HTML page: images inline as base64 PNG, no external files.

The page checks itself once loaded: ``<body data-images-loaded="K/N">`` counts the images that
decoded (``complete`` and ``naturalWidth > 0``), and a banner at the top names any that did not,
so a damaged page never passes for a complete one (tests read the attribute in a browser).
"""

from __future__ import annotations

import base64
import html
import re

from tumorseg.reporting.document import (
    Block,
    Image,
    Legend,
    Note,
    PanelGrid,
    Paragraph,
    Report,
    Section,
    Table,
)

_CODE = re.compile(r"`([^`]+)`")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24;
       margin: 0 auto; max-width: 1280px; padding: 16px 24px 48px; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { font-size: 1.1em; margin-top: 1.6em; }
.subtitle { color: #57606a; margin-top: 0; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em;
       background: #f3f4f6; padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
.note { border-left: 4px solid #d4a72c; background: #fff8e1; padding: 6px 12px; margin: 8px 0; }
table.data { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
table.data th, table.data td { border: 1px solid #d0d7de; padding: 3px 9px; text-align: right; }
table.data th { background: #f6f8fa; }
table.data th[colspan] { text-align: center; }
table.data td.name { text-align: left; font-weight: 600; }
table.data.text td, table.data.text th { text-align: left; }
table.data tr:nth-child(even) td { background: #fafbfc; }
caption { caption-side: bottom; text-align: left; color: #57606a; font-size: 0.9em;
          padding-top: 4px; }
figure { margin: 10px 0; }
figure img { max-width: 100%; }
figcaption { color: #57606a; font-size: 0.9em; }
.grid { display: grid; width: fit-content; max-width: 100%; overflow-x: auto; gap: 3px;
        align-items: center; margin: 6px 0; background: #000; padding: 3px; border-radius: 4px; }
.grid .head { color: #fff; font-weight: 600; text-align: center; padding: 3px 0; }
.grid .row { color: #fff; font-weight: 600; padding: 0 8px; }
.grid .row small { display: block; font-weight: 400; color: #c9d1d9; }
.grid img { width: 100%; height: auto; display: block; }
.grid .empty { color: #8b949e; text-align: center; font-style: italic; }
.legend span.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: middle;
                      margin: 0 4px 0 14px; border: 1px solid #444; }
.legend span.swatch:first-child { margin-left: 0; }
nav ul { columns: 3; padding-left: 18px; }
#broken { display: none; background: #ffebe9; border: 1px solid #cf222e; padding: 8px 12px; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute("data-images-loaded",
    (images.length - broken.length) + "/" + images.length);
  if (broken.length) {
    var banner = document.getElementById("broken");
    banner.textContent = broken.length + " of " + images.length + " images could not be shown: "
      + broken.map(function (i) { return i.alt; }).join(", ");
    banner.style.display = "block";
  }
});
"""


def _text(text: str) -> str:
    """Escaped text, with backtick spans as ``<code>``."""
    parts = _CODE.split(text)
    return "".join(
        f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part)
        for i, part in enumerate(parts)
    )


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(table: Table) -> str:
    head = "".join(f"<th>{_text(h)}</th>" for h in table.header)
    if table.groups:
        spans = "".join(
            f'<th colspan="{n}">{_text(title)}</th>' if n > 1 else f"<th>{_text(title)}</th>"
            for title, n in table.groups
        )
        head = f"{spans}</tr><tr>{head}"
    rows = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            css = ' class="name"' if i == 0 and table.row_names else ""
            cells.append(f"<td{css}>{_text(cell)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<caption>{_text(table.caption)}</caption>" if table.caption else ""
    css = "data" if table.numeric else "data text"
    return f'<table class="{css}">{caption}<tr>{head}</tr>{"".join(rows)}</table>'


def _grid(grid: PanelGrid) -> str:
    # Panels 240 px wide whatever the voxel count: small volumes are enlarged to a readable
    # size, a grid of three columns shows them as large as one of four, and four fit the page.
    columns = len(grid.columns)
    style = f"grid-template-columns: max-content repeat({columns}, 240px);"
    cells = ['<div class="head"></div>']
    cells += [f'<div class="head">{_text(c)}</div>' for c in grid.columns]
    for row in grid.rows:
        sub = f"<small>{_text(row.subtitle)}</small>" if row.subtitle else ""
        cells.append(f'<div class="row">{_text(row.title)}{sub}</div>')
        for column, png in zip(grid.columns, row.panels, strict=True):
            if png is None:
                cells.append(f'<div class="empty">{_text(grid.empty)}</div>')
            else:
                cells.append(f"<div>{_img(png, f'{grid.name} {row.title} {column}')}</div>")
    caption = f"<figcaption>{_text(grid.caption)}</figcaption>" if grid.caption else ""
    return f'<figure><div class="grid" style="{style}">{"".join(cells)}</div>{caption}</figure>'


def _legend(legend: Legend) -> str:
    items = "".join(
        f'<span class="swatch" style="background: rgb{colour}"></span>{_text(name)}'
        for name, colour in legend.items
    )
    caption = f" &nbsp; {_text(legend.caption)}" if legend.caption else ""
    return f'<p class="legend">{items}{caption}</p>'


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_text(block.text)}</p>"
    if isinstance(block, Note):
        return f'<div class="note">{_text(block.text)}</div>'
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        caption = f"<figcaption>{_text(block.caption)}</figcaption>" if block.caption else ""
        return f"<figure>{_img(block.png, block.alt)}{caption}</figure>"
    if isinstance(block, PanelGrid):
        return _grid(block)
    return _legend(block)


def _section(section: Section) -> str:
    anchor = f' id="{html.escape(section.anchor)}"' if section.anchor else ""
    level = section.level
    body = "\n".join(_block(b) for b in section.blocks)
    return f"<section{anchor}><h{level}>{_text(section.title)}</h{level}>\n{body}</section>"


def _contents(report: Report) -> str:
    items = [
        f'<li><a href="#{html.escape(s.anchor)}">{_text(s.title)}</a></li>'
        for s in report.sections
        if s.anchor and s.level == 2
    ]
    return f"<nav><ul>{''.join(items)}</ul></nav>" if items else ""


def render_html(report: Report) -> str:
    """The whole page as text (UTF-8)."""
    subtitle = f'<p class="subtitle">{_text(report.subtitle)}</p>' if report.subtitle else ""
    sections = "\n".join(_section(s) for s in report.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style>"
        f"<script>{_SCRIPT}</script></head>\n"
        f'<body data-images-loaded="pending"><div id="broken"></div>'
        f"<h1>{_text(report.title)}</h1>{subtitle}{_contents(report)}\n{sections}\n"
        "</body></html>\n"
    )
