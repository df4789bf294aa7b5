"""CLI commands: train, slurm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tumorseg.cli.common import (
    DEFAULT_PREPROCESSED,
    DEFAULT_RAW,
    DEFAULT_RESULTS,
    DeviceName,
    DeviceOption,
    PlansOption,
    Precision,
    PreprocessedOption,
    RawOption,
    ResultsOption,
    TrainerOption,
    folds_option,
    processes_option,
    resolve_device,
    roots,
)
from tumorseg.constants import DEFAULT_PLANS_NAME


def train(
    dataset: Annotated[
        str, typer.Argument(help="Dataset id, DatasetNNN_Name, or path (preprocessed root).")
    ],
    configuration: Annotated[
        str, typer.Argument(help="Planned configuration: 2d, 2.5d, 3d_fullres, 3d_lowres.")
    ],
    fold: Annotated[
        str, typer.Argument(help="Cross-validation fold 0-4, or 'all' (train on every case).")
    ],
    trainer: TrainerOption = "default",
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", min=1, help="Epochs of the LR schedule (default: 1000)."),
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option(
            "--iterations-per-epoch", min=1, help="Optimiser steps per epoch (default: 250)."
        ),
    ] = None,
    val_iterations: Annotated[
        int | None,
        typer.Option(
            "--val-iterations", min=1, help="Validation batches per epoch (default: steps / 5)."
        ),
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            "--time-budget",
            help="Fit the whole schedule into this wall-clock time, e.g. 90s, 20m, 2h.",
        ),
    ] = None,
    device: DeviceOption = DeviceName.AUTO,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the fold's latest checkpoint.")
    ] = False,
    pretrained: Annotated[
        Path | None,
        typer.Option(
            "--pretrained",
            help="Initialise from a run folder (its fold_all, or its only fold), a fold folder "
            "or a checkpoint file: transfer learning; the trainer decides what is copied.",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of weights, sampling and augmentation.")
    ] = None,
    num_workers: Annotated[
        int, processes_option("Background data-loading processes (0: none).", minimum=0)
    ] = 2,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Override the plan's batch size.")
    ] = None,
    plans: PlansOption = DEFAULT_PLANS_NAME,
    validation_tta: Annotated[
        bool, typer.Option("--validation-tta", help="Mirroring TTA in the final validation.")
    ] = False,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Trainer setting key=value (repeatable), e.g. --set dice_weight=0.5."
        ),
    ] = None,
    save_attention: Annotated[
        bool,
        typer.Option(
            "--save-attention",
            help="clfc: write attention maps of a few validation slices to fold_k/attention/.",
        ),
    ] = False,
    lookalikes: Annotated[
        float | None,
        typer.Option(
            "--lookalikes",
            min=0.0,
            max=1.0,
            help="Share of each batch centred on tumour look-alikes (bright FLAIR/T1c far from "
            "the tumour): hard negatives against scattered false positives (default 0: off).",
        ),
    ] = None,
    channels_last: Annotated[
        bool | None,
        typer.Option(
            "--channels-last/--no-channels-last",
            help="Lay the network's weights and images out channels-last (NHWC / NDHWC): the "
            "same arithmetic in another layout. Default: on for a 3d network trained in bf16 on "
            "the CPU (measured faster there), off elsewhere.",
        ),
    ] = None,
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            help="CPU training precision: auto (default: bf16 autocast where the CPU has native "
            "bf16, AVX512-BF16/AMX, and a probe measures it faster; else fp32), fp32 or bf16. "
            "The resolved value is part of the run's identity.",
        ),
    ] = Precision.AUTO,
    raw: RawOption = DEFAULT_RAW,
    preprocessed: PreprocessedOption = DEFAULT_PREPROCESSED,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Train one fold; writes RESULTS/<dataset>/<trainer>__<plans>__<configuration>/fold_<k>/."""
    from tumorseg.inference.precision import precision_line
    from tumorseg.runs.folds import parse_fold
    from tumorseg.training.config import parse_duration, parse_set_values
    from tumorseg.training.run import prepare_run

    chosen_fold = parse_fold(fold)
    loop_values: dict[str, object] = {"device": resolve_device(device), "num_workers": num_workers}
    optional = {
        "epochs": epochs,
        "iterations_per_epoch": iterations,
        "val_iterations": val_iterations,
        "seed": seed,
        "batch_size": batch_size,
        "oversample_lookalikes": lookalikes,
        "channels_last": channels_last,
    }
    loop_values.update({k: v for k, v in optional.items() if v is not None})
    # auto is resolved here, so the run records (and is named by) what it computes: a bf16
    # run is a bf16 run however it was asked for, and fp32 stays the identity's default.
    chosen, line = precision_line(precision, str(loop_values["device"]))
    if loop_values["device"] == "cpu":
        typer.echo(line)
    if chosen is not Precision.FP32:
        loop_values["precision"] = chosen.value
    if time_budget is not None:
        loop_values["time_budget_s"] = parse_duration(time_budget)
    if validation_tta:
        loop_values["validation_tta"] = True
    if pretrained is not None:
        from tumorseg.runs.checkpoint import resolve_checkpoint

        # Absolute, so the run's identity does not depend on the working directory.
        loop_values["pretrained"] = str(resolve_checkpoint(pretrained).resolve())
    run_roots, set_values = roots(raw, preprocessed, results), parse_set_values(settings or [])

    def prepare(values: dict[str, object]) -> Any:
        return prepare_run(
            run_roots, dataset, configuration, chosen_fold, trainer, plans, set_values, values
        )

    run = prepare(loop_values)
    if resume and precision is Precision.AUTO and "precision" in loop_values:
        # A run started in fp32 (the default before auto) resumes as itself, in fp32, instead
        # of starting a new bf16 run beside it.
        fp32 = prepare({k: v for k, v in loop_values.items() if k != "precision"})
        if not _has_checkpoint(run.fold_folder) and _has_checkpoint(fp32.fold_folder):
            typer.echo(f"precision: fp32 (resuming the fp32 run in {fp32.fold_folder})")
            run = fp32
    if save_attention:
        from tumorseg.reporting.attention import check_attention_trainer

        check_attention_trainer(run.trainer)
    from tumorseg.training.loop import train as train_run
    from tumorseg.training.stops import TrainingInterrupted

    try:
        folder = train_run(run, resume=resume)
    except TrainingInterrupted as stop:
        typer.secho(_interrupted_line(stop), err=True)
        raise typer.Exit(130) from None
    typer.echo(f"trained: {folder}")
    if save_attention:
        from tumorseg.reporting.attention import save_attention_maps

        cases = run.val_cases or run.train_cases
        for path in save_attention_maps(folder, run.data_folder, cases, run.loop.device):
            typer.echo(f"wrote {path}")


