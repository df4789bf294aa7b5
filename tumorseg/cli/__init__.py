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
from tumorseg.cli import data, demo, evaluate, plan, predict, synth, train
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
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Self-configuring segmentation of multi-modal brain tumour MRI (BraTS-style data)."""


for _module in (data, synth, plan, train, predict, evaluate, demo):
    _module.register(app)


def main() -> None:
    """Console-script entry point: one-line errors, no tracebacks, non-zero exit codes."""
    try:
        app(standalone_mode=False)
    except TumorsegError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
