"""``tumorseg demo``: the whole pipeline end to end on the built-in synthetic dataset.

synthesise -> hold out test cases -> plan -> train on a wall-clock budget -> predict the held-out
cases -> evaluate -> ``tumorseg report`` on the predictions (one HTML page: metrics, training
curves, overlays), with the demo's own steps and timings added.

Each step calls the API function behind a public command and prints that command first, with
the same values, so the demo doubles as a worked example of the command line.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from shlex import quote
from typing import Any

from tumorseg.constants import DEFAULT_PLANS_NAME
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import read_image
from tumorseg.data.labels import FileConvention, LabelManager
from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots, dataset_folder_name
from tumorseg.reporting.document import Section, Table
from tumorseg.reporting.report import write_report

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
    # 2d: at a CPU budget of 20 CPU-minutes on the realistic synthetic data the 2d default trainer
    # reached held-out Dice WT 0.905 / TC 0.834 / ET 0.624 against 0.792 / 0.756 / 0.413 for
    # 3d_fullres (12 cases, BENCHMARKS.md "The 20-minute comparison"): ~10x the steps.
    configuration: str = "2d"
    trainer: str = "default"
    time_budget: str = "10m"  # training wall-clock budget (the LR schedule is fitted into it)
    seed: int = 0
    num_workers: int = 2  # background data-loading / preprocessing processes
    # Mirroring TTA, on as in `tumorseg predict`: 4 passes per slice in 2d (8 per patch in 3d).
    tta: bool = True


@dataclass
class StepLog:
    """Commands run and their wall times, for the report."""

    steps: list[tuple[str, float]] = field(default_factory=list)


def _step(
    command: str, action: Callable[[], Any], log: StepLog, echo: Callable[[str], None]
) -> Any:
    """Print ``$ tumorseg COMMAND``, run ``action`` (that command's API call) and time it."""
    command = "tumorseg " + command
    echo("$ " + command)
    start = time.perf_counter()
    result = action()
    log.steps.append((command, time.perf_counter() - start))
    return result


def hold_out_cases(dataset: Path, n: int) -> list[str]:
    """Move the last ``n`` training cases to ``imagesTs``/``labelsTs``.

    The held-out labels are written in the dataset's source label convention (BraTS 2021:
    0/1/2/4), like ground truth a user would have, through the one label-map writer, so
    ``labelsTs/labels.json`` records it and evaluation reads the references right.
    """
    from tumorseg.inference.export import prepare_folder, write_labels

    dj = DatasetJson.read(dataset)
    labels = LabelManager.from_dataset_json(dj)
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
    prepare_folder(dataset / "labelsTs", labels)
    for case in held:
        for c in range(dj.num_channels):
            name = f"{case}_{c:04d}{dj.file_ending}"
            shutil.move(dataset / "imagesTr" / name, dataset / "imagesTs" / name)
        source = dataset / "labelsTr" / f"{case}{dj.file_ending}"
        label, geometry = read_image(source)
        values = labels.from_file(label, FileConvention.INTERNAL, source)
        target = dataset / "labelsTs" / f"{case}{dj.file_ending}"
        write_labels(target, values, geometry, labels, labels.export_convention)
        source.unlink()
    DatasetJson(**{**dj.__dict__, "num_training": len(cases) - n}).write(dataset / "dataset.json")
    return held


def _steps_section(log: StepLog, total_seconds: float) -> Section:
    """The commands the demo ran, with their wall times."""
    rows = tuple((f"`{command}`", f"{seconds:.1f}") for command, seconds in log.steps)
    total = ("total (before this report)", f"{total_seconds:.1f}")
    table = Table(("command", "wall time (s)"), (*rows, total), row_names=False, numeric=False)
    return Section("Steps", [table], anchor="steps")


def _about(settings: DemoSettings, dataset: Path, held_out: list[str]) -> list[str]:
    return [
        f"Dataset `{dataset.name}`: the built-in synthetic data (MNI152 anatomy, "
        f"reaction-diffusion gliomas), {settings.cases} cases at {settings.spacing} mm, "
        f"{len(held_out)} held out for testing and never seen in training: "
        f"{', '.join(held_out)}.",
        f"Trainer `{settings.trainer}`, configuration `{settings.configuration}`, training "
        f"budget {settings.time_budget}, TTA {'on' if settings.tta else 'off'}, seed "
        f"{settings.seed}.",
    ]


def run_demo(settings: DemoSettings, echo: Callable[[str], None] = print) -> Path:
    """Run the demo; return the path of the report page (``report/report.html``)."""
    from tumorseg.data.synthetic.generate import generate_dataset
    from tumorseg.evaluation.folders import evaluate_predictions
    from tumorseg.evaluation.summary import format_means
    from tumorseg.inference.precision import Precision, precision_line
    from tumorseg.inference.predict_run import predict_with_run
    from tumorseg.training.config import parse_duration
    from tumorseg.training.loop import train
    from tumorseg.training.run import prepare_run
    from tumorseg.workflows.plan_and_preprocess import plan_dataset

    workdir = settings.workdir.resolve()
    roots = Roots.under(workdir)
    raw = f"--raw {quote(str(roots.raw))}"
    pre = f"--preprocessed {quote(str(roots.preprocessed))}"
    res = f"--results {quote(str(roots.results))}"
    dataset = roots.raw / dataset_folder_name(DEMO_DATASET_ID, DEMO_DATASET_NAME)
    if workdir.exists() and any(workdir.iterdir()):
        raise TumorsegError(
            f"{workdir}: demo folder is not empty; remove it or choose another --workdir"
        )
    log = StepLog()
    did, config, trainer = DEMO_DATASET_ID, settings.configuration, settings.trainer
    processes = max(1, settings.num_workers)  # synth and plan need at least one process
    start = time.perf_counter()
    _step(
        f"synth --id {did} --cases {settings.cases} --spacing {settings.spacing} "
        f"--seed {settings.seed} -np {processes} {raw}",
        lambda: generate_dataset(
            roots.raw,
            did,
            settings.cases,
            name=DEMO_DATASET_NAME,
            spacing=settings.spacing,
            seed=settings.seed,
            num_processes=processes,
            log=echo,
        ),
        log,
        echo,
    )
    held = hold_out_cases(dataset, settings.held_out)
    echo(f"held out for testing: {', '.join(held)}")
    _step(
        f"plan {did} -c {config} --device cpu -np {processes} {raw} {pre}",
        lambda: plan_dataset(
            dataset,
            roots.preprocessed,
            configurations=[config],
            device="cpu",
            num_processes=processes,
            log=echo,
        ),
        log,
        echo,
    )
    loop_values: dict[str, object] = {
        "device": "cpu",
        "num_workers": settings.num_workers,
        "time_budget_s": parse_duration(settings.time_budget),
        "seed": settings.seed,
    }
    # As `tumorseg train` does by default: bf16 autocast where this CPU has native bf16.
    precision, precision_said = precision_line(Precision.AUTO, "cpu")
    echo(precision_said)
    if precision is not Precision.FP32:
        loop_values["precision"] = precision.value
    _step(
        f"train {did} {config} all --trainer {trainer} --time-budget {settings.time_budget} "
        f"--seed {settings.seed} -np {settings.num_workers} {raw} {pre} {res}",
        lambda: train(
            prepare_run(
                roots, str(did), config, "all", trainer, DEFAULT_PLANS_NAME, {}, loop_values
            )
        ),
        log,
        echo,
    )
    images, references = dataset / "imagesTs", dataset / "labelsTs"
    predictions = workdir / "predictions"
    predicted = _step(
        f"predict -i {quote(str(images))} -o {quote(str(predictions))} -d {did} -c {config} "
        f"-tr {trainer} -f all --quiet{'' if settings.tta else ' --no-tta'} {res}",
        lambda: predict_with_run(
            images,
            predictions,
            roots.results,
            str(did),
            config,
            trainer=trainer,
            folds=["all"],
            tta=settings.tta,
            progress=False,
        ),
        log,
        echo,
    )
    if predicted.failed:
        raise TumorsegError(f"demo: prediction failed for {', '.join(predicted.failed)}")
    summary_path = predictions / "summary.json"
    summary = _step(
        f"evaluate {quote(str(predictions))} {quote(str(references))} -d {did} "
        f"-o {quote(str(summary_path))} {raw}",
        lambda: evaluate_predictions(
            predictions, references, dataset_folder=dataset, output=summary_path
        ),
        log,
        echo,
    )
    echo(format_means(summary))
    report = _step(
        f"report {quote(str(predictions))} --reference {quote(str(references))} -d {did} "
        f"-o {quote(str(workdir / 'report' / 'report.html'))} {raw}",
        lambda: write_report(
            predictions,
            workdir / "report" / "report.html",
            reference=references,
            dataset_folder=dataset,
            title="tumorseg demo report",
            intro=_about(settings, dataset, held),
            extra_sections=[_steps_section(log, time.perf_counter() - start)],
        ),
        log,
        echo,
    )
    echo(f"report: {report}")
    return report
