"""A ``Report`` as Markdown, its images as PNG files in a folder beside it.

``report.md`` gets ``report_files/NAME.png``; panel grids become Markdown tables of images, so
the page reads the same on a code-hosting site as in the HTML version.
"""

from __future__ import annotations

import re
from pathlib import Path

from tumorseg.reporting.document import (
    Block,
    Image,
    Legend,
    Note,
    PanelGrid,
    Paragraph,
    Report,
    Table,
)
from tumorseg.utils.atomic import atomic_path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> list[str]:
    header = list(table.header)
    if table.groups:
        # Markdown has one header row: prefix each column with its group's title.
        titles = [title for title, n in table.groups for _ in range(n)]
        header = [
            f"{g} {h}".strip() if g and g != h else h for g, h in zip(titles, header, strict=True)
        ]
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "---|" * len(table.header),
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return [*lines, *(["", f"*{table.caption}*"] if table.caption else [])]


class _ImageWriter:
    """Writes each PNG once under ``folder`` and returns its link relative to the page."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: set[str] = set()

    def link(self, png: bytes, name: str) -> str:
        stem = _UNSAFE.sub("_", name).strip("_") or "image"
        candidate, n = stem, 1
        while candidate in self.names:
            n += 1
            candidate = f"{stem}_{n}"
        self.names.add(candidate)
        path = self.folder / f"{candidate}.png"
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        return f"{self.folder.name}/{path.name}"


def _grid(grid: PanelGrid, images: _ImageWriter) -> list[str]:
    lines = ["| | " + " | ".join(_cell(c) for c in grid.columns) + " |"]
    lines.append("|---|" + "---|" * len(grid.columns))
    for row in grid.rows:
        cells = []
        for column, png in zip(grid.columns, row.panels, strict=True):
            if png is None:
                cells.append(f"*{grid.empty}*")
            else:
                link = images.link(png, f"{grid.name}_{row.title}_{column}")
                cells.append(f"![{_cell(column)}]({link})")
        title = f"**{_cell(row.title)}**" + (f"<br>{_cell(row.subtitle)}" if row.subtitle else "")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return [*lines, *(["", f"*{grid.caption}*"] if grid.caption else [])]


def _block(block: Block, images: _ImageWriter) -> list[str]:
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Note):
        return [f"> **Note:** {block.text}"]
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        lines = [f"![{block.alt}]({images.link(block.png, block.name)})"]
        return lines + (["", f"*{block.caption}*"] if block.caption else [])
    if isinstance(block, PanelGrid):
        return _grid(block, images)
    assert isinstance(block, Legend)
    items = ", ".join(f"{name} (rgb{colour})" for name, colour in block.items)
    return [f"Colours: {items}." + (f" {block.caption}" if block.caption else "")]


def render_markdown(report: Report, page: Path) -> str:
    """The Markdown text of ``report`` for a page written at ``page``; its images are written
    to ``<page stem>_files/`` beside it as a side effect."""
    images = _ImageWriter(page.parent / f"{page.stem}_files")
    lines = [f"# {report.title}", ""]
    if report.subtitle:
        lines += [report.subtitle, ""]
    for section in report.sections:
        lines += ["#" * section.level + " " + section.title, ""]
        for block in section.blocks:
            lines += [*_block(block, images), ""]
    return "\n".join(lines).rstrip() + "\n"
