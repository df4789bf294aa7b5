"""The report as a document: sections of paragraphs, notes, tables and images.

``tumorseg.reporting.report`` builds one ``Report``; ``html`` renders it as one self-contained
page, ``markdown`` as Markdown with its images beside it. Text is plain: renderers escape it,
and a span between backticks is set as code (a path, a command).
"""

from __future__ import annotations

from dataclasses import dataclass, field

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Note:
    """Something the page cannot show, and why (no reference, no curves ...): set apart."""

    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    # Cells of the first column are row names (set in bold, left-aligned).
    row_names: bool = True
    # A header row above ``header``: (title, number of columns it spans), covering them all.
    groups: tuple[tuple[str, int], ...] = ()
    # Numbers (right-aligned, so digits line up) rather than text (left-aligned).
    numeric: bool = True


@dataclass(frozen=True)
class Image:
    """A PNG; ``name`` is unique in the report (a file name stem for Markdown)."""

    png: bytes
    name: str
    alt: str
    caption: str = ""


@dataclass(frozen=True)
class PanelRow:
    """One row of a panel grid: its title and one PNG (or None: nothing to show) per column."""

    title: str
    panels: tuple[bytes | None, ...]
    # Shown under the title, e.g. which side of the image is the patient's right.
    subtitle: str = ""


@dataclass(frozen=True)
class PanelGrid:
    """Images in rows and columns with titles, e.g. planes x modalities of one case."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[PanelRow, ...]
    caption: str = ""
    # Text for a cell without image (a channel the case lacks).
    empty: str = "absent"


@dataclass(frozen=True)
class Legend:
    """Colour swatches with their meaning, e.g. the label outlines."""

    items: tuple[tuple[str, RGB], ...]
    caption: str = ""


Block = Paragraph | Note | Table | Image | PanelGrid | Legend


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    # 2: a top-level section (listed in the contents); 3: a sub-section such as one case.
    level: int = 2
    anchor: str = ""


@dataclass
class Report:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def images(self) -> int:
        """How many images the report holds (each panel counts), for checks."""
        count = 0
        for section in self.sections:
            for block in section.blocks:
                if isinstance(block, Image):
                    count += 1
                elif isinstance(block, PanelGrid):
                    count += sum(p is not None for row in block.rows for p in row.panels)
        return count
