"""Choose post-processing on cross-validation predictions: keep a rule only where it helps.

Greedy, one region at a time (WT, TC, ET for BraTS datasets, else the dataset's regions):

1. candidates for the region: remove components under each of ``component_thresholds`` voxels
   (a size learned on CV, which keeps every component of a multifocal tumour above it); remove
   the components far from the main lesion (farther than each of ``DISTANT_MM`` from the
   largest component and smaller than each of ``DISTANT_MAX_MM3``: look-alikes away from the
   tumour, at any size CV supports); and keep only the largest component (nnU-Net's rule);
   removed voxels get the enclosing region's label, see ``components.enclosing_fill``;
2. every candidate is applied on top of the steps accepted so far and scored on all cases;
3. the best candidate (mean Dice of the region, ties broken by lower mean HD95) is accepted
   when it improves the region's mean Dice (or keeps it and lowers HD95) without lowering the
   mean Dice over all regions. The rules that remove whole components regardless of a small
   size (the largest-component and the distant-component rules) are accepted only where CV
   supports them for multifocal tumours too: such a candidate is rejected when it lowers the
   region's Dice of any CV case whose reference region is multifocal (two or more components
   of at least ``MULTIFOCAL_MIN_VOXELS``), however much it gains elsewhere;
4. for BraTS datasets, the same for "small ET -> necrosis" with each of ``et_thresholds``.

Regions and the enhancing / necrosis labels are the dataset's own (``LabelManager``: declared
regions such as Dataset137's TC = 2, 3 included). Prediction files are mapped onto the
dataset's labels first (``pred_mapping``: their ``labels.json``, e.g. BraTS 2021's ET = 4), so
the decision is always in the dataset's values, like ``labelsTr``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.labels import FileConvention, LabelManager, TumorLabel
from tumorseg.errors import TumorsegError
from tumorseg.evaluation.folders import resolve_labels
from tumorseg.evaluation.metrics import region_mask, region_metrics
from tumorseg.evaluation.summary import check_geometry, pair_folders, read_label_file
from tumorseg.postprocessing.components import enclosing_fill, label_components
from tumorseg.postprocessing.rules import (
    DECISION_VERSION,
    RULES,
    apply_postprocessing,
    apply_step,
)
from tumorseg.utils.atomic import write_json
from tumorseg.utils.parallel import run_parallel

COMPONENT_THRESHOLDS: tuple[int, ...] = (10, 50, 200, 1000)
ET_THRESHOLDS: tuple[int, ...] = (50, 100, 200, 500, 1000)
#: Distant-component candidates: every distance (mm from the largest component) with every
#: size cap (mm³; 1 ml is 125 voxels of 2 mm, 1000 of 1 mm).
DISTANT_MM: tuple[float, ...] = (10.0, 20.0, 40.0)
DISTANT_MAX_MM3: tuple[float, ...] = (1000.0, 5000.0, 20000.0)
#: Rules that may remove a focus of a multifocal tumour; guarded on CV (see the module text).
WHOLE_COMPONENT_RULES = ("keep_largest_component", "remove_distant_components")
#: A reference region is multifocal when it has two or more components of at least this size.
MULTIFOCAL_MIN_VOXELS = 10
_EPS = 1e-6

Scores = dict[str, dict[str, float]]  # {region: {"dice": mean, "hd95": mean}}
#: One case: its scores under each candidate, and which regions its reference has multifocal.
CaseResult = tuple[list[Scores], dict[str, bool]]


def multifocal_regions(gt: np.ndarray, regions: Mapping[str, Sequence[int]]) -> dict[str, bool]:
    """``{region: True}`` where the reference region has 2+ components of
    ``MULTIFOCAL_MIN_VOXELS`` or more voxels."""
    out = {}
    for name, labels in regions.items():
        _, sizes = label_components(region_mask(gt, list(labels)))
        out[name] = int((sizes >= MULTIFOCAL_MIN_VOXELS).sum()) >= 2
    return out


def _case_scores(
    pred_path: Path,
    gt_path: Path,
    accepted: list[dict[str, Any]],
    candidates: list[dict[str, Any] | None],
    regions: dict[str, tuple[int, ...]],
    pred_mapping: Mapping[int, int] | None = None,
    gt_mapping: Mapping[int, int] | None = None,
) -> CaseResult:
    """Dice and HD95 of one case under each candidate (None: the accepted steps only), and the
    regions its reference has multifocal."""
    pred, geometry = read_label_file(pred_path, pred_mapping)
    gt, _ = read_label_file(gt_path, gt_mapping)
    base = apply_postprocessing(pred, {"steps": accepted}, geometry.spacing)
    base_scores = region_metrics(base, gt, regions, geometry.spacing, ("dice", "hd95"))
    out = []
    for candidate in candidates:
        changed = None if candidate is None else apply_step(base, candidate, geometry.spacing)
        if changed is None or np.array_equal(changed, base):
            out.append(base_scores)  # unchanged output: skip the distance transforms
        else:
            out.append(region_metrics(changed, gt, regions, geometry.spacing, ("dice", "hd95")))
    return out, multifocal_regions(gt, regions)


def _mean_scores(
    pairs: Mapping[str, tuple[Path, Path]],
    accepted: list[dict[str, Any]],
    candidates: list[dict[str, Any] | None],
    regions: dict[str, tuple[int, ...]],
    num_processes: int,
    mappings: tuple[Mapping[int, int] | None, Mapping[int, int] | None],
) -> tuple[list[Scores], list[CaseResult]]:
    """Mean scores per candidate, and every case's own results."""
    jobs = [(p, g, accepted, candidates, regions, *mappings) for p, g in pairs.values()]
    per_case: list[CaseResult] = run_parallel(_case_scores, jobs, num_processes)
    means = [
        {
            r: {
                m: float(np.mean([case[i][r][m] for case, _ in per_case])) for m in ("dice", "hd95")
            }
            for r in regions
        }
        for i in range(len(candidates))
    ]
    return means, per_case