def _has_checkpoint(fold_folder: Path) -> bool:
    from tumorseg.runs.checkpoint import checkpoint_path

    return any(checkpoint_path(fold_folder, name).is_file() for name in ("final", "latest"))


def _interrupted_line(stop: Any) -> str:
    """Where an interrupted ``train`` left its last checkpoint and the command that resumes it
    (this command line with ``--resume``)."""
    import shlex
    import sys

    args = list(sys.argv[1:])
    command = shlex.join(["tumorseg", *args, *([] if "--resume" in args else ["--resume"])])
    if stop.checkpoint is None:
        return (
            f"interrupted before the first checkpoint of {stop.fold_folder}; start again with: "
            + shlex.join(["tumorseg", *args])
        )
    return (
        f"interrupted: the last checkpoint is {stop.checkpoint} ({stop.epochs_done} epoch(s) "
        f"done); continue with: {command}"
    )


def slurm(
    dataset: Annotated[str, typer.Argument(help="Dataset id or DatasetNNN_Name.")],
    configurations: Annotated[list[str], typer.Argument(help="One or more configurations.")],
    folds: Annotated[list[str] | None, folds_option("0-4")] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="SLURM partition.")] = None,
    gpus: Annotated[
        int, typer.Option("--gpus", min=0, help="GPUs per task (>1 runs torchrun DDP).")
    ] = 1,
    time: Annotated[
        str, typer.Option("--time", help="Wall-clock limit per task, HH:MM:SS.")
    ] = "24:00:00",
    trainer: TrainerOption = "default",
    output: Annotated[Path, typer.Option("-o", "--output", help="Script to write.")] = Path(
        "tumorseg_train.sh"
    ),
    raw: RawOption = DEFAULT_RAW,
    preprocessed: PreprocessedOption = DEFAULT_PREPROCESSED,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Write a SLURM job-array script: one `tumorseg train` task per configuration x fold."""
    from tumorseg.runs.folds import parse_folds
    from tumorseg.trainers import trainer_class
    from tumorseg.training.slurm import SlurmJob, write_job_script

    trainer_class(trainer)
    job = SlurmJob(
        dataset,
        tuple(configurations),
        tuple(parse_folds(folds) or parse_folds("0-4") or ()),
        roots(raw, preprocessed, results),
        trainer,
        partition,
        gpus,
        time,
    )
    path = write_job_script(job, output)
    typer.echo(
        f"wrote {path}: {len(job.configurations) * len(job.folds)} array tasks; "
        f"submit with sbatch {path}"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("train")(train)
    app.command("slurm")(slurm)
