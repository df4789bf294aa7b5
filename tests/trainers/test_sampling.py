"""The lesion-slices sampling policy: only slices with foreground, each equally likely."""

from __future__ import annotations

from collections import Counter

import numpy as np

from tumorseg.trainers.sampling import LesionSlices


def test_lesion_slices_are_drawn_uniformly_and_centred_on_their_lesion() -> None:
    # Slice 2 holds 90 tumour voxels, slice 7 holds 10: by slice (the paper's data set of
    # lesion slices), not by voxel, so both come up about equally often.
    locations = {
        "1": [[2, y, x] for y in range(9) for x in range(10)],
        "3": [[7, 4, x] for x in range(10)],
    }
    policy = LesionSlices()
    rng = np.random.default_rng(0)
    centres = [policy.centre(rng, i % 2, 2, {"class_locations": locations}) for i in range(2000)]
    slices = Counter(c[0] for c in centres)
    assert set(slices) == {2, 7}
    assert abs(slices[2] - slices[7]) < 200  # 1000 each expected; sd ~ 22
    voxels = {tuple(v) for located in locations.values() for v in located}
    assert all(tuple(c) in voxels for c in centres)


def test_a_case_without_foreground_is_sampled_at_random() -> None:
    rng = np.random.default_rng(0)
    assert LesionSlices().centre(rng, 0, 2, {"class_locations": {"1": []}}) is None
    assert LesionSlices().centre(rng, 0, 2, {}) is None
