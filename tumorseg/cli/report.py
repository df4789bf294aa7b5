"""CLI command: report (one HTML page on a run or a folder of predictions)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tumorseg.cli.common import DEFAULT_RAW, RawOption


class ReportFormat(str, Enum):
    HTML = "html"
    MD = "md"


def report(
    source: Annotated[
        Path,
        typer.Argument(
            help="A run folder (RESULTS/DatasetNNN_Name/trainer__plans__configuration), one of "
            "its fold folders, or a folder written by tumorseg predict."
        ),
    ],
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            "-r",
            help="Reference label maps to outline and score against (default: those of the "
            "folder's summary.json).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Page to write (default: SOURCE/report.html).",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format", help="html: one self-contained page; md: Markdown, images beside it."
        ),
    ] = ReportFormat.HTML,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Input images of the cases (raw convention or case folders), when the "
            "recorded ones have moved.",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "-d",
            "--dataset",
            help="Dataset id, name or folder, for label maps tumorseg did not write.",
            show_default=False,
        ),
    ] = None,
    max_cases: Annotated[
        int, typer.Option("--max-cases", min=0, help="Cases shown with images (the page size).")
    ] = 24,
    uncertainty: Annotated[
        bool,
        typer.Option("--uncertainty", help="Stop unless the predictions have uncertainty maps."),
    ] = False,
    raw: RawOption = DEFAULT_RAW,
) -> None:
    """Write one page on a run or a folder of predictions: model, metrics, curves, overlays.

    Per case the reference and prediction are outlined on every modality at the tumour's
    centre in three planes (uncertainty maps too, when present); the metrics table gives mean,
    sd and median per region; each fold's training curves are re-plotted from its log.
    Whatever cannot be shown is said on the page.
    """
    from tumorseg.paths import find_dataset
    from tumorseg.reporting.report import write_report

    raw_root = raw.expanduser().resolve()
    dataset_folder = find_dataset(dataset, raw_root) if dataset is not None else None
    path = write_report(
        source,
        output,
        fmt=fmt.value,
        reference=reference,
        images=images,
        dataset_folder=dataset_folder,
        raw_root=raw_root,
        max_cases=max_cases,
        require_uncertainty=uncertainty,
    )
    typer.echo(f"report: {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("report")(report)
