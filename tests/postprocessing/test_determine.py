from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.evaluation.helpers import write_labels
from tumorseg.data.dataset_json import brats_dataset_json
from tumorseg.data.labels import LabelConvention
from tumorseg.postprocessing.determine import determine_postprocessing
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
    assert not any(s["rule"] == "keep_largest_component" for s in decision["steps"])
    refused = [t for t in decision["tried"] if t["step"]["rule"] == "keep_largest_component"]
    wt = next(t for t in refused if t["step"]["region"] == "WT")
    assert wt["rejected"].startswith("lowers the Dice of a case with a multifocal reference")
    assert wt["scores"]["WT"]["dice"] > decision["baseline"]["WT"]["dice"]
    # Without a multifocal case in the cross-validation, CV supports the rule.
    refs, preds = zip(*unifocal, strict=True)
    pred, gt = _write(tmp_path / "without", list(refs), list(preds))
    decision = determine_postprocessing(pred, gt, DATASET, et_thresholds=())
    first = decision["steps"][0]
    assert (first["rule"], first["region"]) == ("keep_largest_component", "WT")
