"""The ``tumorseg`` command line: a thin Typer app.

Each command parses its options, builds a config, calls one API function and prints. Heavy
imports (torch, SimpleITK ...) happen inside command bodies so ``tumorseg --help`` is instant and
``import tumorseg.cli`` never imports torch.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tumorseg import __version__
from tumorseg.cli import data, demo, evaluate, normal, plan, predict, report, synth, train
from tumorseg.cli.common import accept_hidden_aliases
from tumorseg.errors import TumorsegError

app = typer.Typer(
    name="tumorseg",
    help="Self-configuring segmentation of multi-modal brain tumour MRI (BraTS-style data).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tumorseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Self-configuring segmentation of multi-modal brain tumour MRI (BraTS-style data)."""


for _module in (data, synth, plan, train, normal, predict, evaluate, report, demo):
    _module.register(app)
accept_hidden_aliases([app])


def _os_error_line(exc: OSError) -> str:
    """One line for an ``OSError`` that no command turned into a ``TumorsegError``: the path,
    the system's reason and where to look."""
    where = exc.filename if exc.filename is not None else "tumorseg"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{where}: {reason}; check the path, its permissions and the free disk space"


def main() -> None:
    """Console-script entry point: one-line errors, no tracebacks, non-zero exit codes.

    Typer's standalone mode prints usage errors itself (exit code 2); tumorseg's own errors
    propagate out of it and are printed here as one line. An ``OSError`` that reaches this
    point (a file system refusing something no command foresaw) is one line too. Ctrl-C exits
    with 130 (Typer's doing; ``train`` first says where its last checkpoint is).
    """
    try:
        app()
    except TumorsegError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except OSError as exc:
        typer.secho(f"error: {_os_error_line(exc)}", err=True, fg=typer.colors.RED)
        sys.exit(1)

