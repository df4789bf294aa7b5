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
)
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.regions import ConventionChoice, RegionSet


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


def evaluate(
    pred: Annotated[Path, typer.Argument(help="Folder of predicted label files (CASE.nii.gz).")],
    gt: Annotated[Path, typer.Argument(help="Folder of reference label files (CASE.nii.gz).")],
    regions: Annotated[
        RegionSet, typer.Option("--regions", help="brats: WT/TC/ET; labels: each label alone.")
    ] = RegionSet.BRATS,
    dataset: DatasetOption = None,
    convention: Annotated[
        ConventionChoice | None,
        typer.Option(
            "--convention",
            help="Label convention of the files (default: the dataset's label_convention with -d, "
            "but internal when GT is the dataset's own labelsTr; else internal = BraTS 2023).",
        ),
    ] = None,
    gt_convention: Annotated[
        ConventionChoice | None,
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
        str, typer.Option("--file-ending", help="Ending of the label files.")
    ] = ".nii.gz",
    raw: RawOption = DEFAULT_RAW,
) -> None:
    """Evaluate predictions against references: Dice, HD95 (mm), sensitivity, specificity."""
    from tumorseg.data.dataset_json import DatasetJson
    from tumorseg.evaluation.regions import brats_regions, label_mapping, label_regions
    from tumorseg.evaluation.summary import evaluate_folders, format_means

    folder = _dataset(dataset, raw.expanduser().resolve())
    dj = DatasetJson.read(folder / "dataset.json") if folder is not None else None
    default: ConventionChoice | None = None
    if dj is not None and dj.label_convention is not None:
        own_labels = gt.resolve() == (folder / "labelsTr").resolve()
        default = None if own_labels else ConventionChoice(dj.label_convention.value)
    pred_mapping = label_mapping(convention or default)
    gt_mapping = label_mapping(gt_convention or convention or default)
    if regions is RegionSet.BRATS:
        region_spec = brats_regions()
    else:
        values = sorted(set((gt_mapping or {0: 0, 1: 1, 2: 2, 3: 3}).values()))
        if dj is not None and dj.label_convention is None:
            values = list(dj.label_values)
        region_spec = label_regions(tuple(values))
    try:
        summary = evaluate_folders(
            pred,
            gt,
            region_spec,
            file_ending,
            output or pred / "summary.json",
            num_processes,
            pred_mapping=pred_mapping,
            gt_mapping=gt_mapping,
            lesion_wise=lesion_wise,
        )
    except TumorsegError as exc:
        _problems(exc)
    typer.echo(format_means(summary))
    if summary["missing_predictions"]:
        typer.echo(
            f"note: {len(summary['missing_predictions'])} reference case(s) have no "
            "prediction and were not evaluated"
        )


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
    pred: Annotated[Path, typer.Argument(help="Cross-validation predictions (internal labels).")],
    gt: Annotated[Path, typer.Argument(help="Reference labels (e.g. the dataset's labelsTr).")],
    dataset: Annotated[str, typer.Option("-d", "--dataset", help="Dataset id, name or folder.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the decision.")
    ] = Path("postprocessing.json"),
    num_processes: ProcessesOption = 1,
    raw: RawOption = DEFAULT_RAW,
) -> None:
    """Try component removal and small-ET rules; keep those that improve the CV score."""
    from tumorseg.postprocessing.determine import determine_postprocessing
    from tumorseg.workflows.find_best import format_steps

    folder = _dataset(dataset, raw.expanduser().resolve())
    try:
        decision = determine_postprocessing(
            pred, gt, folder / "dataset.json", output=output, num_processes=num_processes
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
        ConventionChoice, typer.Option("--convention", help="Label convention of the files.")
    ] = ConventionChoice.INTERNAL,
    file_ending: Annotated[
        str, typer.Option("--file-ending", help="Ending of the label files.")
    ] = ".nii.gz",
) -> None:
    """Apply a post-processing decision to every label file of a folder."""
    from tumorseg.postprocessing.apply import postprocess_folder, read_decision
    from tumorseg.postprocessing.rules import preset_decision

    if (decision is None) == (preset is None):
        raise TumorsegError("give exactly one of --decision FILE and --preset NAME")
    steps = (
        read_decision(decision)
        if decision is not None
        else preset_decision(Preset(preset).value, et_threshold=et_threshold)
    )
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
