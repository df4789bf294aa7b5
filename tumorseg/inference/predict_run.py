"""``tumorseg predict`` as a function: a trained run's folds, the ``Predictor``, the run's
post-processing, the input cases, then ``predict_folder`` (see its module for the channel policy,
resuming and uncertainty maps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tumorseg import __version__
from tumorseg.constants import DEFAULT_PLANS_NAME, MissingModality
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.labels import LabelManager
from tumorseg.inference.input_layout import find_input_cases
from tumorseg.inference.predict_folder import ChannelPolicy, FolderReport, predict_folder
from tumorseg.inference.uncertainty import require_spread


def predict_with_run(
    input_folder: Path,
    output: Path,
    results_root: Path,
    dataset: str,
    configuration: str,
    *,
    trainer: str = "default",
    plans: str = DEFAULT_PLANS_NAME,
    run: str | None = None,
    folds: str | Sequence[str] | None = None,
    checkpoint: str = "final",
    device: str = "cpu",
    tta: bool = True,
    step_size: float = 0.5,
    tile_batch_size: int = 0,
    optimize: bool = True,
    backend: str = "torch",
    precision: str = "auto",
    save_probabilities: bool = False,
    postprocessing: Path | dict[str, Any] | None = None,
    run_postprocessing: bool = True,
    echo: Callable[[str], None] | None = None,
    progress: bool = True,
    missing_modality: MissingModality = MissingModality.ERROR,
    uncertainty: bool = False,
) -> FolderReport:
    """Predict every case of ``input_folder`` into ``output`` with the folds of a trained run.

    The run is found under ``results_root`` by dataset, configuration, trainer and plans (``run``
    names the folder when runs with different settings exist); ``folds`` None: the run's
    default folds (``runs.locate.choose_folds``: the 5-fold ensemble when all five are
    trained). Post-processing: ``postprocessing`` (a decision file or dict) when given, else,
    with ``run_postprocessing``, the run's own (``postprocessing.run_decision``: its
    cross-validation decision, else its trainer's paper preset, else none), else none. Which
    folds and which post-processing are used is passed to ``echo`` before predicting, returned
    in the report and recorded in the output's ``labels.json``. Cases need only the channels
    the run reads; ``missing_modality`` says what happens when one lacks such a channel (see
    the module docstring). Labels are written in the dataset's source convention, with the
    folder's ``labels.json`` and ``prediction.json`` (run, folds, TTA, post-processing, and
    each case's channels); cases already done are skipped. ``tile_batch_size`` 0,
    ``optimize``, ``backend`` and ``precision``: as in ``Predictor`` (the defaults are the
    command line's: automatic tile batch, bf16 where the CPU has it natively and it measures
    faster). ``uncertainty``: as in ``predict_folder``, checked before any network is loaded.
    """
    from tumorseg.inference.predictor import Predictor
    from tumorseg.postprocessing.run_decision import choose_postprocessing
    from tumorseg.runs.locate import find_folds
    from tumorseg.runs.trained import run_channels

    choice = find_folds(
        results_root, dataset, configuration, trainer, plans, run, folds, checkpoint
    )
    fold_paths = choice.folders
    policy = ChannelPolicy(run_channels(fold_paths), MissingModality(missing_modality))
    if uncertainty and len(fold_paths) == 1 and not tta:
        require_spread(1)
    predictor = Predictor(
        choice.folders,
        checkpoint=checkpoint,
        device=device,
        tta=tta,
        step_size=step_size,
        tile_batch_size=tile_batch_size,
        optimize=optimize,
        backend=backend,
        precision=precision,
    )
    hook = getattr(predictor.trainer, "postprocessing_preset", None)
    chosen = choose_postprocessing(
        choice.folders[0].parent,
        LabelManager.from_dataset_json(predictor.dataset_json),
        disabled=not run_postprocessing and postprocessing is None,
        given=postprocessing,
        preset=hook() if hook is not None else None,
        trainer=predictor.trainer.name,
    )
    if echo is not None:
        echo(f"folds: {choice.description}")
        echo(f"post-processing: {chosen.reason}")
    cases = find_input_cases(input_folder, predictor.dataset_json)
    settings = prediction_settings(
        fold_paths,
        checkpoint,
        tta,
        step_size,
        chosen.decision,
        policy,
        predictor.dataset_json,
        uncertainty,
    )
    report = predict_folder(
        predictor,
        cases,
        output,
        save_probabilities=save_probabilities,
        postprocessing=chosen.decision,
        record=chosen.record(),
        progress=progress,
        channels=policy,
        settings=settings,
        uncertainty=uncertainty,
    )
    report.folds, report.postprocessing = choice.description, chosen.reason
    return report


def prediction_settings(
    fold_paths: Sequence[Path],
    checkpoint: str,
    tta: bool,
    step_size: float,
    postprocessing: dict[str, Any] | None,
    policy: ChannelPolicy,
    dataset_json: DatasetJson,
    uncertainty: bool = False,
) -> dict[str, Any]:
    """What ``prediction.json`` records about a prediction (the same for each of its cases)."""
    from tumorseg.runs.train_config import read_train_config

    run_folder = Path(fold_paths[0]).parent.resolve()
    config = read_train_config(Path(fold_paths[0]))
    needed = policy.needed if policy.needed is not None else range(dataset_json.num_channels)
    return {
        "run": str(run_folder),
        "dataset": run_folder.parent.name,
        "trainer": config.get("trainer"),
        "trainer_settings": config.get("trainer_settings", {}),
        "plans": config.get("plans_name"),
        "configuration": config.get("configuration"),
        "folds": [Path(p).name.removeprefix("fold_") for p in fold_paths],
        "checkpoint": checkpoint,
        "tta": tta,
        "step_size": step_size,
        "postprocessing": postprocessing,
        "channels": [dataset_json.channel_names[c] for c in needed],
        "missing_modality": policy.missing_modality.value,
        "uncertainty": uncertainty,
        "tumorseg_version": __version__,
    }
