from __future__ import annotations

import numpy as np
import pytest

from tumorseg.errors import TumorsegError
from tumorseg.postprocessing.components import (
    enclosing_fill,
    keep_largest_component,
    remove_distant_components,
    remove_small_components,
)
from tumorseg.postprocessing.rules import (
    apply_postprocessing,
    preset_decision,
    small_et_to_necrosis,
)

WT = [1, 2, 3]


def _two_objects() -> np.ndarray:
    labels = np.zeros((6, 8, 8), np.uint8)
    labels[1:4, 1:4, 1:4] = 2  # 27 voxels
    labels[2, 2, 2] = 3
    labels[4, 6, 6] = 1  # 1 voxel, separate
    labels[5, 7, 7] = 1  # touches the previous one at a corner: same 26-connected component
    return labels


def test_remove_small_components_and_keep_largest() -> None:
    mask = _two_objects() > 0
    assert remove_small_components(mask, 3).sum() == 27
    assert remove_small_components(mask, 2).sum() == 29  # the corner pair has 2 voxels
    assert keep_largest_component(mask).sum() == 27
    assert not keep_largest_component(np.zeros((3, 3), bool)).any()


def test_remove_distant_components_measures_in_mm() -> None:
    mask = np.zeros((12, 12, 30), bool)
    mask[0:4, 0:4, 0:4] = True  # the main lesion: 64 voxels
    mask[8, 0, 0] = True  # 4 voxels below it along axis 0: 12 mm at 3 mm spacing
    mask[0, 0, 10] = True  # 6 voxels along axis 2: 6 mm at 1 mm spacing
    mask[0:2, 0:2, 24:26] = True  # a distant 8-voxel focus, 20 voxels (mm) away
    spacing = (3.0, 1.0, 1.0)
    kept = remove_distant_components(mask, spacing, min_distance_mm=10.0, max_voxels=5)
    assert not kept[8, 0, 0]  # 12 mm > 10 mm, 1 voxel < 5: removed
    assert kept[0, 0, 10]  # 6 mm: a satellite, kept
    assert kept[0:2, 0:2, 24:26].all()  # far, but 8 voxels >= 5: a focus, kept
    assert kept.sum() == mask.sum() - 1
    # A larger cap removes the distant focus too; the main lesion always stays.
    assert remove_distant_components(mask, spacing, 10.0, 100).sum() == 64 + 1
    assert np.array_equal(remove_distant_components(mask, spacing, 25.0, 100), mask)
    single = np.zeros((4, 4, 4), bool)
    single[1:3, 1:3, 1:3] = True
    assert np.array_equal(remove_distant_components(single, spacing, 0.0, 100), single)


def test_small_et_to_necrosis() -> None:
    labels = _two_objects()
    relabelled = small_et_to_necrosis(labels, min_voxels=2)
    assert (relabelled == 3).sum() == 0
    assert relabelled[2, 2, 2] == 1
    assert np.array_equal(small_et_to_necrosis(labels, min_voxels=1), labels)


def test_enclosing_fill_of_nested_regions() -> None:
    regions = [(1, 2, 3), (1, 3), (3,)]
    assert enclosing_fill((1, 2, 3), regions) == 0
    assert enclosing_fill((1, 3), regions) == 2
    assert enclosing_fill((3,), regions) == 1


def test_apply_steps_in_order_with_fill_and_mm3_sizes() -> None:
    labels = _two_objects()
    decision = {
        "steps": [
            {
                "rule": "remove_small_components",
                "region": "WT",
                "labels": WT,
                "min_voxels": 3,
                "fill": 0,
            },
            {"rule": "keep_largest_component", "region": "ET", "labels": [3], "fill": 1},
        ]
    }
    out = apply_postprocessing(labels, decision, (1.0, 1.0, 1.0))
    assert out[4, 6, 6] == 0
    assert out[5, 7, 7] == 0
    assert (out == 2).sum() == 26
    assert out[2, 2, 2] == 3
    assert labels[4, 6, 6] == 1  # the input is not modified
    by_volume = {
        "steps": [
            {
                "rule": "remove_small_components",
                "region": "WT",
                "labels": WT,
                "min_volume_mm3": 16.0,
                "fill": 0,
            }
        ]
    }
    # 2-voxel component at 8 mm^3 per voxel = 16 mm^3: kept; at 1 mm^3 per voxel: removed
    assert apply_postprocessing(labels, by_volume, (2.0, 2.0, 2.0))[4, 6, 6] == 1
    assert apply_postprocessing(labels, by_volume, (1.0, 1.0, 1.0))[4, 6, 6] == 0


def test_pairing_preset() -> None:
    decision = preset_decision("pairing", et_threshold=5)
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 2
    labels[4:6, 4:6, 4] = 3  # 4 ET voxels < 5
    labels[15:17, 15:17, 15:17] = 2  # 8 voxels < 10: dropped
    out = apply_postprocessing(labels, decision, (1.0, 1.0, 1.0))
    assert (out[15:17, 15:17, 15:17] == 0).all()
    assert (out == 3).sum() == 0
    assert (out == 1).sum() == 4
    with pytest.raises(TumorsegError, match="valid: pairing"):
        preset_decision("unknown")


def test_unknown_rule_is_an_error() -> None:
    with pytest.raises(TumorsegError, match="unknown post-processing rule"):
        apply_postprocessing(np.zeros((2, 2)), {"steps": [{"rule": "blur"}]}, (1.0, 1.0))
