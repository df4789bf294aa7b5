"""The report's "Model" section: which run, folds, TTA and post-processing produced the page.

For predictions it reads the settings tables of ``prediction.json`` (one table per distinct
``predict`` call, with the cases each made); for a run or fold the ``train_config.json`` of its
folds, whose final validation predicted with the checkpoint ``final``, the run's
``validation_tta`` and no post-processing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tumorseg.errors import TumorsegError
from tumorseg.postprocessing.rules import describe_steps
from tumorseg.reporting.document import Note, Paragraph, Section, Table
from tumorseg.reporting.sources import ReportInputs


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def changed_settings(trainer: str, values: dict[str, Any]) -> str:
    """The trainer settings that differ from the trainer's defaults, as ``--set`` would say
    them; ``"defaults"`` when none do."""
    from tumorseg.trainers import trainer_class

    try:
        defaults = json.loads(
            json.dumps(dataclasses.asdict(trainer_class(trainer).settings_class()))
        )
    except TumorsegError:
        return ", ".join(f"{k}={_value(v)}" for k, v in sorted(values.items())) or "defaults"
    changed = {k: v for k, v in sorted(values.items()) if defaults.get(k, object()) != v}
    return ", ".join(f"{k}={_value(v)}" for k, v in changed.items()) or "defaults"


def _run_line(run: Path) -> str:
    """``locate.describe_runs``'s one-line description of a run folder, or its path."""
    from tumorseg.runs.locate import describe_runs

    if not run.is_dir():
        return f"`{run}` (not on this machine)"
    # "NAME (budget ...; folds ...; trained ...); <remark on find-best's ranking>": the folder
    # is named by its path, and with one run listed the ranking remark says nothing.
    details = describe_runs(run.parent, [run]).rsplit("; ", 1)[0].removeprefix(run.name).strip()
    return f"`{run}` {details}"


def _postprocessing(decision: dict[str, Any] | None) -> str:
    if not decision:
        return "none"
    return describe_steps(decision.get("steps", []))


def _trainer(name: str, settings: dict[str, Any] | None) -> str:
    return f"{name} (settings: {changed_settings(name, settings or {})})"


def _prediction_rows(table: dict[str, Any]) -> list[tuple[str, str]]:
    run = Path(table.get("run") or "")
    return [
        ("run", _run_line(run)),
        ("trainer", _trainer(str(table.get("trainer")), table.get("trainer_settings"))),
        ("plans, configuration", f"{table.get('plans')}, {table.get('configuration')}"),
        ("folds (ensembled)", _value(table.get("folds", []))),
        ("checkpoint", _value(table.get("checkpoint"))),
        ("test-time augmentation", "mirroring" if table.get("tta") else "none"),
        ("sliding-window step", _value(table.get("step_size"))),
        ("post-processing", _postprocessing(table.get("postprocessing"))),
        ("channels read", _value(table.get("channels", []))),
        (
            "missing channel",
            {"zero": "zero-filled (no signal)", "error": "case refused"}.get(
                str(table.get("missing_modality")), _value(table.get("missing_modality"))
            ),
        ),
        ("tumorseg", _value(table.get("tumorseg_version"))),
    ]


def _fold_channels(folder: Path, inputs: ReportInputs) -> str:
    from tumorseg.runs.trained import network_channels, trained_trainer

    try:
        channels = network_channels(trained_trainer(folder)[0])
    except (TumorsegError, OSError, KeyError, ValueError):
        return "unknown"
    return ", ".join(inputs.channel_names[c] for c in channels)


def _run_rows(inputs: ReportInputs) -> list[tuple[str, str]]:
    assert inputs.run_folder is not None
    configs = inputs.settings
    first = next(iter(configs.values()))
    loop = first.get("loop", {})
    trainer = str(first.get("trainer"))
    return [
        ("run", _run_line(inputs.run_folder)),
        ("trainer", _trainer(trainer, first.get("trainer_settings"))),
        ("plans, configuration", f"{first.get('plans_name')}, {first.get('configuration')}"),
        ("folds", ", ".join(t.removeprefix("fold ") for t in configs)),
        ("validation predictions", "each fold's held-out cases, checkpoint final, one fold each"),
        ("test-time augmentation", "mirroring" if loop.get("validation_tta") else "none"),
        ("post-processing", "none (fold validation is scored before post-processing)"),
        ("channels read", _fold_channels(inputs.folds[0][1], inputs)),
        ("tumorseg", _value(first.get("tumorseg_version"))),
    ]


def model_section(inputs: ReportInputs) -> Section:
    """The section (see the module docstring)."""
    section = Section("Model", anchor="model")
    if inputs.kind != "predictions":
        section.blocks.append(Table(("setting", "value"), tuple(_run_rows(inputs)), numeric=False))
        return section
    if not inputs.settings:
        section.blocks.append(
            Note("unknown: the folder has no prediction.json (see the notes above)")
        )
        return section
    record_cases = inputs.sets[0].facts
    for key, table in inputs.settings.items():
        cases = sorted(c for c, entry in record_cases.items() if entry.get("settings") == key)
        if len(inputs.settings) > 1:
            section.blocks.append(
                Paragraph(f"{len(cases)} case(s) predicted with: {', '.join(cases)}")
            )
        section.blocks.append(
            Table(("setting", "value"), tuple(_prediction_rows(table)), numeric=False)
        )
    unrecorded = [c for c in inputs.sets[0].cases if c not in record_cases]
    if unrecorded:
        section.blocks.append(
            Note(f"not in prediction.json (written otherwise): {', '.join(unrecorded)}")
        )
    return section
