"""The lesion-slices sampling policy: only slices with foreground, each equally likely."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from tests.training.tiny_preprocessed import tiny_configuration
from tumorseg.preprocessing.storage import write_case
from tumorseg.trainers.sampling import ForegroundOversampling, LesionSlices
from tumorseg.training.dataloading import PatchBatches


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


def test_the_2d_loader_with_lesion_slices_gives_only_slices_with_tumour(tmp_path: Path) -> None:
    """Through the 2d data loader: each sample is a slice with lesion and shows some of it.

    The image value encodes the slice index, so each patch says which slice it came from; the
    lesion lies on slices 10-13 of 40, in a 4 x 4 in-plane block of a 40 x 40 slice.
    """
    z = np.arange(40, dtype=np.float32)[:, None, None]
    data = np.broadcast_to(z, (40, 40, 40))[None].astype(np.float32)
    seg = np.zeros((1, 40, 40, 40), np.int8)
    seg[0, 10:14, 30:34, 30:34] = 2
    locations = {"2": np.argwhere(seg[0] == 2).tolist()}
    write_case(tmp_path, "c0", data, seg, {"class_locations": locations})
    config = tiny_configuration("2d", patch=8, batch_size=4)

    def batches(policy: object) -> PatchBatches:
        return PatchBatches(tmp_path, ["c0"], config, [0], 4, sampling=policy, augment=False)

    lesion = batches(LesionSlices())
    drawn = [lesion[i] for i in range(30)]
    slices = Counter(int(b["data"][s, 0, 0, 0]) for b in drawn for s in range(4))
    assert set(slices) == {10, 11, 12, 13}
    assert all((b["target"][s] > 0).any() for b in drawn for s in range(4))
    # nnU-Net's oversampling: two of four samples anywhere, so most of those miss the lesion.
    anywhere = batches(ForegroundOversampling(0.33))
    hits = [(anywhere[i]["target"][s] > 0).any() for i in range(30) for s in range(2)]
    assert np.mean(hits) < 0.3
