"""``step_problem`` accepts every step tumorseg writes and names the key of a bad one."""

from __future__ import annotations

import pytest

from tumorseg.data.labels.manager import brats_regions
from tumorseg.postprocessing.determine import _candidates_for
from tumorseg.postprocessing.rules import preset_decision, step_problem


def test_written_steps_pass() -> None:
    steps = list(preset_decision("pairing")["steps"])
    for region, labels in brats_regions().items():
        steps += _candidates_for(region, labels, brats_regions(), (10, 50))
    steps.append({"rule": "remove_small_components", "labels": [1], "min_volume_mm3": 12.5})
    steps.append({"rule": "remove_small_components", "labels": [2], "min_voxels": 10.0})
    assert [step_problem(s, f"steps[{i}]") for i, s in enumerate(steps)] == [None] * len(steps)


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ([1, 2], "steps[3] is [1, 2], not a step object"),
        ({"rule": "keep_largest_component", "labels": [True]}, "steps[3].labels is [true]"),
        ({"rule": "keep_largest_component", "labels": []}, "steps[3].labels is []"),
        ({"rule": "small_et_to_necrosis", "min_voxels": 1.5}, "steps[3].min_voxels is 1.5"),
        ({"rule": "small_et_to_necrosis", "min_voxels": 9, "et_label": -3},
         "steps[3].et_label is -3, not a label value"),
        ({"rule": "remove_small_components", "labels": [1], "min_volume_mm3": "big"},
         'steps[3].min_volume_mm3 is "big", not a volume of at least 0'),
        ({"rule": "remove_distant_components", "labels": [1], "max_volume_mm3": 10},
         "steps[3].min_distance_mm is null, not a distance of at least 0"),
        ({"rule": "remove_distant_components", "labels": [1], "min_distance_mm": 5,
          "min_voxels": 3}, "steps[3] (remove_distant_components) has no size ('max_voxels'"),
    ],
)  # fmt: skip
def test_bad_steps_name_the_key(step: object, problem: str) -> None:
    found = step_problem(step, "steps[3]")
    assert found is not None
    assert found.startswith(problem)
