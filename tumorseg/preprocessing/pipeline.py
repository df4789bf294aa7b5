"""Preprocessing of one case, and its inverse for predictions.

``preprocess_case``: crop to the nonzero region (union over channels) -> normalise per channel
(statistics from the original voxels, before any interpolation) -> transpose (coarsest axis
first) -> resample to the configuration's spacing -> sample foreground locations.
``revert_to_original`` undoes the geometric steps for a probability map.

Properties (JSON) of a preprocessed case; spatial entries in the ORIGINAL ``(Z, Y, X)`` order
unless stated:

- ``geometry``: ``Geometry.to_dict()`` of the original image;
- ``crop_bbox``: ``[[start, stop], ...]`` of the nonzero crop;
- ``shape_after_crop``: shape of the cropped volume;
- ``shape_after_resampling``: shape of the stored arrays (transposed order);
- ``spacing_after_resampling``: the configuration's spacing (transposed order);
- ``class_locations``: ``{"label": [[z, y, x], ...]}`` up to ``MAX_LOCATIONS`` voxels per
  foreground label present, in stored (transposed, resampled) coordinates, for oversampling;
- ``targets``: names of the extra target channels of the seg array, in order;
- ``target_locations``: ``{"name": [[z, y, x], ...]}`` foreground voxels of each extra target;
- ``lookalike_locations``: ``{"FLAIR": [[z, y, x], ...], "T1c": ...}`` tumour look-alikes for
  hard-negative sampling (:func:`lookalike_locations`), stored coordinates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tumorseg.data.io import Geometry
from tumorseg.errors import TumorsegError
from tumorseg.planning.plans import ConfigurationPlan, Plans
from tumorseg.preprocessing.cropping import bbox_of_mask, crop, nonzero_mask
from tumorseg.preprocessing.normalization import normalize
from tumorseg.preprocessing.resampling import (
    resample_image,
    resample_probabilities,
    resample_seg,
    separate_axis,
    target_shape,
)

#: Look-alikes: the brightest ``100 - LOOKALIKE_PERCENTILE`` % of the non-tumour brain in FLAIR
#: and T1c, at least ``LOOKALIKE_MARGIN_MM`` from the tumour (where a false positive is a
#: separate component, not a border error).
LOOKALIKE_PERCENTILE = 99.0
LOOKALIKE_MARGIN_MM = 10.0
MAX_LOCATIONS = 10_000  # foreground voxels kept per label: plenty for oversampling, small JSON
_LOCATION_SEED = 12345  # fixed, so a rerun writes identical properties


def _locations(mask: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
    idx = np.flatnonzero(mask)
    if idx.size > MAX_LOCATIONS:
        idx = np.sort(rng.choice(idx, MAX_LOCATIONS, replace=False))
    return np.stack(np.unravel_index(idx, mask.shape), axis=1).tolist()


def lookalike_locations(
    data: np.ndarray,
    seg: np.ndarray,
    channel_names: list[str],
    spacing: list[float],
    rng: np.random.Generator,
) -> dict[str, list[list[int]]]:
    """Voxels that look like tumour and are not: per FLAIR / T1c channel of ``data`` (C, z, y,
    x), non-tumour brain voxels (``seg`` 0, data nonzero) at least ``LOOKALIKE_MARGIN_MM`` from
    the tumour and brighter than the ``LOOKALIKE_PERCENTILE``-th percentile of such voxels:
    white-matter hyperintensities, bright vessels, artefacts (FLAIR is where edema look-alikes
    show, T1c where enhancement look-alikes do). Up to ``MAX_LOCATIONS`` per channel."""
    from scipy import ndimage

    from tumorseg.constants import Modality

    wanted = {Modality.FLAIR, Modality.T1C}
    channels = []
    for index, name in enumerate(channel_names):
        try:
            modality = Modality.parse(name)
        except ValueError:
            continue
        if modality in wanted:
            channels.append((index, modality.value))
    if not channels:
        return {}
    background = (data != 0).any(axis=0) & (seg == 0)
    tumour = seg > 0
    if tumour.any():
        # Distances only within the tumour's box grown by the margin (exact there: every tumour
        # voxel lies inside it); everything outside that box is at least the margin away.
        found = np.argwhere(tumour)
        grow = [math.ceil(LOOKALIKE_MARGIN_MM / s) for s in spacing]
        box = tuple(
            slice(max(0, lo - g), min(n, hi + 1 + g))
            for lo, hi, g, n in zip(found.min(0), found.max(0), grow, seg.shape, strict=True)
        )
        distance = ndimage.distance_transform_edt(~tumour[box], sampling=spacing)
        background[box] &= distance >= LOOKALIKE_MARGIN_MM
    out: dict[str, list[list[int]]] = {}
    for index, name in channels:
        values = data[index][background]
        if values.size == 0:
            continue
        threshold = np.percentile(values, LOOKALIKE_PERCENTILE)
        out[name] = _locations(background & (data[index] > threshold), rng)
    return out


def preprocess_case(
    images: list[np.ndarray],
    geometry: Geometry,
    plans: Plans,
    config: ConfigurationPlan,
    label: np.ndarray | None = None,
    targets: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Preprocess one case for ``config``.

    ``images``: one ``(Z, Y, X)`` array per channel on ``geometry``'s grid; ``label`` and
    ``targets`` on the same grid. Returns ``(data float32 (C, z, y, x), seg int8 (T, z, y, x)
    or None, properties)`` where ``T = 1 + len(targets)``; see the module docstring.
    """
    if len(images) != len(plans.channel_names):
        raise TumorsegError(
            f"case has {len(images)} channels, plans {plans.plans_name!r} expect "
            f"{len(plans.channel_names)} ({', '.join(plans.channel_names)}); supply every channel"
        )
    brain_full = nonzero_mask(images)
    bbox = bbox_of_mask(brain_full)
    brain = crop(brain_full, bbox)
    data = np.stack(
        [
            normalize(crop(img, bbox), brain, s)
            for img, s in zip(images, plans.normalization, strict=True)
        ]
    )
    order = plans.transpose_forward
    axes = (0, *(a + 1 for a in order))
    data = data.transpose(axes)
    spacing = [geometry.spacing[a] for a in order]
    shape = target_shape(data.shape[1:], spacing, config.spacing)
    axis = separate_axis(spacing, config.spacing, config.anisotropy_threshold)
    resampled = tuple(data.shape[1:]) != shape
    data = resample_image(data, shape, config.resampling_order_image, axis)
    if resampled:
        # Cubic interpolation rings slightly into the zero background: restore it exactly.
        mask = resample_seg(brain.transpose(order)[None].astype(np.int8), shape, 0, axis)[0]
        data[:, mask == 0] = 0
    target_names = list(targets or {})
    seg = None
    properties: dict[str, Any] = {
        "geometry": geometry.to_dict(),
        "crop_bbox": bbox,
        "shape_after_crop": [hi - lo for lo, hi in bbox],
        "shape_after_resampling": list(shape),
        "spacing_after_resampling": list(config.spacing),
        "class_locations": {},
        "targets": target_names,
        "target_locations": {},
    }
    if label is not None:
        channels = [label, *(targets[name] for name in target_names)] if targets else [label]
        stacked = np.stack([crop(np.asarray(c), bbox) for c in channels]).astype(np.int8)
        seg = resample_seg(stacked.transpose(axes), shape, config.resampling_order_label, axis)
        rng = np.random.default_rng(_LOCATION_SEED)
        properties["class_locations"] = {
            str(int(v)): _locations(seg[0] == v, rng) for v in np.unique(seg[0]) if v > 0
        }
        properties["target_locations"] = {
            name: _locations(seg[1 + i] > 0, rng) for i, name in enumerate(target_names)
        }
        properties["lookalike_locations"] = lookalike_locations(
            data, seg[0], list(plans.channel_names), list(config.spacing), rng
        )
    return np.ascontiguousarray(data, dtype=np.float32), seg, properties


