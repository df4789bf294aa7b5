"""CLI commands: synth, synth-montage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tumorseg.cli.common import DEFAULT_RAW, ProcessesOption, RawOption
from tumorseg.data.synthetic.difficulty import DEFAULT_DIFFICULTY, Difficulty


def synth(
    dataset_id: Annotated[
        int, typer.Option("--id", help="Dataset id NNN (folder DatasetNNN_Name).")
    ],
    cases: Annotated[int, typer.Option("--cases", min=1, help="Number of tumour cases.")] = 20,
    name: Annotated[
        str, typer.Option("--name", help="Dataset name (letters, digits, '-', '_').")
    ] = "Synth",
    spacing: Annotated[
        float, typer.Option("--spacing", min=0.5, max=8.0, help="Isotropic voxel size in mm.")
    ] = 2.0,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed gives identical data.")
    ] = 0,
    longitudinal: Annotated[
        bool,
        typer.Option(
            "--longitudinal",
            help="Add a post-operative follow-up per case and a recurrence target (recurrenceTr).",
        ),
    ] = False,
    healthy: Annotated[
        int, typer.Option("--healthy", min=0, help="Number of healthy subjects (healthyTr).")
    ] = 0,
    difficulty: Annotated[
        Difficulty,
        typer.Option(
            "--difficulty",
            help=(
                "realistic: fading infiltrative edema, multifocal tumours, cysts, haemorrhage, "
                "look-alike lesions and vessels, scanner variability, thick-slice FLAIR; "
                "basic: the first, cleaner generator."
            ),
        ),
    ] = DEFAULT_DIFFICULTY,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a dataset with the same id.")
    ] = False,
    num_processes: ProcessesOption = 1,
    montage: Annotated[
        Path | None, typer.Option("--montage", help="Also write a PNG montage of 4 cases here.")
    ] = None,
    raw: RawOption = DEFAULT_RAW,
) -> None:
    """Generate a synthetic BraTS-like glioma dataset (MNI152 anatomy, grown tumours)."""
    from tumorseg.data.synthetic.generate import generate_dataset

    folder = generate_dataset(
        raw.expanduser().resolve(),
        dataset_id,
        cases,
        name=name,
        spacing=spacing,
        seed=seed,
        longitudinal=longitudinal,
        n_healthy=healthy,
        difficulty=difficulty,
        num_processes=num_processes,
        force=force,
        log=typer.echo,
    )
    typer.echo(f"wrote {folder}")
    if montage is not None:
        from tumorseg.data.synthetic.montage import render_montage

        typer.echo(f"wrote {render_montage(folder, montage)}")


def synth_montage(
    dataset: Annotated[str, typer.Argument(help="Dataset id, DatasetNNN_Name or folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write.")] = Path(
        "montage.png"
    ),
    cases: Annotated[int, typer.Option("--cases", min=1, help="Number of cases (rows).")] = 4,
    dpi: Annotated[
        int, typer.Option("--dpi", min=30, max=600, help="Resolution (110: ~1200 px wide).")
    ] = 110,
    case: Annotated[
        list[str] | None,
        typer.Option("--case", help="Show this case (repeat for several; overrides --cases)."),
    ] = None,
    raw: RawOption = DEFAULT_RAW,
) -> None:
    """Render a PNG montage of a raw dataset: channels and labels at mid-tumour slices."""
    from tumorseg.data.synthetic.montage import render_montage
    from tumorseg.paths import find_dataset

    folder = find_dataset(dataset, raw.expanduser().resolve())
    typer.echo(f"wrote {render_montage(folder, output, cases, dpi, case)}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("synth")(synth)
    app.command("synth-montage")(synth_montage)
