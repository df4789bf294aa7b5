from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.evaluation.helpers import write_labels
from tumorseg.data.dataset_json import brats_dataset_json
from tumorseg.data.labels import LabelConvention
from tumorseg.postprocessing.determine import WHOLE_COMPONENT_RULES, determine_postprocessing
from tumorseg.postprocessing.rules import apply_postprocessing

SHAPE = (16, 16, 16)
DATASET = brats_dataset_json(["T1", "T1c", "T2", "FLAIR"], 4, LabelConvention.BRATS2023)


def _reference(i: int) -> np.ndarray:
    """Two true lesions: a 64-voxel cube (27 voxels necrosis inside) and a 27-voxel cube."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:6, 2:6, 2 + i : 6 + i] = 2
    labels[2:5, 2:5, 2 + i : 5 + i] = 1
    labels[10:13, 10:13, 10:13] = 2
    return labels


def _write(tmp_path: Path, refs: list[np.ndarray], preds: list[np.ndarray]) -> tuple[Path, Path]:
    for i, (ref, pred) in enumerate(zip(refs, preds, strict=True)):
        write_labels(tmp_path / "gt", f"c{i}", ref, spacing=(1.0, 1.0, 1.0))
        write_labels(tmp_path / "pred", f"c{i}", pred, spacing=(1.0, 1.0, 1.0))
    return tmp_path / "pred", tmp_path / "gt"


def _spurious(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    out[14, 1:3, 14] = 2  # a 2-voxel false edema component far from both lesions
    return out


def test_removal_of_small_spurious_components_is_chosen(tmp_path: Path) -> None:
    refs = [_reference(i) for i in range(4)]
    preds = [_spurious(r) for r in refs]
    pred, gt = _write(tmp_path, refs, preds)
    decision = determine_postprocessing(pred, gt, DATASET, output=tmp_path / "pp.json")
    wt_steps = [s for s in decision["steps"] if s["region"] == "WT"]
    # 10 voxels removes only the spurious pair; 50 (or keeping the largest) would drop the
    # true 27-voxel lesion.
    assert wt_steps == [
        {
            "rule": "remove_small_components",
            "region": "WT",
            "labels": [1, 2, 3],
            "fill": 0,
            "min_voxels": 10,
        }
    ]
    assert decision["final"]["WT"]["dice"] == 1.0 > decision["baseline"]["WT"]["dice"]
    assert (tmp_path / "pp.json").is_file()
    for ref, prd in zip(refs, preds, strict=True):
        assert np.array_equal(apply_postprocessing(prd, decision, (1.0, 1.0, 1.0)), ref)


def test_removal_is_not_chosen_when_it_hurts(tmp_path: Path) -> None:
    refs = [_spurious(_reference(i)) for i in range(4)]  # the small components are real
    pred, gt = _write(tmp_path, refs, refs)
    decision = determine_postprocessing(pred, gt, DATASET)
    assert decision["steps"] == []
    assert any(not t["accepted"] for t in decision["tried"])


def test_small_et_to_necrosis_is_chosen_only_when_it_helps(tmp_path: Path) -> None:
    refs = [_reference(i) for i in range(3)]
    preds = []
    for ref in refs:
        pred = ref.copy()
        pred[pred == 1] = 3  # 27 voxels of necrosis wrongly called enhancing
        preds.append(pred)
    pred_folder, gt_folder = _write(tmp_path / "a", refs, preds)
    decision = determine_postprocessing(
        pred_folder, gt_folder, DATASET, component_thresholds=(10,), et_thresholds=(100,)
    )
    assert decision["steps"] == [
        {"rule": "small_et_to_necrosis", "min_voxels": 100, "et_label": 3, "necrosis_label": 1}
    ]
    assert decision["final"]["ET"]["dice"] == 1.0
    # When the small enhancing regions are real, relabelling them would hurt: not chosen.
    pred_folder, gt_folder = _write(tmp_path / "b", preds, preds)
    kept = determine_postprocessing(
        pred_folder, gt_folder, DATASET, component_thresholds=(10,), et_thresholds=(100,)
    )
    assert kept["steps"] == []


def _two_blobs(second_is_true: bool) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) on a 32^3 grid: a 1728-voxel lesion, and a 1100-voxel blob that
    is a second true focus (predicted too) or a false positive (predicted only)."""
    ref = np.zeros((32, 32, 32), np.uint8)
    ref[2:14, 2:14, 2:14] = 2
    pred = ref.copy()
    pred[20:30, 20:30, 19:30] = 2  # 10 x 10 x 11 = 1100 voxels, above every size threshold
    return (pred.copy() if second_is_true else ref), pred


