"""Options shared by many commands: the three roots and the device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tumorseg.paths import DEFAULT_BASE, PREPROCESSED_ENV, RAW_ENV, RESULTS_ENV, Roots

# Typer prints the environment variable itself ("[env var: TUMORSEG_RAW]"). Help texts hold no
# square brackets of their own: the help renderer reads "[word]" as markup and drops it.
RawOption = Annotated[
    Path,
    typer.Option("--raw", envvar=RAW_ENV, help="Raw datasets root.", show_default=True),
]
PreprocessedOption = Annotated[
    Path,
    typer.Option(
        "--preprocessed",
        envvar=PREPROCESSED_ENV,
        help="Preprocessed data root.",
        show_default=True,
    ),
]
ResultsOption = Annotated[
    Path,
    typer.Option(
        "--results",
        envvar=RESULTS_ENV,
        help="Results root.",
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