def revert_to_original(
    probabilities: np.ndarray,
    properties: dict[str, Any],
    plans: Plans,
    config: ConfigurationPlan,
    *,
    activation: str = "sigmoid",
) -> np.ndarray:
    """Map ``(K, z, y, x)`` probabilities in preprocessed space to ``(K, Z, Y, X)`` in the
    original image grid: resampled back linearly, transpose undone, padded into the uncropped
    shape. Outside the crop every channel is 0 (regions, ``activation="sigmoid"``), except the
    background channel 0, which is 1, when ``activation="softmax"``.
    """
    del config  # the stored properties fully describe the geometry; kept for the contract
    order = plans.transpose_forward
    crop_shape = properties["shape_after_crop"]
    shape_t = [crop_shape[a] for a in order]
    probs = resample_probabilities(np.asarray(probabilities, dtype=np.float32), shape_t)
    probs = probs.transpose((0, *(a + 1 for a in plans.transpose_backward)))
    geometry = Geometry.from_dict(properties["geometry"])
    out = np.zeros((probs.shape[0], *geometry.shape), dtype=np.float32)
    if activation == "softmax":
        out[0] = 1
    region = (slice(None), *(slice(lo, hi) for lo, hi in properties["crop_bbox"]))
    out[region] = probs
    return out
