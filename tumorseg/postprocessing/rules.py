"""Post-processing decisions: the steps, how they are applied, and the paper presets.

A decision is a JSON-able dict ``{"version": 1, "steps": [step, ...], ...}`` applied in order.
Steps::

    {"rule": "remove_small_components", "region": "WT", "labels": [1, 2, 3],
     "min_voxels": 10, "fill": 0}
    {"rule": "keep_largest_component", "region": "WT", "labels": [1, 2, 3], "fill": 0}
    {"rule": "remove_distant_components", "region": "WT", "labels": [1, 2, 3],
     "min_distance_mm": 20, "max_volume_mm3": 5000, "fill": 0}
    {"rule": "small_et_to_necrosis", "min_voxels": 200, "et_label": 3, "necrosis_label": 1}

A size may be given in mm³ instead of voxels (``"min_volume_mm3"`` for ``"min_voxels"``,
``"max_volume_mm3"`` for ``"max_voxels"``); it is converted to voxels with the image's spacing,
so one decision fits images of any resolution. ``remove_distant_components`` removes the
components (other than the largest) farther than ``min_distance_mm`` from the region's largest
component and smaller than the size: look-alikes far from the tumour, not a multifocal focus.
Label values are the dataset's own (``labelsTr``'s): files in a source convention are mapped
onto them before a decision is applied and back afterwards
(``tumorseg.inference.postprocess_folder``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.data.labels import LabelManager, TumorLabel
from tumorseg.errors import TumorsegError, bad_file
from tumorseg.evaluation.metrics import region_mask
from tumorseg.postprocessing.components import (
    keep_largest_component,
    relabel_region,
    remove_distant_components,
    remove_small_components,
)

DECISION_VERSION = 1
RULES = (
    "remove_small_components",
    "keep_largest_component",
    "remove_distant_components",
    "small_et_to_necrosis",
)


def small_et_to_necrosis(
    labels: np.ndarray,
    min_voxels: int,
    et_label: int = TumorLabel.ENHANCING.value,
    necrosis_label: int = TumorLabel.NECROSIS.value,
) -> np.ndarray:
    """Relabel all enhancing tumour as necrosis when it has fewer than ``min_voxels`` voxels.

    BraTS scores an empty ET prediction on a case without ET as perfect and a small false ET
    as zero, so a few predicted ET voxels are more often wrong than right (low-grade gliomas).
    TC and WT are unchanged: both contain necrosis and enhancing tumour.
    """
    et = labels == et_label
    count = int(et.sum())
    if count == 0 or count >= min_voxels:
        return labels.copy()
    out = labels.copy()
    out[et] = necrosis_label
    return out


def _size_key(rule: Any) -> str:
    """The size a rule reads: ``min`` (below it goes) or ``max`` (the distant rule: below it
    may go)."""
    return "max" if rule == "remove_distant_components" else "min"


def _voxels(step: Mapping[str, Any], spacing: Sequence[float]) -> int:
    """The step's size in voxels (``min_voxels`` / ``max_voxels``, or the ``_volume_mm3`` one)."""
    key = _size_key(step.get("rule"))
    if f"{key}_voxels" in step:
        return int(step[f"{key}_voxels"])
    if f"{key}_volume_mm3" in step:
        return math.ceil(float(step[f"{key}_volume_mm3"]) / float(np.prod(spacing)) - 1e-9)
    raise TumorsegError(f"post-processing step {dict(step)} has no size; add '{key}_voxels'")


