"""``tumorseg demo``: the whole pipeline end to end on the built-in synthetic dataset.

synthesise -> hold out test cases -> plan -> train on a wall-clock budget -> predict the held-out
cases -> evaluate -> write a Markdown report with the metrics table and overlay PNGs.

Every step is the public command a user would type, run in-process and printed first, so the
demo doubles as a worked example of the command line.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tumorseg.constants import LabelConvention
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import read_image, write_image
from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots, dataset_folder_name
from tumorseg.reporting.report import write_demo_report

DEMO_DATASET_ID = 500
DEMO_DATASET_NAME = "Synth"


@dataclass(frozen=True)
class DemoSettings:
    """Settings of the demo run; the defaults fit 15 minutes on a 2-core CPU."""

    workdir: (
        Path  # everything is written here: raw/, preprocessed/, results/, predictions/, report/
    )
    cases: int = 24  # synthetic cases generated (training + held-out)
    held_out: int = 4  # cases kept out of training and used as the test set
    spacing: float = 2.0  # mm; 2 mm keeps volumes ~80x90x75 so CPU training is feasible
    configuration: str = "3d_fullres"
    trainer: str = "default"
    time_budget: str = "10m"  # training wall-clock budget (the LR schedule is fitted into it)
    seed: int = 0
    num_workers: int = 2  # background data-loading / preprocessing processes
    # Mirroring TTA multiplies 3D prediction time by 8: off by default to stay within 15 minutes
    # on a 2-core CPU (`tumorseg predict` itself has it on by default).
    tta: bool = False


@dataclass
class StepLog:
    """Commands run and their wall times, for the report."""

    steps: list[tuple[str, float]] = field(default_factory=list)


def _run(
    cli: Callable[[list[str]], None], argv: list[str], log: StepLog, echo: Callable[[str], None]
) -> None:
    echo("$ tumorseg " + " ".join(argv))
    start = time.perf_counter()
    cli(argv)
    log.steps.append(("tumorseg " + " ".join(argv), time.perf_counter() - start))


def hold_out_cases(dataset: Path, n: int) -> list[str]:
    """Move the last ``n`` training cases to ``imagesTs``/``labelsTs``.

    The held-out labels are written in the dataset's source label convention (BraTS 2021:
    0/1/2/4), like ground truth a user would have, so evaluation compares predictions and
    references in the same convention.
    """
    dj = DatasetJson.read(dataset)
    cases = sorted(
        p.name[: -len("_0000" + dj.file_ending)]
        for p in (dataset / "imagesTr").glob(f"*_0000{dj.file_ending}")
    )
    if n < 1 or n >= len(cases) - 1:
        raise TumorsegError(
            f"cannot hold out {n} of {len(cases)} cases; "
            f"use --held-out between 1 and {len(cases) - 2}"
        )
    held = cases[-n:]
    (dataset / "imagesTs").mkdir(exist_ok=True)
    (dataset / "labelsTs").mkdir(exist_ok=True)
    to_source = (dj.label_convention or LabelConvention.BRATS2023).to_source
    for case in held:
        for c in range(dj.num_channels):
            name = f"{case}_{c:04d}{dj.file_ending}"
            shutil.move(dataset / "imagesTr" / name, dataset / "imagesTs" / name)
        label, geometry = read_image(dataset / "labelsTr" / f"{case}{dj.file_ending}")
        source = label.copy()
        for internal, value in to_source.items():
            source[label == internal] = value
        write_image(dataset / "labelsTs" / f"{case}{dj.file_ending}", source, geometry)
        (dataset / "labelsTr" / f"{case}{dj.file_ending}").unlink()
    DatasetJson(**{**dj.__dict__, "num_training": len(cases) - n}).write(dataset / "dataset.json")
    return held


def run_demo(settings: DemoSettings, echo: Callable[[str], None] = print) -> Path:
    """Run the demo; return the path of the Markdown report."""
    from tumorseg.cli import app

    def cli(argv: list[str]) -> None:
        app(argv, standalone_mode=False)

    workdir = settings.workdir.resolve()
    roots = Roots.under(workdir)
    root_args = ["--raw", str(roots.raw)]
    pre_args = ["--preprocessed", str(roots.preprocessed)]
    res_args = ["--results", str(roots.results)]
    dataset = roots.raw / dataset_folder_name(DEMO_DATASET_ID, DEMO_DATASET_NAME)
    if workdir.exists() and any(workdir.iterdir()):
        raise TumorsegError(
            f"{workdir}: demo folder is not empty; remove it or choose another --workdir"
        )
    log = StepLog()
    did = str(DEMO_DATASET_ID)
    processes = max(1, settings.num_workers)  # synth and plan need at least one process
    start = time.perf_counter()
    _run(
        cli,
        [
            "synth",
            "--id",
            did,
            "--cases",
            str(settings.cases),
            "--spacing",
            str(settings.spacing),
            "--seed",
            str(settings.seed),
            "--difficulty",
            "realistic",
            "-np",
            str(processes),
            *root_args,
        ],
        log,
        echo,
    )
    held = hold_out_cases(dataset, settings.held_out)
    echo(f"held out for testing: {', '.join(held)}")
    _run(
        cli,
        [
            "plan",
            did,
            "-c",
            settings.configuration,
            "--device",
            "cpu",
            "-np",
            str(processes),
            *root_args,
            *pre_args,
        ],
        log,
        echo,
    )
    _run(
        cli,
        [
            "train",
            did,
            settings.configuration,
            "all",
            "--trainer",
            settings.trainer,
            "--time-budget",
            settings.time_budget,
            "--seed",
            str(settings.seed),
            "-np",
            str(settings.num_workers),
            *root_args,
            *pre_args,
            *res_args,
        ],
        log,
        echo,
    )
    predictions = workdir / "predictions"
    _run(
        cli,
        [
            "predict",
            "-i",
            str(dataset / "imagesTs"),
            "-o",
            str(predictions),
            "-d",
            did,
            "-c",
            settings.configuration,
            "-t",
            settings.trainer,
            "-f",
            "all",
            "--quiet",
            *([] if settings.tta else ["--no-tta"]),
            *res_args,
        ],
        log,
        echo,
    )
    _run(
        cli,
        [
            "evaluate",
            str(predictions),
            str(dataset / "labelsTs"),
            "-d",
            did,
            "-o",
            str(predictions / "summary.json"),
            *root_args,
        ],
        log,
        echo,
    )
    total = time.perf_counter() - start
    summary = json.loads((predictions / "summary.json").read_text())
    report = write_demo_report(
        workdir / "report",
        summary=summary,
        dataset=dataset,
        predictions=predictions,
        held_out=held,
        run_folder=roots.results / dataset.name,
        steps=log.steps,
        total_seconds=total,
        settings=settings,
    )
    echo(f"report: {report}")
    return report
