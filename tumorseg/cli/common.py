"""Options shared by many commands, each spelled once: roots, device, trainer, plans, folds, -np.

Every command that takes one of these uses the type defined here, so a flag means the same thing
and is spelled the same way everywhere (``tests/test_cli_help.py`` checks this over the whole
app). Old spellings stay accepted as hidden aliases (``HIDDEN_ALIASES``).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

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


class Precision(str, Enum):
    """Network precision on the CPU; mirrors ``tumorseg.inference.precision.Precision`` (that
    module imports torch, which the CLI loads only when a command runs)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


class DeviceName(str, Enum):
    """``--device`` of train and predict; ``auto`` takes the GPU that is present, else the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


DeviceOption = Annotated[
    DeviceName,
    typer.Option(
        "--device", help="Device to run on; auto: a CUDA or Apple GPU if present, else cpu."
    ),
]


def resolve_device(requested: DeviceName) -> str:
    """The device to use for ``--device requested``, printed with the reason it was chosen."""
    from tumorseg.utils.device import choose_device

    choice = choose_device(requested.value)
    typer.echo(choice.line())
    return choice.device


def start_output_folder(folder: Path) -> None:
    """Check ``-o`` before the work starts (one line if it cannot be written) and remove the
    temporary files that killed runs left in it."""
    from tumorseg.utils.outputs import check_output_folder
    from tumorseg.utils.temporaries import remove_stale_temporaries

    check_output_folder(folder)
    remove_stale_temporaries(folder)


def processes_option(help: str, minimum: int = 1) -> Any:
    """``-np/--num-processes``: always a number of processes (never threads)."""
    return typer.Option("-np", "--num-processes", min=minimum, help=help)


ProcessesOption = Annotated[int, processes_option("Worker processes (cases handled in parallel).")]
TrainerOption = Annotated[
    str, typer.Option("--trainer", "-tr", help="Registered trainer: default, pairing, msf ...")
]
PlansOption = Annotated[
    str, typer.Option("--plans", help="Name of the plans (the plans file without .json).")
]


def folds_option(default: str) -> Any:
    return typer.Option(
        "-f",
        "--folds",
        help="Folds: repeat (-f 0 -f 1), a comma list (-f 0,1,2) or a range (-f 0-4); 'all' for "
        f"fold_all. Default: {default}.",
        show_default=False,
    )


FoldsOption = Annotated[list[str] | None, folds_option("every fold with the checkpoint")]

#: Spellings older versions used, still accepted but not shown in ``--help``: alias -> the
#: option's name today. An alias applies only where the command has that option and no option of
#: the alias's own name.
HIDDEN_ALIASES = {
    "-t": "--trainer",
    "--trainers": "--trainer",
    "--plans-name": "--plans",
    "--num-workers": "--num-processes",
}


def _alias_target(flag: str, names: set[str]) -> str | None:
    """The option name ``flag`` stands for in a command with option names ``names``, if any."""
    target = HIDDEN_ALIASES.get(flag)
    if target is None or flag in names:
        return None
    # Where the option takes several values its name may be plural (find-best's --trainers).
    return next((n for n in (target, f"{target}s") if n in names), None)


def _rewrite(args: list[str], names: set[str]) -> list[str]:
    """``args`` with hidden aliases replaced by the names ``names`` holds (``--alias=v`` too)."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        flag, sep, value = arg.partition("=")
        target = _alias_target(flag, names)
        out.append(arg if target is None else f"{target}{sep}{value}")
    return out


class AliasCommand(TyperCommand):
    """A Typer command that also accepts the hidden aliases of its options."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        names = {opt for p in self.params for opt in (*p.opts, *p.secondary_opts)}
        return super().parse_args(ctx, _rewrite(args, names))


def accept_hidden_aliases(apps: Iterable[typer.Typer]) -> None:
    """Give every command of ``apps`` (and of their sub-apps) the hidden aliases."""
    for app in apps:
        for info in app.registered_commands:
            if info.cls in (None, TyperCommand):  # Typer's default; a custom class is kept
                info.cls = AliasCommand
        accept_hidden_aliases(
            g.typer_instance for g in app.registered_groups if g.typer_instance is not None
        )
