"""``tumorseg report``: one page on a run or a folder of predictions, for a clinician.

``write_report(SOURCE, OUTPUT)`` writes, in this order:

1. **Notes**: what the page could not show and how to supply it (no reference, no curves,
   missing images ...), so nothing missing passes unnoticed;
2. **Model**: the run, trainer and its settings, plans, configuration, folds, checkpoint, TTA,
   post-processing, the channels read and the missing-modality policy (from ``prediction.json``
   for predictions, from each fold's ``train_config.json`` for a run);
3. **Metrics**: per region the mean, sd and median of Dice, HD95, sensitivity and specificity
   (from ``summary.json``, or scored with the evaluation API against ``--reference``), for a run
   per fold and pooled over the folds, and a per-case table;
4. **Training curves** of each fold, re-plotted from its ``log.txt`` (``curves``);
5. **Cases**: per case the reference and prediction outlined on every modality at the tumour's
   centre slices in three planes, and its uncertainty maps when present (``cases``).

SOURCE is a run folder, a fold folder or a predictions folder (``sources``). The page is HTML
with every image inline (base64 PNG), one file to send or archive; ``fmt="md"`` writes Markdown
with the images in ``<stem>_files/`` beside it.

Uncertainty maps (for ``tumorseg predict --uncertainty``): a predictions folder may hold, per
case and output region, a float32 map in the input image's geometry at
``uncertainty/CASE_<REGION><file_ending>`` (``tumorseg.inference.export.uncertainty_path``;
``REGION`` is ``WT``, ``TC``, ``ET`` for BraTS regions, else the dataset's region names, as
``summary.json`` names them), higher meaning less certain, 0 where the models agree. Every map
found gets a heat-map grid under its case; nothing else is required of it. ``require_uncertainty``
turns "no maps" into a one-line error (``check_uncertainty``).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from pathlib import Path

from tumorseg import __version__
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.inference.export import UNCERTAINTY_FOLDER
from tumorseg.reporting.cases import case_section, uncertainty_files
from tumorseg.reporting.curves import fold_curves
from tumorseg.reporting.document import Legend, Note, Paragraph, Report, Section
from tumorseg.reporting.html import render_html
from tumorseg.reporting.markdown import render_markdown
from tumorseg.reporting.metrics import mean_dice, per_case_table, pooled_summary, summary_table
from tumorseg.reporting.model import model_section
from tumorseg.reporting.overlays import label_colours
from tumorseg.reporting.scoring import attach_scores
from tumorseg.reporting.sources import (
    PredictionSet,
    ReportInputs,
    detect_kind,
    gather_predictions,
    gather_run,
)
from tumorseg.utils.atomic import write_text

#: Cases shown with images by default: a page of this many stays a few MB.
DEFAULT_MAX_CASES = 24
FORMATS = ("html", "md")


def gather(
    source: Path,
    *,
    reference: Path | None = None,
    images: Path | None = None,
    dataset_folder: Path | None = None,
    raw_root: Path | None = None,
) -> ReportInputs:
    """Find what a report on ``source`` shows and score it (see ``sources`` and ``scoring``)."""
    source = Path(source).expanduser().resolve()
    kind = detect_kind(source)
    if kind == "predictions":
        inputs = gather_predictions(source, dataset_folder, images)
    else:
        inputs = gather_run(source, kind, dataset_folder, raw_root, images)
    attach_scores(inputs, Path(reference).expanduser().resolve() if reference else None)
    return inputs


def check_uncertainty(inputs: ReportInputs) -> None:
    """One-line error unless some case has an uncertainty map (``require_uncertainty``)."""
    for prediction_set in inputs.sets:
        if any(uncertainty_files(prediction_set.folder, c, inputs) for c in prediction_set.cases):
            return
    folder = inputs.sets[0].folder if inputs.sets else inputs.source
    has_probabilities = any(folder.glob("*.npz"))
    detail = (
        "it holds probabilities (CASE.npz), which are the fold average and carry no spread"
        if has_probabilities
        else "it holds no probabilities (CASE.npz) either"
    )
    raise bad_file(
        folder / UNCERTAINTY_FOLDER,
        f"no uncertainty maps (CASE_<REGION>{inputs.file_ending}); {detail}",
        "predict again with --uncertainty to write them, or leave out --uncertainty",
    )


def _shown_cases(
    inputs: ReportInputs, max_cases: int
) -> tuple[list[tuple[PredictionSet, str]], str]:
    """The (set, case) pairs shown with images and a sentence on the choice."""
    pairs = [(s, c) for s in inputs.sets for c in s.cases]
    if len(pairs) <= max_cases:
        return pairs, ""
    scored = all(s.summary is not None for s in inputs.sets)
    if scored:

        def key(pair: tuple[PredictionSet, str]) -> float:
            value = mean_dice(pair[0].summary or {"cases": {}}, pair[1])
            return math.inf if math.isnan(value) else value

        chosen = sorted(pairs, key=key)[:max_cases]
        why = f"the {max_cases} with the lowest mean Dice, lowest first"
    else:
        chosen = pairs[:max_cases]
        why = f"the first {max_cases} by case id"
    return chosen, f"{_cases(len(pairs))}: shown with images are {why} (--max-cases to change)."


def _cases(n: int) -> str:
    return f"{n} case{'s' if n != 1 else ''}"


def _metrics_section(inputs: ReportInputs) -> Section:
    section = Section("Metrics", anchor="metrics")
    scored = [s for s in inputs.sets if s.summary is not None]
    for prediction_set in scored:
        assert prediction_set.summary is not None
        section.blocks.append(
            summary_table(
                prediction_set.summary,
                f"{prediction_set.title}: {_cases(len(prediction_set.summary['cases']))}, scored "
                f"in {prediction_set.scored}. sd: standard deviation over cases; HD95 of a "
                "region empty in exactly one of prediction and reference counts as "
                f"{prediction_set.summary['settings'].get('empty_hd95', 'the maximum')} mm.",
            )
        )
    if len(scored) > 1:
        pooled = pooled_summary([s.summary for s in scored if s.summary is not None])
        section.blocks.append(
            summary_table(pooled, f"All {_cases(len(pooled['cases']))} of the folds pooled.")
        )
    for prediction_set in scored:
        assert prediction_set.summary is not None
        caption = f"{prediction_set.title}: per case."
        section.blocks.append(per_case_table(prediction_set.summary, caption=caption))
    if not scored:
        section.blocks.append(Note("no scores: see the notes above"))
    return section


def _curves_section(inputs: ReportInputs) -> Section:
    section = Section("Training curves", anchor="curves")
    for title, folder in inputs.folds:
        section.blocks.append(fold_curves(folder, title))
    if not inputs.folds:
        section.blocks.append(
            Note("no training curves: the run that produced these predictions is unknown")
        )
    return section


def _case_sections(inputs: ReportInputs, max_cases: int) -> list[Section]:
    chosen, why = _shown_cases(inputs, max_cases)
    colours = label_colours(inputs.labels)
    intro = Section("Cases", anchor="cases")
    intro.blocks.append(
        Legend(
            tuple((name, colour) for name, colour in colours.values()),
            "Outlines of each label. Slices through the tumour's centre (of the reference "
            "when there is one), cropped to the brain, in the radiological convention: R is "
            "the patient's right, A anterior, S superior.",
        )
    )
    if why:
        intro.blocks.append(Paragraph(why))
    sections = [intro]
    for i, (prediction_set, case) in enumerate(chosen):
        sections.append(case_section(inputs, prediction_set, case, f"case-{i}"))
    return sections


def build_report(
    inputs: ReportInputs,
    *,
    title: str | None = None,
    intro: Sequence[str] = (),
    extra_sections: Sequence[Section] = (),
    max_cases: int = DEFAULT_MAX_CASES,
) -> Report:
    """The document (see the module docstring); ``extra_sections`` go after the metrics."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    kind = {"run": "run", "fold": "fold", "predictions": "predictions"}[inputs.kind]
    report = Report(
        title or f"tumorseg report: {inputs.source.name}",
        f"{kind} `{inputs.source}`; written {stamp} by tumorseg {__version__}",
    )
    notes = list(inputs.notes) + [n for s in inputs.sets for n in s.notes]
    if intro:
        report.sections.append(Section("About", [Paragraph(p) for p in intro], anchor="about"))
    if notes:
        report.sections.append(Section("Notes", [Note(n) for n in notes], anchor="notes"))
    report.sections.append(model_section(inputs))
    report.sections.append(_metrics_section(inputs))
    report.sections += list(extra_sections)
    report.sections.append(_curves_section(inputs))
    report.sections += _case_sections(inputs, max_cases)
    return report


