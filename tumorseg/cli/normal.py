"""CLI commands: train-normal, normal-appearance (the clfc trainer's normal-appearance model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tumorseg.cli.common import (
    DEFAULT_PREPROCESSED,
    DEFAULT_RAW,
    DEFAULT_RESULTS,
    DeviceName,
    DeviceOption,
    PreprocessedOption,
    RawOption,
    ResultsOption,
    resolve_device,
    roots,
)


def train_normal(
    dataset: Annotated[str, typer.Argument(help="Dataset id, DatasetNNN_Name, or path.")],
    healthy: Annotated[
        Path | None,
        typer.Option(
            "--healthy",
            help="Healthy T1 file or folder of T1 files (default: dataset.json 'healthy').",
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Epochs (default: 100).")
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option("--iterations-per-epoch", min=1, help="Steps per epoch (default: 50)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Slices per step (default: 32).")
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option("--time-budget", help="Fit the epochs into this wall-clock time, e.g. 20m."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of weights and batches.")] = None,
    device: DeviceOption = DeviceName.AUTO,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the latest checkpoint.")
    ] = False,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Model setting key=value (repeatable), e.g. --set margin=80."),
    ] = None,
    raw: RawOption = DEFAULT_RAW,
    preprocessed: PreprocessedOption = DEFAULT_PREPROCESSED,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Train the IntroVAE normal-appearance model on healthy T1 slices (used by --trainer clfc).

    Writes RESULTS/<dataset>/normal_appearance[-<hash>]/ (checkpoints, normal_config.json,
    log.txt, progress.png, samples.png); every clfc run of the dataset shares it.
    """
    from tumorseg.training.config import parse_duration, parse_set_values
    from tumorseg.training.normal_training import prepare_normal_training, train_normal

    values = parse_set_values(settings or [])
    optional = {
        "epochs": epochs,
        "iterations_per_epoch": iterations,
        "batch_size": batch_size,
        "seed": seed,
    }
    values.update({k: v for k, v in optional.items() if v is not None})
    job = prepare_normal_training(
        roots(raw, preprocessed, results),
        dataset,
        healthy=healthy,
        settings=values,
        device=resolve_device(device),
        time_budget_s=parse_duration(time_budget) if time_budget is not None else None,
    )
    folder = train_normal(job, resume=resume)
    typer.echo(f"trained: {folder}")


def normal_appearance(
    source: Annotated[
        Path, typer.Option("-i", "--input", help="T1 file, or a case folder holding one.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output .nii.gz file or folder.")
    ],
    dataset: Annotated[str, typer.Option("-d", "--dataset", help="Dataset id or name.")],
    model: Annotated[
        str,
        typer.Option("--model", help="Normal-appearance run name (default: the only one)."),
    ] = "",
    figure: Annotated[
        Path | None,
        typer.Option("--figure", help="Also write a PNG: input, pseudo-healthy T1, difference."),
    ] = None,
    figure_slice: Annotated[
        int | None,
        typer.Option("--slice", help="Slice of the figure (default: where they differ most)."),
    ] = None,
    device: DeviceOption = DeviceName.AUTO,
    raw: RawOption = DEFAULT_RAW,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Write the pseudo-healthy T1 of a patient (NIfTI, the input's grid) with the dataset's
    normal-appearance model."""
    from tumorseg.data.dataset_json import DatasetJson
    from tumorseg.errors import TumorsegError
    from tumorseg.paths import find_dataset
    from tumorseg.runs.locate import find_results_dataset
    from tumorseg.workflows.normal_appearance import normal_appearance as run

    resolved = roots(raw, DEFAULT_PREPROCESSED, results)
    results_dataset = find_results_dataset(dataset, resolved.results)
    try:
        dataset_json: DatasetJson | None = DatasetJson.read(
            find_dataset(results_dataset.name, resolved.raw)
        )
    except TumorsegError:
        dataset_json = None  # a T1 file or a case folder with named files needs no dataset.json
    written = run(
        source,
        output,
        results_dataset,
        model_name=model,
        dataset_json=dataset_json,
        device=resolve_device(device),
        figure=figure,
        figure_slice=figure_slice,
    )
    typer.echo(f"wrote {written}")
    if figure is not None:
        typer.echo(f"wrote {figure}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("train-normal")(train_normal)
    app.command("normal-appearance")(normal_appearance)
