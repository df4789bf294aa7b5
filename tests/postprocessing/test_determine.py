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