def test_keep_largest_is_refused_when_it_cuts_a_multifocal_tumour(tmp_path: Path) -> None:
    unifocal = [_two_blobs(second_is_true=False) for _ in range(3)]
    multifocal = _two_blobs(second_is_true=True)
    refs, preds = zip(*[*unifocal, multifocal], strict=True)
    pred, gt = _write(tmp_path / "with", list(refs), list(preds))
    decision = determine_postprocessing(pred, gt, DATASET, et_thresholds=())
    # Keeping the largest component raises the mean WT Dice (3 cases 0.76 -> 1, one 1 -> 0.76),
    # but it would delete the second focus of the multifocal case: refused.
    assert not any(s["rule"] in WHOLE_COMPONENT_RULES for s in decision["steps"])
    refused = [t for t in decision["tried"] if t["step"]["rule"] == "keep_largest_component"]
    wt = next(t for t in refused if t["step"]["region"] == "WT")
    assert wt["rejected"].startswith("lowers the Dice of a case with a multifocal reference")
    assert wt["scores"]["WT"]["dice"] > decision["baseline"]["WT"]["dice"]
    # Without a multifocal case in the cross-validation, CV supports the rule.
    refs, preds = zip(*unifocal, strict=True)
    pred, gt = _write(tmp_path / "without", list(refs), list(preds))
    decision = determine_postprocessing(pred, gt, DATASET, et_thresholds=())
    # (Removing the distant blob does the same here and is tried first.)
    first = decision["steps"][0]
    assert first["rule"] in WHOLE_COMPONENT_RULES
    assert first["region"] == "WT"
    assert decision["final"]["WT"]["dice"] == 1.0


def _satellite_and_lookalike(lookalike_is_true: bool) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) on a 32^3 grid of 1 mm: a 1728-voxel lesion with a 27-voxel
    satellite 2 mm from it, and a 64-voxel blob 22 mm away that is a look-alike the model
    predicted (or, ``lookalike_is_true``, a true distant focus)."""
    ref = np.zeros((32, 32, 32), np.uint8)
    ref[2:14, 2:14, 2:14] = 2
    ref[15:18, 2:5, 2:5] = 2
    pred = ref.copy()
    pred[26:30, 26:30, 26:30] = 2
    return (pred.copy() if lookalike_is_true else ref), pred


def test_distant_lookalikes_go_where_size_rules_cannot_remove_them(tmp_path: Path) -> None:
    refs, preds = zip(*[_satellite_and_lookalike(False) for _ in range(3)], strict=True)
    pred, gt = _write(tmp_path / "lookalike", list(refs), list(preds))
    decision = determine_postprocessing(pred, gt, DATASET, et_thresholds=())
    # A size threshold of 50 keeps the 64-voxel look-alike and loses the 27-voxel satellite;
    # 200 or the largest component lose the satellite too. Only the distance rule is exact.
    first = decision["steps"][0]
    assert (first["rule"], first["region"]) == ("remove_distant_components", "WT")
    assert first["min_distance_mm"] < 22.0
    assert decision["final"]["WT"]["dice"] == 1.0
    for ref, prd in zip(refs, preds, strict=True):
        assert np.array_equal(apply_postprocessing(prd, decision, (1.0, 1.0, 1.0)), ref)


def test_distant_rule_is_refused_when_it_cuts_a_multifocal_tumour(tmp_path: Path) -> None:
    cases = [_satellite_and_lookalike(False) for _ in range(3)]
    cases.append(_satellite_and_lookalike(True))
    refs, preds = zip(*cases, strict=True)
    pred, gt = _write(tmp_path, list(refs), list(preds))
    decision = determine_postprocessing(pred, gt, DATASET, et_thresholds=())
    assert not any(s["rule"] == "remove_distant_components" for s in decision["steps"])
    distant = [
        t
        for t in decision["tried"]
        if t["step"]["rule"] == "remove_distant_components"
        and t["step"]["region"] == "WT"
        and t["step"]["min_distance_mm"] < 22.0
    ]
    assert distant
    reason = "lowers the Dice of a case with a multifocal reference"
    assert all(t["rejected"] == reason for t in distant)
    assert max(t["scores"]["WT"]["dice"] for t in distant) > decision["baseline"]["WT"]["dice"]
