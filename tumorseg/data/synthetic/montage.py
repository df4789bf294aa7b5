"""A PNG montage of a few cases of a raw dataset, for a person to look at.

One row per case at its mid-tumour axial slice (the slice with the most tumour): the four
channels, then FLAIR with the label overlay (edema yellow, enhancing red, necrosis / non-
enhancing core blue). Datasets with follow-up images get two more panels: the follow-up T1c
and FLAIR with the recurrence target outlined. Panels are cropped to the brain. Works for any
raw dataset with ``labelsTr``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tumorseg.data.io import read_image
from tumorseg.data.raw_dataset import RawDataset
from tumorseg.errors import TumorsegError
from tumorseg.utils.atomic import atomic_path

_LABEL_COLOURS = {1: (0.2, 0.45, 1.0), 2: (1.0, 0.9, 0.1), 3: (1.0, 0.15, 0.1)}


def _display(image: np.ndarray) -> np.ndarray:
    """Window an axial slice to its 0.5-99.5 percentile of brain voxels, in [0, 1]."""
    brain = image[image > 0]
    if brain.size == 0:
        return np.zeros_like(image, dtype=np.float32)
    low, high = np.percentile(brain, [0.5, 99.5])
    return np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0)


def _overlay(gray: np.ndarray, label: np.ndarray) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    for value, colour in _LABEL_COLOURS.items():
        mask = label == value
        rgb[mask] = 0.45 * rgb[mask] + 0.55 * np.array(colour)
    return rgb


def _brain_crop(images: list[np.ndarray], margin: int = 2) -> tuple[slice, slice]:
    """In-plane slices ``(Y, X)`` of the box holding non-zero voxels of any image."""
    inside = np.any([img != 0 for img in images], axis=0).any(axis=0)
    if not inside.any():
        return slice(None), slice(None)
    rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
    return (
        slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
        slice(max(cols[0] - margin, 0), cols[-1] + margin + 1),
    )


def render_montage(
    dataset_folder: Path,
    output: Path,
    n_cases: int = 4,
    dpi: int = 110,
    case_ids: list[str] | None = None,
) -> Path:
    """Write a montage PNG of the first ``n_cases`` cases of ``dataset_folder`` (or of the
    cases ``case_ids``, in that order) to ``output``; ``dpi`` sets its pixel size (110 gives
    about 1200 pixels across for five panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dataset = RawDataset.open(Path(dataset_folder))
    available = dataset.training_cases()
    if not available:
        raise TumorsegError(f"{dataset_folder}: no training cases; generate or convert some first")
    if case_ids:
        by_id = {case.case_id: case for case in available}
        unknown = [case_id for case_id in case_ids if case_id not in by_id]
        if unknown:
            known = ", ".join(sorted(by_id)[:5])
            raise TumorsegError(
                f"{dataset_folder}: no training case {', '.join(unknown)}; cases are named "
                f"like {known}"
            )
        cases = [by_id[case_id] for case_id in case_ids]
    else:
        cases = available[: max(n_cases, 1)]
    names = [
        dataset.dataset_json.channel_names[i] for i in sorted(dataset.dataset_json.channel_names)
    ]
    followup_dir = dataset.folder / "followupTr"
    has_followup = followup_dir.is_dir()
    columns = len(names) + 1 + (2 if has_followup else 0)
    fig, axes = plt.subplots(
        len(cases), columns, figsize=(2.2 * columns, 2.4 * len(cases)), squeeze=False
    )
    for row, case in zip(axes, cases, strict=True):
        label, _ = read_image(case.label) if case.label and case.label.is_file() else (None, None)
        images = [read_image(path)[0] for path in case.images]
        tumour_per_slice = (label > 0).sum(axis=(1, 2)) if label is not None else None
        if tumour_per_slice is not None and tumour_per_slice.any():
            z = int(np.argmax(tumour_per_slice))
        else:
            z = images[0].shape[0] // 2
        crop = (z, *_brain_crop(images))
        panels = [(_display(img[crop]), name) for img, name in zip(images, names, strict=True)]
        flair = panels[min(3, len(panels) - 1)][0]
        if label is not None:
            panels.append((_overlay(flair, label[crop]), "labels"))
        if has_followup:
            later = [followup_dir / p.name for p in case.images]
            t1c, fl = (read_image(later[i])[0][crop] for i in (1, 3))
            panels.append((_display(t1c), "follow-up T1c"))
            panels.append((_display(fl), "follow-up FLAIR"))
        for ax, (picture, title) in zip(row, panels, strict=True):
            # origin='lower': anterior up for the RAS-like template orientation.
            ax.imshow(picture, cmap="gray", origin="lower", vmin=0, vmax=1)
            ax.set_title(f"{case.case_id} {title}" if title == names[0] else title, fontsize=7)
        recurrence = case.targets.get("recurrence")
        if has_followup and recurrence is not None and recurrence.is_file():
            mask = read_image(recurrence)[0][crop]
            if mask.any():
                row[-1].contour(mask, levels=[0.5], colors="red", linewidths=0.8, origin="lower")
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    plt.close(fig)
    # A 256-colour palette holds grey panels and the three label colours, at a third the size.
    from PIL import Image

    buffer.seek(0)
    picture = Image.open(buffer).convert("RGB")
    palette = picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    output = Path(output)
    with atomic_path(output) as tmp:
        palette.save(tmp, format="png", optimize=True)
    return output