def _amount(value: Any) -> bool:
    """A finite number of at least 0 (a distance or a volume); never a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value >= 0


def _whole(value: Any) -> bool:
    """An integer (or an integral float, as JSON may hold it) of at least 0; never a bool."""
    return _amount(value) and float(value).is_integer()


def step_problem(step: Any, where: str) -> str | None:
    """What makes a decision ``step`` (found at ``where``, e.g. ``steps[0]``) unusable, or None.

    Checks the types :func:`apply_step` relies on: an object with a known ``rule``; label
    values as whole numbers; a size (``min_voxels`` or ``min_volume_mm3``) where the rule needs
    one. The text starts with the key at fault: ``steps[0].min_voxels is "lots", ...``.
    """
    if not isinstance(step, dict):
        return f'{where} is {json.dumps(step)}, not a step object ({{"rule": ..., ...}})'
    rule = step.get("rule")
    if rule not in RULES:
        return f"{where}.rule is {json.dumps(rule)}, not one of {', '.join(RULES)}"
    label_keys = ("fill",) if rule != "small_et_to_necrosis" else ("et_label", "necrosis_label")
    for key in (k for k in label_keys if k in step):
        if not _whole(step[key]):
            return f"{where}.{key} is {json.dumps(step[key])}, not a label value"
    if rule != "small_et_to_necrosis":
        labels = step.get("labels")
        if not isinstance(labels, list) or not labels or not all(_whole(v) for v in labels):
            return f"{where}.labels is {json.dumps(labels)}, not a list of label values"
    if rule == "keep_largest_component":
        return None
    if rule == "remove_distant_components" and not _amount(step.get("min_distance_mm")):
        shown = json.dumps(step.get("min_distance_mm"))
        return f"{where}.min_distance_mm is {shown}, not a distance of at least 0"
    key = _size_key(rule)
    if f"{key}_voxels" in step:
        if not _whole(step[f"{key}_voxels"]):
            shown = json.dumps(step[f"{key}_voxels"])
            return f"{where}.{key}_voxels is {shown}, not a whole number of at least 0"
    elif f"{key}_volume_mm3" in step:
        volume = step[f"{key}_volume_mm3"]
        if not _amount(volume):
            return f"{where}.{key}_volume_mm3 is {json.dumps(volume)}, not a volume of at least 0"
    else:
        return f"{where} ({rule}) has no size ('{key}_voxels' or '{key}_volume_mm3')"
    return None


def apply_step(labels: np.ndarray, step: Mapping[str, Any], spacing: Sequence[float]) -> np.ndarray:
    """Apply one step to a label map (any shape); returns a new array."""
    rule = step.get("rule")
    if rule == "small_et_to_necrosis":
        return small_et_to_necrosis(
            labels,
            _voxels(step, spacing),
            int(step.get("et_label", TumorLabel.ENHANCING.value)),
            int(step.get("necrosis_label", TumorLabel.NECROSIS.value)),
        )
    if rule in ("remove_small_components", "keep_largest_component", "remove_distant_components"):
        region_labels = [int(v) for v in step["labels"]]
        mask = region_mask(labels, region_labels)
        if rule == "remove_small_components":
            kept = remove_small_components(mask, _voxels(step, spacing))
        elif rule == "remove_distant_components":
            distance = float(step["min_distance_mm"])
            kept = remove_distant_components(mask, spacing, distance, _voxels(step, spacing))
        else:
            kept = keep_largest_component(mask)
        return relabel_region(labels, region_labels, kept, int(step.get("fill", 0)))
    raise TumorsegError(f"unknown post-processing rule {rule!r}; valid: {', '.join(RULES)}")


def apply_postprocessing(
    labels: np.ndarray, decision: Mapping[str, Any], spacing: Sequence[float]
) -> np.ndarray:
    """Apply every step of ``decision`` in order to ``labels`` (dataset values, e.g. (Z, Y, X)).

    ``spacing`` (mm per voxel along the array axes) converts ``min_volume_mm3`` sizes to voxels.
    """
    steps = decision.get("steps")
    if not isinstance(steps, list):
        raise TumorsegError("post-processing decision has no 'steps' list; re-run 'determine'")
    out = np.asarray(labels).copy()
    for step in steps:
        out = apply_step(out, step, spacing)
    return out


def preset_decision(
    name: str, et_threshold: int = 200, labels: LabelManager | None = None
) -> dict[str, Any]:
    """The post-processing a paper describes, as a decision dict in ``labels``' values.

    ``pairing`` (Wang et al., BraTS 2020): delete every tumour component under 10 voxels, then
    replace enhancing tumour below a threshold by necrosis. The paper does not give the
    threshold; ``et_threshold`` (voxels) defaults to 200 and is best tuned with ``determine``.
    ``labels`` None: tumorseg's internal glioma labels.
    """
    if name != "pairing":
        raise TumorsegError(f"unknown post-processing preset {name!r}; valid: pairing")
    labels = labels or LabelManager.internal()
    tumour = labels.tumour_labels()
    regions = labels.brats_regions()
    if tumour is None or regions is None:
        raise TumorsegError(
            f"{labels.name}: the pairing preset needs the BraTS tumour labels (necrosis, edema, "
            "enhancing), which these labels do not declare; use --decision instead"
        )
    return {
        "version": DECISION_VERSION,
        "source": "preset:pairing",
        "steps": [
            {
                "rule": "remove_small_components",
                "region": "WT",
                "labels": list(regions["WT"]),
                "min_voxels": 10,
                "fill": 0,
            },
            {
                "rule": "small_et_to_necrosis",
                "min_voxels": int(et_threshold),
                "et_label": tumour[TumorLabel.ENHANCING],
                "necrosis_label": tumour[TumorLabel.NECROSIS],
            },
        ],
    }


def read_decision(path: Path) -> dict[str, Any]:
    """Read a decision JSON (``postprocessing.json`` or a ``find_best.json`` holding one)."""
    path = Path(path)
    if not path.is_file():
        raise bad_file(
            path, "not found", "run 'tumorseg postprocess determine' or 'find-best' first"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_file(
            path, "is not valid JSON", "re-run 'tumorseg postprocess determine'"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("postprocessing"), dict):
        data = data["postprocessing"]
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise bad_file(path, "has no 'steps' list", "give a decision written by tumorseg")
    for index, step in enumerate(data["steps"]):
        if (problem := step_problem(step, f"steps[{index}]")) is not None:
            raise bad_file(
                path, problem, "fix the decision or re-run 'tumorseg postprocess determine'"
            )
    return data


def _size(step: Mapping[str, Any]) -> str:
    key = _size_key(step["rule"])
    if f"{key}_volume_mm3" in step:
        return f"{step[f'{key}_volume_mm3']:g} mm³"
    return f"{step[f'{key}_voxels']} voxels"


def describe_step(step: Mapping[str, Any]) -> str:
    """One step of a decision in words, e.g. ``remove WT components under 10 voxels``."""
    if step["rule"] == "small_et_to_necrosis":
        return f"ET under {_size(step)} -> necrosis"
    if step["rule"] == "keep_largest_component":
        return f"keep the largest {step['region']} component"
    if step["rule"] == "remove_distant_components":
        return (
            f"remove {step['region']} components under {_size(step)} farther than "
            f"{step['min_distance_mm']:g} mm from the largest"
        )
    return f"remove {step['region']} components under {_size(step)}"


def describe_steps(steps: Sequence[Mapping[str, Any]]) -> str:
    """A one-line description of a decision's steps."""
    return (
        ", ".join(describe_step(s) for s in steps) if steps else "none (no rule improves the score)"
    )
