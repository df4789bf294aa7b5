"""``tumorseg normal-appearance``: the pseudo-healthy T1 of a patient, for a person to look at.

The input is a T1 file, a case folder (files named by contrast, ``*_t1.nii.gz``), or a folder in
the raw convention (``CASE_0000.nii.gz`` ..., the T1 channel found through the dataset's
``channel_names``). The T1 is z-scored inside its brain (nonzero voxels) as preprocessing does,
every slice along array axis 0 goes through the dataset's normal-appearance model, and the
result is mapped back to the input's intensity scale (the brain's mean and standard deviation)
and written as NIfTI on the input's grid; outside the brain it is 0. ``figure`` adds a PNG of
input, pseudo-healthy T1 and their difference at the slice where they differ most.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tumorseg.constants import Modality
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.healthy import MAX_BRAIN_FRACTION
from tumorseg.data.io import Geometry, image_ending, read_image, write_image
from tumorseg.errors import bad_file
from tumorseg.inference.input_layout import modality_of_file
from tumorseg.networks.normal_appearance import pseudo_healthy_volume
from tumorseg.trainers.normal_model import load_normal_model, resolve_normal_model
from tumorseg.utils.atomic import atomic_path

SUFFIX = "_pseudohealthy"


def find_t1(source: Path, dataset_json: DatasetJson | None) -> Path:
    """The T1 file of ``source`` (a file, a case folder or a raw-convention folder)."""
    if source.is_file():
        return source
    if not source.is_dir():
        raise bad_file(source, "not found", "give a T1 file or a case folder with -i")
    files = [p for p in sorted(source.iterdir()) if p.is_file() and image_ending(p) is not None]
    named = [p for p in files if modality_of_file(p) is Modality.T1]
    if len(named) == 1:
        return named[0]
    if dataset_json is not None and not named:
        channel = next(
            (i for i, m in enumerate(_modalities(dataset_json)) if m is Modality.T1), None
        )
        suffix = None if channel is None else f"_{channel:04d}{dataset_json.file_ending}"
        numbered = [p for p in files if suffix is not None and p.name.endswith(suffix)]
        if len(numbered) == 1:
            return numbered[0]
    found = ", ".join(p.name for p in named) or "none"
    raise bad_file(
        source,
        f"no single T1 image found (T1 files: {found})",
        "give the T1 file itself with -i, or a folder with one *_t1 (or CASE_0000) file",
    )


def _modalities(dataset_json: DatasetJson) -> list[Modality | None]:
    out: list[Modality | None] = []
    for index in sorted(dataset_json.channel_names):
        try:
            out.append(Modality.parse(dataset_json.channel_names[index]))
        except ValueError:
            out.append(None)
    return out


def output_path(output: Path, t1: Path) -> Path:
    """``output`` itself when it names an image file, else ``output/<T1 name>_pseudohealthy``."""
    if image_ending(output) is not None:
        return output
    ending = image_ending(t1) or ".nii.gz"
    stem = t1.name[: -len(ending)] if image_ending(t1) else t1.stem
    return output / f"{stem}{SUFFIX}.nii.gz"


def pseudo_healthy_t1(
    t1: np.ndarray, geometry: Geometry, model: object, device: str = "cpu"
) -> np.ndarray:
    """The pseudo-healthy version ``(Z, Y, X)`` float32 of a skull-stripped ``t1``, in its
    intensity scale, 0 outside the brain."""
    brain = t1 != 0
    values = t1[brain].astype(np.float64)
    mean, std = float(values.mean()), max(float(values.std()), 1e-8)
    normalised = np.where(brain, (t1 - mean) / std, 0).astype(np.float32)
    healthy = pseudo_healthy_volume(model, normalised, geometry.spacing[1:], device)  # type: ignore[arg-type]
    return np.where(brain, healthy * std + mean, 0).astype(np.float32)


def normal_appearance(
    source: Path,
    output: Path,
    results_dataset: Path,
    *,
    model_name: str = "",
    dataset_json: DatasetJson | None = None,
    device: str = "cpu",
    figure: Path | None = None,
    figure_slice: int | None = None,
) -> Path:
    """Write the pseudo-healthy T1 of ``source`` (see the module docstring); returns its path.
    ``figure_slice`` picks the figure's slice (array axis 0; default where they differ most)."""
    folder = resolve_normal_model(results_dataset, model_name)
    model, _ = load_normal_model(folder, device)
    t1_path = find_t1(Path(source), dataset_json)
    t1, geometry = read_image(t1_path)
    if t1.ndim != 3:
        raise bad_file(t1_path, f"is {t1.ndim}D, expected a 3D T1", "give one 3D T1 image")
    share = np.count_nonzero(t1) / t1.size
    if share == 0 or share > MAX_BRAIN_FRACTION:
        raise bad_file(
            t1_path,
            f"{share:.0%} of the voxels are nonzero: not a skull-stripped brain",
            "skull-strip the T1 first, so the background is 0",
        )
    if figure_slice is not None and not 0 <= figure_slice < t1.shape[0]:
        raise bad_file(
            t1_path, f"--slice {figure_slice} is outside the image (0..{t1.shape[0] - 1})",
            "pick a slice inside it",
        )
    healthy = pseudo_healthy_t1(t1.astype(np.float32), geometry, model, device)
    target = output_path(Path(output), t1_path)
    write_image(target, healthy, geometry, check=True)
    if figure is not None:
        write_figure(figure, t1.astype(np.float32), healthy, t1_path.name, figure_slice)
    return target


def write_figure(
    path: Path, t1: np.ndarray, healthy: np.ndarray, title: str, z: int | None = None
) -> Path:
    """Input, pseudo-healthy T1 and their difference (outside the brain blank) at slice ``z``,
    by default the slice where they differ most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    difference = t1 - healthy
    if z is None:
        z = int(np.argmax(np.abs(difference).reshape(difference.shape[0], -1).sum(axis=1)))
    brain = t1[z] != 0
    low, high = np.percentile(t1[t1 != 0], [1, 99]) if np.any(t1) else (0.0, 1.0)
    span = float(np.abs(difference[z][brain]).max()) if brain.any() else 1.0
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4))
    panels = (
        ("input T1", t1[z], "gray", low, high),
        ("pseudo-healthy T1", healthy[z], "gray", low, high),
        ("difference (input - pseudo-healthy)", np.where(brain, difference[z], np.nan),
         "coolwarm", -span, span),
    )
    for axis, (name, image, cmap, vmin, vmax) in zip(axes, panels, strict=True):
        shown = axis.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
        axis.set_title(name, fontsize=10)
        axis.axis("off")
    fig.colorbar(shown, ax=axes[2], fraction=0.046)
    fig.suptitle(f"{title}, slice {z}", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
