"""CLI commands: ``validate`` a raw dataset and ``convert`` public datasets into raw datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tumorseg.cli.common import (
    DEFAULT_PREPROCESSED,
    DEFAULT_RAW,
    DEFAULT_RESULTS,
    ProcessesOption,
    RawOption,
    roots,
)
from tumorseg.data.labels import LabelConvention

if TYPE_CHECKING:
    from tumorseg.data.convert import ConversionResult

convert_app = typer.Typer(
    help="Convert a public brain tumour dataset into a tumorseg raw dataset (nnU-Net v2 layout).",
    no_args_is_help=True,
)

SourceArgument = Annotated[
    Path, typer.Argument(help="Folder of the downloaded source dataset.", show_default=False)
]
IdOption = Annotated[
    int, typer.Option("--id", help="Dataset id of the new dataset (0-9999): DatasetNNN_NAME.")
]
NameOption = Annotated[
    str, typer.Option("--name", help="Name of the new dataset (letters, digits, '-', '_').")
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace an existing dataset with the same id (under any name) once the new one is "
        "complete.",
    ),
]


def _raw_root(raw: Path) -> Path:
    return roots(raw, DEFAULT_PREPROCESSED, DEFAULT_RESULTS).raw


def _print_result(result: ConversionResult) -> None:
    for line in result.lines():
        typer.echo(line)
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    typer.echo(
        f"check it with: tumorseg validate {result.folder.name} --raw {result.folder.parent}"
    )


def validate(
    dataset: Annotated[
        str, typer.Argument(help="Dataset id (501), full name (Dataset501_BraTS) or folder path.")
    ],
    raw: RawOption = DEFAULT_RAW,
    num_processes: ProcessesOption = 1,
    tolerance: Annotated[
        float,
        typer.Option(
            help="Geometry tolerance between files of a case: relative for spacing, mm for origin."
        ),
    ] = 1e-3,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Leave out the per-case lines.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report to this JSON file.")
    ] = None,
) -> None:
    """Check a raw dataset: channels, labels, geometry, NaNs, readability, counts.

    Prints per-case foreground sizes and a summary, then one line per problem
    (`path: problem; fix`). Exits with code 1 when anything is wrong.
    """
    from tumorseg.data.validate import validate_dataset
    from tumorseg.paths import find_dataset
    from tumorseg.utils.atomic import write_json

    folder = find_dataset(dataset, _raw_root(raw))
    report = validate_dataset(folder, num_processes=num_processes, tolerance=tolerance)
    for line in report.lines(per_case=not quiet):
        typer.echo(line)
    if json_out is not None:
        write_json(json_out, json.loads(json.dumps(report.to_dict(), default=str)))
    if not report.ok:
        raise typer.Exit(1)


@convert_app.command("brats")
def convert_brats_command(
    src: SourceArgument,
    dataset_id: IdOption,
    name: NameOption,
    raw: RawOption = DEFAULT_RAW,
    force: ForceOption = False,
    num_processes: ProcessesOption = 1,
    label_convention: Annotated[
        LabelConvention | None,
        typer.Option(
            "--label-convention",
            help="Source label convention; by default guessed from the file names "
            "(OT* -> brats2013, *_seg with t1ce -> brats2021, t1n/t2w/t2f -> brats2023).",
        ),
    ] = None,
) -> None:
    """Convert BraTS 2013/2015, 2017-2021 or 2023+ data (layout detected from file names).

    SRC is a folder of case folders or a single case folder. Channels are T1, T1c, T2, FLAIR
    restricted to the modalities present (all cases must carry the same ones); labels are mapped
    to internal labels (1 necrosis, 2 edema, 3 enhancing); cases without a label file go to
    imagesTs. Where a case folder holds brainmask*, every channel is set to 0 outside the mask
    (BraTS 2015 pre-processed images have a nonzero, z-scored background).
    """
    from tumorseg.data.convert import convert_brats

    _print_result(
        convert_brats(
            src,
            _raw_root(raw),
            dataset_id,
            name,
            force=force,
            label_convention=label_convention,
            num_processes=num_processes,
        )
    )


@convert_app.command("msd")
def convert_msd_command(
    src: SourceArgument,
    dataset_id: IdOption,
    name: NameOption,
    raw: RawOption = DEFAULT_RAW,
    force: ForceOption = False,
    num_processes: ProcessesOption = 1,
) -> None:
    """Convert MSD Task01_BrainTumour: split the 4D images into channels, map the labels."""
    from tumorseg.data.convert import convert_msd

    _print_result(
        convert_msd(src, _raw_root(raw), dataset_id, name, force=force, num_processes=num_processes)
    )


@convert_app.command("longitudinal")
def convert_longitudinal_command(
    src: SourceArgument,
    dataset_id: IdOption,
    name: NameOption,
    raw: RawOption = DEFAULT_RAW,
    force: ForceOption = False,
    num_processes: ProcessesOption = 1,
    spacing: Annotated[
        tuple[float, float, float] | None,
        typer.Option(
            "--spacing",
            metavar="Z Y X",
            help="Voxel spacing Z Y X in mm replacing the header spacing of every file, for "
            "sources with placeholder headers (TCIA Brain-Tumor-Progression: 1 1 1 in the header, "
            "really about 5-6.5 mm between slices and 0.9 mm in-plane, e.g. --spacing 6 0.9 0.9).",
        ),
    ] = None,
) -> None:
    """Convert longitudinal pairs: time point 2 tumour -> recurrenceTr target.

    SRC is a folder of case folders or a single case folder. Time point 1 images are the input
    channels and its tumour mask the label. Layouts:
    CASE/Pre_Scan_T1, Pre_Mask, Post_Mask (TCIA; its T1 is post-contrast and becomes T1c) or
    CASE/tp1/<modality files + mask>, CASE/tp2/<mask>. Masks are binarised; a time point 2 mask
    on another grid is resampled onto time point 1's grid (nearest neighbour); one that leaves no
    tumour voxel on that grid is an error.
    """
    from tumorseg.data.convert import convert_longitudinal

    _print_result(
        convert_longitudinal(
            src,
            _raw_root(raw),
            dataset_id,
            name,
            force=force,
            spacing=spacing,
            num_processes=num_processes,
        )
    )


def register(app: typer.Typer) -> None:
    """Add ``validate`` and the ``convert`` group to ``app``."""
    app.command("validate")(validate)
    app.add_typer(convert_app, name="convert")
