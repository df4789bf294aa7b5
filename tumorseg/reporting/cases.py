"""The page section of one case: its label maps outlined on every modality in three planes.

Slices go through the tumour's centre (of the reference when there is one, else of the
prediction; ``slices.tumour_centre``) and are cropped to the brain. Rows: per plane the
reference (when there is one) and the prediction; columns: the dataset's channels, a channel
the case lacks shown as absent. Uncertainty maps found for the case
(``uncertainty/CASE_<REGION><file_ending>``, see ``tumorseg.reporting.report``) get a second
grid: one column per region, heat over the FLAIR (else the first channel present).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.constants import Modality
from tumorseg.data.io import Geometry, read_image
from tumorseg.data.labels import default_convention
from tumorseg.errors import TumorsegError
from tumorseg.inference.export import uncertainty_path
from tumorseg.reporting.document import Block, Note, PanelGrid, PanelRow, Paragraph, Section
from tumorseg.reporting.metrics import case_scores
from tumorseg.reporting.overlays import (
    grey,
    heat,
    intensity_window,
    label_colours,
    outline,
    png_bytes,
)
from tumorseg.reporting.slices import (
    PLANE_SIDES,
    PLANES,
    PatientAxes,
    crop_box,
    crop_plane,
    display_zoom,
    plane_image,
    plane_spacing,
    slice_index,
    tumour_centre,
    zoom_to_display,
)
from tumorseg.reporting.sources import PredictionSet, ReportInputs


@dataclass
class CaseVolumes:
    """One case in patient axes ``(S, P, L)`` (``slices.PatientAxes``)."""

    axes: PatientAxes
    spacing: tuple[float, float, float]
    prediction: np.ndarray
    reference: np.ndarray | None
    images: list[np.ndarray | None]  # one per dataset channel
    uncertainty: dict[str, np.ndarray]


def _labels(path: Path, inputs: ReportInputs) -> tuple[np.ndarray, Geometry]:
    """A label map in the dataset's values, read in its folder's convention."""
    array, geometry = read_image(path)
    convention = default_convention(path.parent, inputs.labels, inputs.dataset_folder)
    return inputs.labels.from_file(array, convention, path), geometry


def uncertainty_files(folder: Path, case: str, inputs: ReportInputs) -> dict[str, Path]:
    """``{region: path}`` of the uncertainty maps of ``case`` in a predictions folder."""
    names: list[str] = []
    brats = inputs.labels.brats_regions()
    names += list(brats) if brats else []
    names += [name for name, _ in inputs.labels.foreground if name not in names]
    found = {}
    for name in names:
        path = uncertainty_path(folder, case, name, inputs.file_ending)
        if path.is_file():
            found[name] = path
    return found


def load_case(
    inputs: ReportInputs, prediction_set: PredictionSet, case: str, notes: list[str]
) -> CaseVolumes:
    """Read everything shown for ``case``; what cannot be shown is added to ``notes``."""
    prediction, geometry = _labels(prediction_set.folder / f"{case}{inputs.file_ending}", inputs)
    axes = PatientAxes.of(geometry)

    def fits(path: Path, shape: tuple[int, ...], what: str) -> bool:
        if tuple(shape) == tuple(prediction.shape):
            return True
        notes.append(f"{what} `{path}` has shape {tuple(shape)}, the prediction "
                     f"{tuple(prediction.shape)}: not shown")  # fmt: skip
        return False

    reference = None
    folder = prediction_set.reference
    path = folder / f"{case}{inputs.file_ending}" if folder is not None else None
    if path is not None and path.is_file():
        labels, _ = _labels(path, inputs)
        reference = axes.apply(labels) if fits(path, labels.shape, "reference") else None
    elif folder is not None:
        notes.append(f"no reference label map for this case in `{folder}`")
    images: list[np.ndarray | None] = []
    for channel_path in prediction_set.images.get(case, ()):
        image = None
        if channel_path is not None:
            try:
                array, _ = read_image(channel_path)
            except TumorsegError as exc:
                notes.append(f"image not shown: {exc}")
            else:
                image = axes.apply(array) if fits(channel_path, array.shape, "image") else None
        images.append(image)
    images += [None] * (len(inputs.channel_names) - len(images))
    uncertainty = {}
    for region, map_path in uncertainty_files(prediction_set.folder, case, inputs).items():
        try:
            array, _ = read_image(map_path)
        except TumorsegError as exc:
            notes.append(f"uncertainty map not shown: {exc}")
            continue
        if fits(map_path, array.shape, "uncertainty map"):
            uncertainty[region] = axes.apply(array.astype(np.float32))
    return CaseVolumes(
        axes, axes.spacing(geometry), axes.apply(prediction), reference, images, uncertainty
    )


def _panel(
    image: np.ndarray | None,
    window: tuple[float, float],
    labels: np.ndarray,
    plane: str,
    index: int,
    box: Any,
    volumes: CaseVolumes,
    colours: dict[int, Any],
) -> bytes:
    pixel, target = plane_spacing(volumes.spacing, plane), display_zoom(volumes.spacing)
    seg = zoom_to_display(
        crop_plane(plane_image(labels, plane, index), box, plane), pixel, target, 0
    )
    if image is None:
        rgb = np.zeros((*seg.shape, 3), np.uint8)
    else:
        section = crop_plane(plane_image(image, plane, index), box, plane)
        rgb = grey(zoom_to_display(section, pixel, target, 1), window)
    return png_bytes(outline(rgb, seg, colours))


def _heat_panel(
    background: np.ndarray | None, values: np.ndarray, plane: str, index: int, box: Any,
    volumes: CaseVolumes, vmax: float,
) -> bytes:  # fmt: skip
    pixel, target = plane_spacing(volumes.spacing, plane), display_zoom(volumes.spacing)
    field_ = zoom_to_display(crop_plane(plane_image(values, plane, index), box, plane), pixel,
                             target, 1)  # fmt: skip
    if background is None:
        rgb = np.zeros((*field_.shape, 3), np.uint8)
    else:
        section = crop_plane(plane_image(background, plane, index), box, plane)
        rgb = grey(zoom_to_display(section, pixel, target, 1), intensity_window(background))
    return png_bytes(heat(rgb, field_, vmax))


def _background_channel(inputs: ReportInputs, volumes: CaseVolumes) -> np.ndarray | None:
    """FLAIR when the case has it (edema and uncertainty read best on it), else the first."""
    present = [i for i, image in enumerate(volumes.images) if image is not None]
    if not present:
        return None
    for i in present:
        try:
            if Modality.parse(inputs.channel_names[i]) is Modality.FLAIR:
                return volumes.images[i]
        except ValueError:
            continue
    return volumes.images[present[0]]


def _centre(volumes: CaseVolumes, notes: list[str]) -> tuple[tuple[int, int, int], str]:
    """The voxel the slices go through, and what it is the centre of."""
    if volumes.reference is not None:
        centre = tumour_centre(volumes.reference)
        if centre is not None:
            return centre, "the centre of the reference tumour"
    centre = tumour_centre(volumes.prediction)
    if centre is not None:
        return centre, "the centre of the predicted tumour"
    notes.append("no tumour in the prediction or the reference: slices through the middle")
    middle = tuple(n // 2 for n in volumes.prediction.shape)
    return (middle[0], middle[1], middle[2]), "the middle of the volume"


def case_blocks(
    inputs: ReportInputs, prediction_set: PredictionSet, case: str, column_titles: Sequence[str]
) -> list[Block]:
    """The blocks of one case (see the module docstring)."""
    notes: list[str] = []
    volumes = load_case(inputs, prediction_set, case, notes)
    colours = label_colours(inputs.labels)
    blocks: list[Block] = []
    centre, centred_on = _centre(volumes, notes)
    where = volumes.axes.file_index(centre, volumes.prediction.shape)
    text = f"Slices through voxel (Z, Y, X) = {where} of the files, {centred_on}."
    scores = case_scores(prediction_set.summary, case)
    blocks.append(Paragraph(f"{scores}. {text}" if scores else text))
    brain = np.zeros(volumes.prediction.shape, bool)
    for image in volumes.images:
        if image is not None:
            brain |= image != 0
    brain |= volumes.prediction > 0
    box = crop_box(brain)
    windows = [intensity_window(i) if i is not None else (0.0, 1.0) for i in volumes.images]
    layers = [("prediction", volumes.prediction)]
    if volumes.reference is not None:
        layers.insert(0, ("reference", volumes.reference))
    if not any(image is not None for image in volumes.images):
        notes.append("no input images known for this case: outlines on black; pass --images")
    rows = []
    for plane in PLANES:
        index = slice_index(centre, plane)
        for name, labels in layers:
            panels = tuple(
                _panel(image, window, labels, plane, index, box, volumes, colours)
                if image is not None or not any(i is not None for i in volumes.images)
                else None
                for image, window in zip(volumes.images, windows, strict=True)
            )
            rows.append(PanelRow(f"{plane} · {name}", panels, PLANE_SIDES[plane]))
    blocks.append(PanelGrid(f"{prediction_set.title} {case}", tuple(column_titles), tuple(rows)))
    if volumes.uncertainty:
        blocks.append(_uncertainty_grid(inputs, prediction_set, case, volumes, centre, box))
    blocks += [Note(f"{case}: {text}") for text in notes]
    return blocks


def _uncertainty_grid(
    inputs: ReportInputs, prediction_set: PredictionSet, case: str, volumes: CaseVolumes,
    centre: tuple[int, int, int], box: Any,
) -> PanelGrid:  # fmt: skip
    background = _background_channel(inputs, volumes)
    regions = list(volumes.uncertainty)
    peaks = {r: float(np.max(volumes.uncertainty[r])) for r in regions}
    rows = []
    for plane in PLANES:
        index = slice_index(centre, plane)
        panels = tuple(
            _heat_panel(background, volumes.uncertainty[r], plane, index, box, volumes, peaks[r])
            for r in regions
        )
        rows.append(PanelRow(f"{plane} · uncertainty", panels, PLANE_SIDES[plane]))
    scale = ", ".join(f"{r} 0 to {peaks[r]:.3g}" for r in regions)
    return PanelGrid(
        f"{prediction_set.title} {case} uncertainty",
        tuple(f"{r} uncertainty" for r in regions),
        tuple(rows),
        caption=f"Dark: certain; bright yellow: the most uncertain voxels of each map "
        f"(colour scale per map: {scale}).",
    )


def case_section(
    inputs: ReportInputs,
    prediction_set: PredictionSet,
    case: str,
    anchor: str,
) -> Section:
    """The sub-section of one case, titled by its id (and fold)."""
    facts = prediction_set.facts.get(case, {})
    titles = []
    for name in inputs.channel_names:
        zero = name in facts.get("zero_filled", [])
        titles.append(f"{name} (absent: zero-filled)" if zero else name)
    title = case if inputs.kind == "predictions" else f"{case} ({prediction_set.title})"
    try:
        blocks = case_blocks(inputs, prediction_set, case, titles)
    except TumorsegError as exc:
        # One unreadable case (a truncated label map, an undeclared label value) must not cost
        # the reader the rest of the page.
        blocks = [Note(f"{case}: not shown: {exc}")]
    return Section(title, blocks, 3, anchor)
