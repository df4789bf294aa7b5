"""CLI commands: evaluate, compare, postprocess (determine, apply), find-best."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from tumorseg.cli.common import (
    DEFAULT_PREPROCESSED,
    DEFAULT_RAW,
    DEFAULT_RESULTS,
    PreprocessedOption,
    ProcessesOption,
    RawOption,
    ResultsOption,
    roots,
    start_output_folder,
)
from tumorseg.data.labels import FileConvention, RegionSet
from tumorseg.errors import TumorsegError


class Preset(str, Enum):
    """Post-processing described by a paper."""

    PAIRING = "pairing"


DatasetOption = Annotated[
    str | None,
    typer.Option("-d", "--dataset", help="Dataset id, name or folder (regions, label convention)."),
]


def _problems(exc: TumorsegError) -> NoReturn:
    """Print every line of a multi-case error, then exit 1 (one line per case)."""
    for line in getattr(exc, "lines", [str(exc)]):
        typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def _dataset(reference: str | None, raw: Path) -> Any:
    from tumorseg.paths import find_dataset

    return None if reference is None else find_dataset(reference, raw)


def _check_summary_output(pred: Path, output: Path | None) -> None:
    """Fail before scoring when the summary cannot be written: ``-o`` a ``.json`` file or a
    folder, by default the predictions folder."""
    from tumorseg.utils.outputs import check_output_file, check_output_folder
    from tumorseg.utils.temporaries import remove_stale_temporaries

    if output is not None and output.suffix == ".json":
        check_output_file(output)
        remove_stale_temporaries(output.parent)
    elif output is not None or pred.is_dir():
        folder = output if output is not None else pred
        check_output_folder(folder)
        remove_stale_temporaries(folder)


def evaluate(
    pred: Annotated[Path, typer.Argument(help="Folder of predicted label files (CASE.nii.gz).")],
    gt: Annotated[Path, typer.Argument(help="Folder of reference label files (CASE.nii.gz).")],
    regions: Annotated[
        RegionSet | None,
        typer.Option(
            "--regions",
            help="brats: WT/TC/ET (from dataset.json's regions); labels: each label alone; "
            "dataset: dataset.json's regions by name (default: brats when known, else dataset).",
            show_default=False,
        ),
    ] = None,
    dataset: DatasetOption = None,
    convention: Annotated[
        FileConvention | None,
        typer.Option(
            "--convention",
            help="Label convention of the files, overriding their labels.json (default: "
            "labels.json, which predict writes; else internal for a dataset's labelsTr, else "
            "the dataset's label_convention; internal = the dataset's own labels).",
            show_default=False,
        ),
    ] = None,
    gt_convention: Annotated[
        FileConvention | None,
        typer.Option("--gt-convention", help="Convention of the references if it differs."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="summary.json path or folder (default: PRED/summary.json)."
        ),
    ] = None,
    num_processes: ProcessesOption = 1,
    lesion_wise: Annotated[
        bool,
        typer.Option("--lesion-wise/--no-lesion-wise", help="Add BraTS 2023 lesion-wise scores."),
    ] = False,
    file_ending: Annotated[
        str | None,
        typer.Option(
            "--file-ending",
            help="Ending of the label files (default: the dataset's, else .nii.gz).",
            show_default=False,
        ),
    ] = None,
    time1: Annotated[
        Path | None,
        typer.Option(
            "--time1",
            help="Recurrence: time point 1 label maps whose tumour core the margin baselines "
            "grow (default: GT, or the dataset's labelsTr when PRED is a recurrence folder).",
            show_default=False,
        ),
    ] = None,
    recurrence_gt: Annotated[
        Path | None,
        typer.Option(
            "--recurrence-gt",
            help="Recurrence: the true recurrence maps for PRED/recurrence (default: the "
            "dataset's recurrence target folder, e.g. recurrenceTr).",
            show_default=False,
        ),
    ] = None,
    raw: RawOption = DEFAULT_RAW,
) -> None:
    """Evaluate predictions against references: Dice, HD95 (mm), sensitivity, specificity.

    A recurrence run's predictions (PRED/recurrence/) are scored too: Dice, HD95, sensitivity
    and the coverage of the true recurrence by the prediction, by an equal-volume margin and by
    the 15 mm CTV margin around the time point 1 tumour core. PRED may also be a folder of
    recurrence maps itself (GT: the true recurrence maps).
    """
    from tumorseg.data.targets import target_of_folder
    from tumorseg.evaluation.folders import evaluate_predictions
    from tumorseg.evaluation.summary import format_means

    _check_summary_output(pred, output)
    dataset_folder = _dataset(dataset, raw.expanduser().resolve())
    if target_of_folder(pred) is not None:
        _evaluate_recurrence(pred, gt, time1, dataset_folder, None, output, num_processes)
        return
    try:
        summary = evaluate_predictions(
            pred,
            gt,
            dataset_folder=dataset_folder,
            regions=regions,
            convention=convention,
            gt_convention=gt_convention,
            output=output,
            num_processes=num_processes,
            lesion_wise=lesion_wise,
            file_ending=file_ending,
        )
    except TumorsegError as exc:
        _problems(exc)
    typer.echo(format_means(summary))
    settings = summary["settings"]
    typer.echo(
        f"labels read as: predictions {settings['prediction_convention']}, "
        f"references {settings['reference_convention']}"
    )
    if summary["missing_predictions"]:
        typer.echo(
            f"note: {len(summary['missing_predictions'])} reference case(s) have no "
            "prediction and were not evaluated"
        )
    _recurrence_beside(pred, gt, time1, recurrence_gt, dataset_folder, settings, num_processes)


def _recurrence_beside(
    pred: Path,
    gt: Path,
    time1: Path | None,
    recurrence_gt: Path | None,
    dataset_folder: Path | None,
    settings: dict[str, Any],
    num_processes: int,
) -> None:
    """Score PRED/recurrence/ when a recurrence run wrote it (time point 1 labels: GT)."""
    from tumorseg.data.targets import RECURRENCE, target_folders, target_of_folder
    from tumorseg.evaluation.folders import recurrence_references

    maps = target_folders(pred, RECURRENCE)[0]
    if target_of_folder(maps) != RECURRENCE:
        return
    reference = recurrence_references(gt, dataset_folder, recurrence_gt)
    if reference is None:
        typer.echo(
            f"note: {maps} not scored: no true recurrence maps found; give -d DATASET (with a "
            "recurrence target folder) or --recurrence-gt FOLDER"
        )
        return
    convention = None if time1 is not None else FileConvention(settings["reference_convention"])
    _evaluate_recurrence(
        maps, reference, time1 or gt, dataset_folder, convention, None, num_processes
    )


def _evaluate_recurrence(
    maps: Path,
    reference: Path,
    time1: Path | None,
    dataset_folder: Path | None,
    convention: FileConvention | None,
    output: Path | None,
    num_processes: int,
) -> None:
    from tumorseg.evaluation.folders import evaluate_recurrence_maps
    from tumorseg.evaluation.recurrence import format_recurrence

    if time1 is None:
        if dataset_folder is None:
            raise TumorsegError(
                f"{maps}: scoring recurrence maps needs the time point 1 labels for the margin "
                "baselines; give -d DATASET (its labelsTr) or --time1 FOLDER"
            )
        time1 = Path(dataset_folder) / "labelsTr"
    try:
        summary = evaluate_recurrence_maps(
            maps,
            reference,
            time1,
            dataset_folder=dataset_folder,
            time1_convention=convention,
            output=output,
            num_processes=num_processes,
        )
    except TumorsegError as exc:
        _problems(exc)
    typer.echo(format_recurrence(summary))
    target = Path(output) if output is not None else maps
    written = target if target.suffix == ".json" else target / "summary.json"
    typer.echo(f"recurrence summary: {written}")


def compare(
    a: Annotated[Path, typer.Argument(help="summary.json of run A (or its folder).")],
    b: Annotated[Path, typer.Argument(help="summary.json of run B (or its folder).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Also write the table as JSON here.")
    ] = None,
) -> None:
    """Compare two evaluated runs case by case: paired Wilcoxon signed-rank test."""
    from tumorseg.evaluation.statistics import (
        compare_summaries,
        comparisons_to_json,
        format_comparison,
        read_summary,
    )
    from tumorseg.utils.atomic import write_json
    from tumorseg.utils.outputs import check_output_file

    if output is not None:
        check_output_file(output)
    rows = compare_summaries(read_summary(a), read_summary(b))
    if not rows or rows[0].n == 0:
        raise TumorsegError(f"{a} and {b} share no case; compare runs evaluated on the same cases")
    typer.echo(format_comparison(rows))
    if output is not None:
        write_json(output, {"a": str(a), "b": str(b), "rows": comparisons_to_json(rows)})


postprocess_app = typer.Typer(
    help="Post-processing: decide it on cross-validation, apply it to predictions.",
    no_args_is_help=True,
)


@postprocess_app.command("determine")
def determine(
    pred: Annotated[
        Path, typer.Argument(help="Cross-validation predictions (e.g. a fold's validation/).")
    ],
    gt: Annotated[Path, typer.Argument(help="Reference labels (e.g. the dataset's labelsTr).")],
    dataset: Annotated[str, typer.Option("-d", "--dataset", help="Dataset id, name or folder.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the decision.")
    ] = Path("postprocessing.json"),
    num_processes: ProcessesOption = 1,
    raw: RawOption = DEFAULT_RAW,
    without: Annotated[
        list[str] | None,
        typer.Option(
            "--without",
            help="A rule not to try (repeatable): remove_small_components, "
            "keep_largest_component, remove_distant_components, small_et_to_necrosis.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Try component removal and small-ET rules; keep those that improve the CV score."""
    from tumorseg.postprocessing.determine import determine_postprocessing
    from tumorseg.workflows.find_best import format_steps

    folder = _dataset(dataset, raw.expanduser().resolve())
    try:
        decision = determine_postprocessing(
            pred,
            gt,
            folder / "dataset.json",
            output=output,
            num_processes=num_processes,
            without=without or (),
        )
    except TumorsegError as exc:
        _problems(exc)
    typer.echo(f"post-processing: {format_steps(decision['steps'])}")
    typer.echo(f"mean Dice {_dice_line(decision['baseline'])} -> {_dice_line(decision['final'])}")
    typer.echo(f"decision written to {output}")


