"""CLI commands: predict, ensemble, export-model, install-model.

Folds are given as ``-f 0 -f 1`` or as a comma list ``-f 0,1,2`` (Typer options take one value
per flag, so the space-separated ``-f 0 1 2`` of nnU-Net is not accepted).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tumorseg.cli.common import (
    DEFAULT_RAW,
    DEFAULT_RESULTS,
    DeviceName,
    DeviceOption,
    FoldsOption,
    PlansOption,
    Precision,
    RawOption,
    ResultsOption,
    TrainerOption,
    resolve_device,
    start_output_folder,
)
from tumorseg.constants import DEFAULT_PLANS_NAME, MissingModality
from tumorseg.errors import TumorsegError


class Checkpoint(str, Enum):
    FINAL = "final"
    BEST = "best"


class Backend(str, Enum):
    """Mirrors ``tumorseg.inference.backends.Backend`` (that module imports torch)."""

    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class ModelFormat(str, Enum):
    TORCH = "torch"
    ONNX = "onnx"


#: Mirrors ``tumorseg.inference.onnx_export.ONNX_OPSET``.
DEFAULT_ONNX_OPSET = 18


RunOption = Annotated[
    str | None,
    typer.Option("--run", help="Run folder name, when runs with different settings exist."),
]


def predict(
    input_folder: Annotated[
        Path,
        typer.Option(
            "-i",
            "--input",
            help="Raw-convention folder (CASE_0000.nii.gz ...) or "
            "one sub-folder per case (BraTS naming: *_flair, *-t1c ...).",
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the label maps.")],
    dataset: Annotated[str, typer.Option("-d", "--dataset", help="Dataset id, name or path.")],
    configuration: Annotated[
        str, typer.Option("-c", "--configuration", help="Configuration: 2d, 2.5d, 3d_fullres ...")
    ],
    trainer: TrainerOption = "default",
    folds: FoldsOption = None,
    checkpoint: Annotated[
        Checkpoint, typer.Option("--checkpoint", help="Which checkpoint of each fold.")
    ] = Checkpoint.FINAL,
    no_tta: Annotated[
        bool,
        typer.Option(
            "--no-tta", help="Disable mirroring test-time augmentation (8x faster in 3D)."
        ),
    ] = False,
    step: Annotated[
        float,
        typer.Option("--step", min=0.05, max=1.0, help="Tile step as a fraction of the patch."),
    ] = 0.5,
    save_probabilities: Annotated[
        bool, typer.Option("--save-probabilities", help="Also write CASE.npz (for ensembling).")
    ] = False,
    device: DeviceOption = DeviceName.AUTO,
    num_threads: Annotated[
        int | None, typer.Option("--num-threads", min=1, help="CPU threads for the network.")
    ] = None,
    tile_batch_size: Annotated[
        int,
        typer.Option(
            "--tile-batch-size",
            min=0,
            help="Network inputs per forward pass (tiles and their mirrored versions); 0 chooses "
            "it from free memory and measured throughput.",
        ),
    ] = 0,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="Runtime of the networks: torch, onnxruntime or openvino (CPU; those two need "
            "pip install 'tumorseg\\[onnx]' / 'tumorseg\\[openvino]').",
        ),
    ] = Backend.TORCH,
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            help="CPU network precision: auto (bf16 where the CPU has native bf16 and it "
            "measures faster, else fp32), fp32 or bf16. onnxruntime always runs fp32.",
        ),
    ] = Precision.AUTO,
    plans: PlansOption = DEFAULT_PLANS_NAME,
    run: RunOption = None,
    postprocessing: Annotated[
        Path | None,
        typer.Option(
            "--postprocessing",
            help="Post-processing decision JSON to apply instead of the run's own.",
        ),
    ] = None,
    no_postprocess: Annotated[
        bool,
        typer.Option(
            "--no-postprocess",
            help="Apply no post-processing (default: the run's cross-validation decision, else "
            "its trainer's paper preset, else none).",
        ),
    ] = False,
    missing_modality: Annotated[
        MissingModality,
        typer.Option(
            "--missing-modality",
            help="A case lacking a channel the run reads: error (stop that case, naming the "
            "channel) or zero (give the network no signal in it; recorded in prediction.json).",
        ),
    ] = MissingModality.ERROR,
    uncertainty: Annotated[
        bool,
        typer.Option(
            "--uncertainty",
            help="Also write uncertainty/CASE_<REGION>.nii.gz (variance of each region's "
            "probability over folds and mirrors) and uncertainty.csv (mean variance and entropy "
            "inside the predicted tumour), from the same network passes.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Predict every case of an input folder with the folds of a trained run.

    Without -f: all five cross-validation folds averaged when they are trained (else the
    trained ones). Post-processing: the run's cross-validation decision, else its trainer's
    paper preset (pairing), else none; both choices are printed first and recorded in the
    output folder's labels.json. Labels are written in the dataset's source convention (e.g.
    0/1/2/4 for BraTS 2021); cases already in the output folder are skipped, so an
    interrupted run can be resumed.
    """
    start_output_folder(output)  # before the slow imports: a bad -o fails at once
    import torch

    from tumorseg.inference.predict_run import predict_with_run

    if num_threads is not None:
        torch.set_num_threads(num_threads)
    if no_postprocess and postprocessing is not None:
        raise TumorsegError("give --postprocessing FILE or --no-postprocess, not both")
    report = predict_with_run(
        input_folder,
        output,
        results.expanduser().resolve(),
        dataset,
        configuration,
        trainer=trainer,
        plans=plans,
        run=run,
        folds=folds,
        checkpoint=checkpoint.value,
        device=resolve_device(device),
        tta=not no_tta,
        step_size=step,
        tile_batch_size=tile_batch_size,
        backend=backend.value,
        precision=precision.value,
        save_probabilities=save_probabilities,
        postprocessing=postprocessing,
        run_postprocessing=not no_postprocess,
        echo=typer.echo,
        progress=not quiet,
        missing_modality=missing_modality,
        uncertainty=uncertainty,
    )
    typer.echo(
        f"{len(report.done)} predicted, {len(report.skipped)} already done, "
        f"{len(report.failed)} failed -> {output}"
    )
    if report.failed:
        # Each failed case has had its one error line; a summary error would be a second one.
        raise typer.Exit(1)