def write_report(
    source: Path,
    output: Path | None = None,
    *,
    fmt: str = "html",
    reference: Path | None = None,
    images: Path | None = None,
    dataset_folder: Path | None = None,
    raw_root: Path | None = None,
    max_cases: int = DEFAULT_MAX_CASES,
    require_uncertainty: bool = False,
    title: str | None = None,
    intro: Sequence[str] = (),
    extra_sections: Sequence[Section] = (),
) -> Path:
    """Write the report on ``source`` to ``output`` (default ``SOURCE/report.<fmt>``); return
    its path. Written atomically (Markdown images first, the page last)."""
    if fmt not in FORMATS:
        raise TumorsegError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if max_cases < 0:
        raise TumorsegError(f"--max-cases must be 0 or more, got {max_cases}")
    inputs = gather(
        source,
        reference=reference,
        images=images,
        dataset_folder=dataset_folder,
        raw_root=raw_root,
    )
    if require_uncertainty:
        check_uncertainty(inputs)
    output = Path(output) if output is not None else inputs.source / f"report.{fmt}"
    if output.is_dir():
        output = output / f"report.{fmt}"
    output.parent.mkdir(parents=True, exist_ok=True)
    report = build_report(
        inputs, title=title, intro=intro, extra_sections=extra_sections, max_cases=max_cases
    )
    text = render_html(report) if fmt == "html" else render_markdown(report, output)
    write_text(output, text)
    return output