def _dice_line(scores: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{r} {v['dice']:.4f}" for r, v in scores.items())


@postprocess_app.command("apply")
def apply(
    input_folder: Annotated[Path, typer.Option("-i", "--input", help="Folder of label files.")],
    output_folder: Annotated[Path, typer.Option("-o", "--output", help="Folder for the results.")],
    decision: Annotated[
        Path | None, typer.Option("--decision", help="postprocessing.json (or find_best.json).")
    ] = None,
    preset: Annotated[
        Preset | None, typer.Option("--preset", help="A paper's post-processing instead.")
    ] = None,
    et_threshold: Annotated[
        int, typer.Option("--et-threshold", min=0, help="Small-ET threshold (voxels) for --preset.")
    ] = 200,
    convention: Annotated[
        FileConvention | None,
        typer.Option(
            "--convention",
            help="Label convention of the files, overriding their labels.json "
            "(default: labels.json, which predict writes; else internal).",
            show_default=False,
        ),
    ] = None,
    file_ending: Annotated[
        str, typer.Option("--file-ending", help="Ending of the label files.")
    ] = ".nii.gz",
) -> None:
    """Apply a post-processing decision to every label file of a folder."""
    from tumorseg.inference.postprocess_folder import folder_labels, postprocess_folder
    from tumorseg.postprocessing.rules import preset_decision, read_decision

    if (decision is None) == (preset is None):
        raise TumorsegError("give exactly one of --decision FILE and --preset NAME")
    start_output_folder(output_folder)
    if decision is not None:
        steps = read_decision(decision)
    else:
        manager, _ = folder_labels(input_folder, convention)
        steps = preset_decision(Preset(preset).value, et_threshold=et_threshold, labels=manager)
    written, errors = postprocess_folder(
        input_folder, output_folder, steps, convention, file_ending
    )
    for line in errors:
        typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
    typer.echo(f"{len(written)} file(s) written to {output_folder}")
    if errors:
        raise typer.Exit(1)


def find_best_command(
    dataset: Annotated[str, typer.Argument(help="Dataset id, name or folder.")],
    configurations: Annotated[
        list[str] | None, typer.Option("--configurations", "-c", help="Only these configurations.")
    ] = None,
    trainers: Annotated[
        list[str] | None, typer.Option("--trainers", "-tr", help="Only these trainers.")
    ] = None,
    ensembles: Annotated[
        bool, typer.Option("--ensembles/--no-ensembles", help="Also score every pair of runs.")
    ] = True,
    num_processes: ProcessesOption = 1,
    raw: RawOption = DEFAULT_RAW,
    preprocessed: PreprocessedOption = DEFAULT_PREPROCESSED,
    results: ResultsOption = DEFAULT_RESULTS,
) -> None:
    """Rank trained runs and their pairwise ensembles on cross-validation; pick post-processing."""
    from tumorseg.workflows.find_best import find_best, format_ranking

    r = roots(raw, preprocessed, results)
    folder = _dataset(dataset, r.raw)
    try:
        result = find_best(folder, r.results, configurations, trainers, num_processes, ensembles)
    except TumorsegError as exc:
        _problems(exc)
    typer.echo(format_ranking(result))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("evaluate")(evaluate)
    app.command("compare")(compare)
    app.add_typer(postprocess_app, name="postprocess")
    app.command("find-best")(find_best_command)
