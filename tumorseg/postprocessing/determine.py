"""Choose post-processing on cross-validation predictions: keep a rule only where it helps.

Greedy, one region at a time (WT, TC, ET for BraTS datasets, else the dataset's regions):

1. candidates for the region: remove components under each of ``component_thresholds`` voxels,
   and keep only the largest component (removed voxels get the enclosing region's label, see
   ``components.enclosing_fill``);
2. every candidate is applied on top of the steps accepted so far and scored on all cases;
3. the best candidate (mean Dice of the region, ties broken by lower mean HD95) is accepted
   when it improves the region's mean Dice (or keeps it and lowers HD95) without lowering the
   mean Dice over all regions;
4. for BraTS datasets, the same for "small ET -> necrosis" with each of ``et_thresholds``.

Predictions and references must both be in internal labels (CV predictions and ``labelsTr`` of
a tumorseg raw dataset are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.metrics import region_metrics
from tumorseg.evaluation.regions import brats_regions, map_labels
from tumorseg.evaluation.summary import check_geometry, pair_folders
from tumorseg.postprocessing.components import enclosing_fill
from tumorseg.postprocessing.rules import DECISION_VERSION, apply_postprocessing, apply_step
from tumorseg.utils.atomic import write_json
from tumorseg.utils.parallel import run_parallel

COMPONENT_THRESHOLDS: tuple[int, ...] = (10, 50, 200, 1000)
ET_THRESHOLDS: tuple[int, ...] = (50, 100, 200, 500, 1000)
_EPS = 1e-6

Scores = dict[str, dict[str, float]]  # {region: {"dice": mean, "hd95": mean}}


def _case_scores(
    pred_path: Path,
    gt_path: Path,
    accepted: list[dict[str, Any]],
    candidates: list[dict[str, Any] | None],
    regions: dict[str, tuple[int, ...]],
    pred_mapping: dict[int, int] | None = None,
) -> list[Scores]:
    """Dice and HD95 of one case under each candidate (None: the accepted steps only)."""
    from tumorseg.data.io import read_image

    pred, geometry = read_image(pred_path)
    pred = map_labels(pred, pred_mapping, pred_path)
    gt, _ = read_image(gt_path)
    base = apply_postprocessing(pred, {"steps": accepted}, geometry.spacing)
    base_scores = region_metrics(base, gt, regions, geometry.spacing, ("dice", "hd95"))
    out = []
    for candidate in candidates:
        changed = None if candidate is None else apply_step(base, candidate, geometry.spacing)
        if changed is None or np.array_equal(changed, base):
            out.append(base_scores)  # unchanged output: skip the distance transforms
        else:
            out.append(region_metrics(changed, gt, regions, geometry.spacing, ("dice", "hd95")))
    return out


def _mean_scores(
    pairs: Mapping[str, tuple[Path, Path]],
    accepted: list[dict[str, Any]],
    candidates: list[dict[str, Any] | None],
    regions: dict[str, tuple[int, ...]],
    num_processes: int,
    pred_mapping: dict[int, int] | None,
) -> list[Scores]:
    jobs = [(p, g, accepted, candidates, regions, pred_mapping) for p, g in pairs.values()]
    per_case = run_parallel(_case_scores, jobs, num_processes)
    return [
        {
            r: {m: float(np.mean([case[i][r][m] for case in per_case])) for m in ("dice", "hd95")}
            for r in regions
        }
        for i in range(len(candidates))
    ]


def _overall_dice(scores: Scores) -> float:
    return float(np.mean([v["dice"] for v in scores.values()]))


def _improves(new: Scores, old: Scores, region: str) -> bool:
    if _overall_dice(new) < _overall_dice(old) - _EPS:
        return False
    gain = new[region]["dice"] - old[region]["dice"]
    if gain > _EPS:
        return True
    return abs(gain) <= _EPS and new[region]["hd95"] < old[region]["hd95"] - _EPS


def _candidates_for(
    region: str,
    labels: tuple[int, ...],
    regions: dict[str, tuple[int, ...]],
    thresholds: Sequence[int],
) -> list[dict[str, Any]]:
    fill = enclosing_fill(labels, list(regions.values()))
    base = {"region": region, "labels": list(labels), "fill": fill}
    return [
        *({"rule": "remove_small_components", **base, "min_voxels": int(t)} for t in thresholds),
        {"rule": "keep_largest_component", **base},
    ]


def determine_from_pairs(
    pairs: Mapping[str, tuple[Path, Path]],
    dataset_json: DatasetJson,
    *,
    num_processes: int = 1,
    component_thresholds: Sequence[int] = COMPONENT_THRESHOLDS,
    et_thresholds: Sequence[int] = ET_THRESHOLDS,
    pred_mapping: dict[int, int] | None = None,
) -> dict[str, Any]:
    """The decision for ``{case: (prediction, reference)}``; see ``determine_postprocessing``.

    ``pred_mapping`` maps prediction files in a source convention to internal labels.
    """
    if not pairs:
        raise TumorsegError("no cases to determine post-processing on; check the folders")
    is_brats = dataset_json.brats_regions is not None
    regions = brats_regions() if is_brats else dict(dataset_json.regions)
    accepted: list[dict[str, Any]] = []
    (baseline,) = _mean_scores(pairs, accepted, [None], regions, num_processes, pred_mapping)
    current = baseline
    tried: list[dict[str, Any]] = []
    stages = [
        (r, _candidates_for(r, labels, regions, component_thresholds))
        for r, labels in regions.items()
    ]
    if is_brats and et_thresholds:
        stages.append(
            (
                "ET",
                [
                    {
                        "rule": "small_et_to_necrosis",
                        "min_voxels": int(t),
                        "et_label": 3,
                        "necrosis_label": 1,
                    }
                    for t in et_thresholds
                ],
            )
        )
    for region, candidates in stages:
        scores = _mean_scores(
            pairs, accepted, list(candidates), regions, num_processes, pred_mapping
        )
        order = sorted(
            range(len(candidates)),
            key=lambda i: (-scores[i][region]["dice"], scores[i][region]["hd95"]),
        )
        chosen = next((i for i in order if _improves(scores[i], current, region)), None)
        for i, candidate in enumerate(candidates):
            tried.append({"step": candidate, "scores": scores[i], "accepted": i == chosen})
        if chosen is not None:
            accepted.append(candidates[chosen])
            current = scores[chosen]
    return {
        "version": DECISION_VERSION,
        "source": "determined on cross-validation",
        "num_cases": len(pairs),
        "regions": {r: list(v) for r, v in regions.items()},
        "steps": accepted,
        "baseline": baseline,
        "final": current,
        "tried": tried,
    }


def determine_postprocessing(
    pred_folder: Path,
    gt_folder: Path,
    dataset_json: DatasetJson | Path,
    *,
    output: Path | None = None,
    num_processes: int = 1,
    component_thresholds: Sequence[int] = COMPONENT_THRESHOLDS,
    et_thresholds: Sequence[int] = ET_THRESHOLDS,
) -> dict[str, Any]:
    """Decide post-processing on CV predictions in ``pred_folder`` against ``gt_folder``.

    ``dataset_json`` (parsed, or a path to it / its dataset folder) gives the regions and the
    file ending. Returns the JSON-able decision (``steps`` to pass to ``apply_postprocessing``,
    plus ``baseline`` / ``final`` mean scores and every ``tried`` candidate); writes it
    atomically to ``output`` when given.
    """
    dj = (
        dataset_json
        if isinstance(dataset_json, DatasetJson)
        else DatasetJson.read(Path(dataset_json))
    )
    pairs, _ = pair_folders(Path(pred_folder), Path(gt_folder), dj.file_ending)
    check_geometry(pairs)
    decision = determine_from_pairs(
        pairs,
        dj,
        num_processes=num_processes,
        component_thresholds=component_thresholds,
        et_thresholds=et_thresholds,
    )
    if output is not None:
        write_json(output, decision)
    return decision
