"""Options shared by many commands: the three roots and the device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tumorseg.paths import DEFAULT_BASE, PREPROCESSED_ENV, RAW_ENV, RESULTS_ENV, Roots

RawOption = Annotated[
    Path,
    typer.Option(
        "--raw", envvar=RAW_ENV, help=f"Raw datasets root [env {RAW_ENV}].", show_default=True
    ),
]
PreprocessedOption = Annotated[
    Path,
    typer.Option(
        "--preprocessed",
        envvar=PREPROCESSED_ENV,
        help=f"Preprocessed data root [env {PREPROCESSED_ENV}].",
        show_default=True,
    ),
]
ResultsOption = Annotated[
    Path,
    typer.Option(
        "--results",
        envvar=RESULTS_ENV,
        help=f"Results root [env {RESULTS_ENV}].",
        show_default=True,
    ),
]

DEFAULT_RAW = DEFAULT_BASE / "raw"
DEFAULT_PREPROCESSED = DEFAULT_BASE / "preprocessed"
DEFAULT_RESULTS = DEFAULT_BASE / "results"


def roots(raw: Path, preprocessed: Path, results: Path) -> Roots:
    """Resolve the roots once, as absolute paths, for the API functions."""
    return Roots(
        raw.expanduser().resolve(),
        preprocessed.expanduser().resolve(),
        results.expanduser().resolve(),
    )