def ensemble(
    inputs: Annotated[
        list[Path], typer.Option("-i", "--input", help="A folder of CASE.npz (repeat, 2 or more).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for the ensembled labels.")
    ],
    dataset: Annotated[str, typer.Option("-d", "--dataset", help="Dataset id, name or path.")],
    save_probabilities: Annotated[
        bool, typer.Option("--save-probabilities", help="Also write the averaged CASE.npz.")
    ] = False,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing",
            help="Ensemble only the cases every input has (with a warning naming the others) "
            "instead of failing when the inputs hold different cases.",
        ),
    ] = False,
    uncertainty: Annotated[
        bool,
        typer.Option(
            "--uncertainty",
            help="Also write per-region variance maps over the inputs (how much they disagree) "
            "to OUTPUT/uncertainty/ and a per-case table, uncertainty.csv.",
        ),
    ] = False,
    raw: RawOption = DEFAULT_RAW,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Average the saved probabilities of several predictions (runs, configurations)."""
    from tumorseg.inference.ensemble import ensemble_folders
    from tumorseg.runs.locate import dataset_json_for

    start_output_folder(output)
    dataset_json = dataset_json_for(
        dataset, raw.expanduser().resolve(), results.expanduser().resolve()
    )
    written = ensemble_folders(
        list(inputs),
        output,
        dataset_json,
        save_probabilities=save_probabilities,
        allow_missing=allow_missing,
        warn=lambda line: typer.secho(f"warning: {line}", err=True),
        uncertainty=uncertainty,
    )
    typer.echo(f"{len(written)} case(s) ensembled -> {output}")


def export_model(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or path.")],
    configuration: Annotated[str, typer.Option("-c", "--configuration", help="Configuration.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Zip file to write.")],
    trainer: TrainerOption = "default",
    folds: FoldsOption = None,
    checkpoint: Annotated[
        list[Checkpoint] | None,
        typer.Option("--checkpoint", help="Checkpoint(s) to include (repeatable; default: final)."),
    ] = None,
    plans: PlansOption = DEFAULT_PLANS_NAME,
    run: RunOption = None,
    model_format: Annotated[
        ModelFormat,
        typer.Option(
            "--format",
            help="torch: checkpoints only; onnx: also each fold's network as ONNX, with the "
            "preprocessing and sliding-window settings in the manifest (needs "
            "pip install 'tumorseg\\[onnx]').",
        ),
    ] = ModelFormat.TORCH,
    opset: Annotated[
        int, typer.Option("--opset", min=17, help="ONNX opset of the exported graphs.")
    ] = DEFAULT_ONNX_OPSET,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Write a trained run (plans, dataset.json, settings, checkpoints) as one zip to share."""
    from tumorseg.runs.locate import find_fold_folders
    from tumorseg.utils.outputs import check_output_file
    from tumorseg.utils.temporaries import remove_stale_temporaries

    check_output_file(output)
    remove_stale_temporaries(output.parent)
    names = [c.value for c in checkpoint] if checkpoint else ["final"]
    fold_paths = find_fold_folders(
        results.expanduser().resolve(), dataset, configuration, trainer, plans, run, folds, names[0]
    )
    if model_format is ModelFormat.ONNX:
        from tumorseg.inference.onnx_export import export_onnx_model

        path = export_onnx_model(fold_paths[0].parent, fold_paths, output, names, opset)
        typer.echo(f"exported {len(fold_paths)} fold(s) with ONNX opset {opset} -> {path}")
        return
    from tumorseg.inference.model_sharing import export_model as export

    path = export(fold_paths[0].parent, fold_paths, output, names)
    typer.echo(f"exported {len(fold_paths)} fold(s) -> {path}")


def install_model(
    zip_file: Annotated[Path, typer.Argument(help="Model zip written by export-model.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an installed copy.")
    ] = False,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Install a shared model zip into the results root: only the files its manifest lists,
    checked (no unsafe paths, no pickled code, a size limit per file)."""
    from tumorseg.inference.model_sharing import install_model as install

    target = install(zip_file, results.expanduser().resolve(), overwrite=overwrite, note=typer.echo)
    typer.echo(f"installed -> {target}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command(
        "predict",
        help="Predict every case of an input folder with the folds of a trained run (without "
        "-f: the 5-fold ensemble when all five folds are trained). A case needs only the "
        "channels the run reads. Post-processing by default: the run's cross-validation "
        "decision, else its trainer's paper preset, else none (--no-postprocess, "
        "--postprocessing FILE). Labels are written in the dataset's source convention (e.g. "
        "0/1/2/4 for BraTS 2021) and recorded, with the post-processing, in the output "
        "folder's labels.json, what produced each case in its prediction.json; cases already "
        "in the output folder are skipped, so an interrupted run resumes.",
    )(predict)
    app.command("ensemble")(ensemble)
    app.command("export-model")(export_model)
    app.command("install-model")(install_model)