def _cuts_multifocal(
    per_case: Sequence[CaseResult], index: int, region: str, base_index: int
) -> bool:
    """True when candidate ``index`` lowers the region's Dice of a case whose reference region
    is multifocal, against candidate ``base_index`` (the accepted steps alone)."""
    return any(
        multifocal[region]
        and scores[index][region]["dice"] < scores[base_index][region]["dice"] - _EPS
        for scores, multifocal in per_case
    )


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
    distant = (
        {"rule": "remove_distant_components", **base, "min_distance_mm": d, "max_volume_mm3": v}
        for d in DISTANT_MM
        for v in DISTANT_MAX_MM3
    )
    return [
        *({"rule": "remove_small_components", **base, "min_voxels": int(t)} for t in thresholds),
        *distant,
        {"rule": "keep_largest_component", **base},
    ]


def determine_from_pairs(
    pairs: Mapping[str, tuple[Path, Path]],
    dataset_json: DatasetJson,
    *,
    num_processes: int = 1,
    component_thresholds: Sequence[int] = COMPONENT_THRESHOLDS,
    et_thresholds: Sequence[int] = ET_THRESHOLDS,
    without: Collection[str] = (),
    pred_mapping: Mapping[int, int] | None = None,
    gt_mapping: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """The decision for ``{case: (prediction, reference)}``; see ``determine_postprocessing``.

    ``without``: rules (``rules.RULES`` names) not to try. ``pred_mapping`` / ``gt_mapping``
    map file values onto the dataset's labels (``LabelManager.file_mapping``); None: the
    dataset's own values.
    """
    if not pairs:
        raise TumorsegError("no cases to determine post-processing on; check the folders")
    if unknown := sorted(set(without) - set(RULES)):
        raise TumorsegError(
            f"unknown post-processing rule {', '.join(unknown)}; valid: {', '.join(RULES)}"
        )
    labels = LabelManager.from_dataset_json(dataset_json)
    regions = labels.regions()
    tumour = labels.tumour_labels()
    identity = labels.file_mapping(FileConvention.INTERNAL)
    mappings = (pred_mapping or identity, gt_mapping or identity)
    accepted: list[dict[str, Any]] = []
    (baseline,), _ = _mean_scores(pairs, accepted, [None], regions, num_processes, mappings)
    current = baseline
    tried: list[dict[str, Any]] = []
    stages = [
        (
            r,
            [
                c
                for c in _candidates_for(r, v, regions, component_thresholds)
                if c["rule"] not in without
            ],
        )
        for r, v in regions.items()
    ]
    if (
        tumour is not None
        and "ET" in regions
        and et_thresholds
        and "small_et_to_necrosis" not in without
    ):
        stages.append(
            (
                "ET",
                [
                    {
                        "rule": "small_et_to_necrosis",
                        "min_voxels": int(t),
                        "et_label": tumour[TumorLabel.ENHANCING],
                        "necrosis_label": tumour[TumorLabel.NECROSIS],
                    }
                    for t in et_thresholds
                ],
            )
        )
    for region, candidates in (stage for stage in stages if stage[1]):
        # The last entry (None) scores the accepted steps alone, per case, for the guard.
        scores, per_case = _mean_scores(
            pairs, accepted, [*candidates, None], regions, num_processes, mappings
        )
        base = len(candidates)
        blocked = {
            i
            for i, c in enumerate(candidates)
            if c["rule"] in WHOLE_COMPONENT_RULES and _cuts_multifocal(per_case, i, region, base)
        }
        order = sorted(
            range(len(candidates)),
            key=lambda i: (-scores[i][region]["dice"], scores[i][region]["hd95"]),
        )
        chosen = next(
            (i for i in order if i not in blocked and _improves(scores[i], current, region)),
            None,
        )
        for i, candidate in enumerate(candidates):
            entry = {"step": candidate, "scores": scores[i], "accepted": i == chosen}
            if i in blocked:
                entry["rejected"] = "lowers the Dice of a case with a multifocal reference"
            tried.append(entry)
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
    without: Collection[str] = (),
) -> dict[str, Any]:
    """Decide post-processing on CV predictions in ``pred_folder`` against ``gt_folder``.

    ``dataset_json`` (parsed, or a path to it / its dataset folder) gives the labels, regions
    and file ending; each folder is read in its own convention (``labels.json``, else the rule
    of ``tumorseg.data.labels.default_convention``). Returns the JSON-able decision (``steps``
    to pass to ``apply_postprocessing``, plus ``baseline`` / ``final`` mean scores and every
    ``tried`` candidate); writes it atomically to ``output`` when given.
    """
    dataset_folder = None
    if not isinstance(dataset_json, DatasetJson):
        path = Path(dataset_json)
        dataset_folder = path if path.is_dir() else path.parent
        dataset_json = DatasetJson.read(path)
    manager = LabelManager.from_dataset_json(dataset_json)
    labels = resolve_labels(Path(pred_folder), Path(gt_folder), manager, dataset_folder)
    pairs, _ = pair_folders(Path(pred_folder), Path(gt_folder), dataset_json.file_ending)
    check_geometry(pairs)
    decision = determine_from_pairs(
        pairs,
        dataset_json,
        num_processes=num_processes,
        component_thresholds=component_thresholds,
        et_thresholds=et_thresholds,
        without=without,
        pred_mapping=manager.file_mapping(labels.prediction),
        gt_mapping=manager.file_mapping(labels.reference),
    )
    if output is not None:
        write_json(output, decision)
    return decision
