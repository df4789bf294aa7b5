"""CLI commands: plan (fingerprint -> plans -> preprocess) and preprocess."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tumorseg.cli.common import (
    DEFAULT_PREPROCESSED,
    DEFAULT_RAW,
    DEFAULT_RESULTS,
    PlansOption,
    PreprocessedOption,
    ProcessesOption,
    RawOption,
    ResultsOption,
    roots,
)
from tumorseg.constants import DEFAULT_PLANS_NAME, Configuration
from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots


class PlanDevice(str, Enum):
    """Devices the planner has rules for; ``auto`` plans for the device that is present."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


DatasetArgument = Annotated[
    str, typer.Argument(help="Dataset id (501), folder name (Dataset501_BraTS) or path.")
]
# Click options take one value each; the extra positional values let `-c 2d 2.5d 3d_fullres`
# work as in nnU-Net (the first value after -c is the option, the rest land here).
MoreConfigurations = Annotated[
    list[str] | None,
    typer.Argument(help="More configurations after the first -c value.", show_default=False),
]
ConfigurationsOption = Annotated[
    list[Configuration] | None,
    typer.Option(
        "-c",
        "--configurations",
        help="Configurations: -c 2d 2.5d 3d_fullres 3d_lowres "
        "(default: 2d 2.5d 3d_fullres, plus 3d_lowres when warranted).",
        show_default=False,
    ),
]


def _configurations(first: list[Configuration] | None, more: list[str] | None) -> list[str] | None:
    if not first:
        if more:
            raise TumorsegError(
                f"unexpected argument(s) {' '.join(more)}; name configurations after -c"
            )
        return None
    names = [c.value for c in first]
    for value in more or []:
        try:
            names.append(Configuration(value).value)
        except ValueError:
            valid = ", ".join(c.value for c in Configuration)
            raise TumorsegError(f"unknown configuration {value!r}; valid: {valid}") from None
    return list(dict.fromkeys(names))


def _stored_plans(dataset: str, r: Roots, plans_name: str) -> Path | None:
    """The plans file ``plan`` wrote for ``dataset`` under ``plans_name``; None if none yet."""
    from tumorseg.paths import find_dataset

    try:
        folder = find_dataset(dataset, r.preprocessed, "preprocessed")
    except TumorsegError:
        return None
    path = r.preprocessed / folder.name / f"{plans_name}.json"
    return path if path.is_file() else None


def _show_stored(path: Path) -> None:
    from tumorseg.planning.plans import Plans
    from tumorseg.planning.show import format_plans

    typer.echo(format_plans(Plans.read(path)))
    typer.echo(f"stored plans: {path} (left as they are; run plan without --show to re-plan)")


def plan(
    dataset: DatasetArgument,
    more: MoreConfigurations = None,
    configurations: ConfigurationsOption = None,
    gpu_memory: Annotated[
        float | None,
        typer.Option(
            "--gpu-memory",
            min=0.1,
            help="Memory budget in GB for patch and batch sizes (default: 8 for cuda, 2 for cpu).",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        PlanDevice,
        typer.Option(
            "--device",
            help="Device the plans are for (cpu: small patches); auto: cuda if a CUDA GPU is "
            "present, else cpu.",
        ),
    ] = PlanDevice.AUTO,
    num_processes: ProcessesOption = 2,
    no_preprocess: Annotated[
        bool, typer.Option("--no-preprocess", help="Write fingerprint and plans only.")
    ] = False,
    show: Annotated[
        bool,
        typer.Option(
            "--show",
            help="Print the stored plans as a table, changing nothing; plans first only when "
            "there are none yet.",
        ),
    ] = False,
    plans_name: PlansOption = DEFAULT_PLANS_NAME,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace plans that trained runs use (else give a new --plans name)."
        ),
    ] = False,
    clean: Annotated[
        bool, typer.Option("--clean", help="Recompute the fingerprint even if one is stored.")
    ] = False,
    raw: RawOption = DEFAULT_RAW,
    preprocessed: PreprocessedOption = DEFAULT_PREPROCESSED,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Fingerprint a raw dataset, plan its configurations and preprocess them.

    Plans that trained runs under the results root were made from are replaced only with
    --force; --show prints the stored plans without planning again.
    """
    from tumorseg.paths import find_dataset
    from tumorseg.planning.show import format_plans
    from tumorseg.utils.device import choose_plan_device
    from tumorseg.workflows.plan_and_preprocess import plan_dataset

    r = roots(raw, preprocessed, results)
    if show:
        stored = _stored_plans(dataset, r, plans_name)
        if stored is not None:
            _show_stored(stored)
            return
    folder = find_dataset(dataset, r.raw)
    if show:
        typer.echo(f"no plans {plans_name!r} for {folder.name} yet: planning them now")
    names = _configurations(configurations, more)
    kwargs = {"configurations": names} if names else {}
    choice = choose_plan_device(device.value)
    typer.echo(choice.line())
    plans = plan_dataset(
        folder,
        r.preprocessed,
        device=choice.device,
        results_root=r.results,
        force=force,
        memory_budget_gb=gpu_memory,
        num_processes=num_processes,
        plans_name=plans_name,
        preprocess=not no_preprocess,
        clean=clean,
        log=typer.echo,
        **kwargs,  # type: ignore[arg-type]
    )
    if show:
        typer.echo(format_plans(plans))
    else:
        for note in plans.notes:
            typer.echo(f"note: {note}")
    typer.echo(f"done: {r.preprocessed / folder.name}")


def preprocess(
    dataset: DatasetArgument,
    more: MoreConfigurations = None,
    configurations: ConfigurationsOption = None,
    num_processes: ProcessesOption = 2,
    plans_name: PlansOption = DEFAULT_PLANS_NAME,
    raw: RawOption = DEFAULT_RAW,
    preprocessed: PreprocessedOption = DEFAULT_PREPROCESSED,
) -> None:
    """Preprocess configurations of existing plans (all planned ones by default); resumable."""
    from tumorseg.paths import find_dataset
    from tumorseg.workflows.plan_and_preprocess import preprocess_planned

    r = roots(raw, preprocessed, DEFAULT_RESULTS)
    folder = find_dataset(dataset, r.raw)
    preprocess_planned(
        folder,
        r.preprocessed,
        configurations=_configurations(configurations, more),
        num_processes=num_processes,
        plans_name=plans_name,
        log=typer.echo,
    )
    typer.echo(f"done: {r.preprocessed / folder.name}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("plan")(plan)
    app.command("preprocess")(preprocess)
