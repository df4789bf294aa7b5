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


def _lookalike_volume() -> tuple[np.ndarray, np.ndarray]:
    """A 30^3 brain at 2 mm: tumour at one corner, a bright FLAIR spot 13 voxels (26 mm) from
    it, a bright FLAIR spot 3 voxels (6 mm) from it, a bright T1 spot (T1 is not a look-alike
    contrast), a bright T1c spot far away; channels T1, T1c, T2, FLAIR."""
    rng = np.random.default_rng(0)
    data = rng.normal(0, 0.1, (4, 30, 30, 30)).astype(np.float32)
    data[:, :2] = 0  # outside the brain
    seg = np.zeros((30, 30, 30), np.int8)
    seg[5:9, 5:9, 5:9] = 2
    data[3, 5:9, 5:9, 5:9] = 3.0  # the tumour is bright in FLAIR
    data[3, 20:22, 20:22, 20:22] = 2.0  # far look-alike, 8 voxels
    data[3, 5:7, 5:7, 11:13] = 2.0  # 3 voxels from the tumour: a border, not a look-alike
    data[0, 25:27, 5:7, 5:7] = 2.0  # bright T1
    data[1, 24:26, 24:26, 24:26] = 2.0  # far T1c look-alike
    return data, seg


def test_lookalikes_are_bright_flair_and_t1c_far_from_the_tumour() -> None:
    from scipy import ndimage

    from tumorseg.preprocessing.pipeline import lookalike_locations

    data, seg = _lookalike_volume()
    rng = np.random.default_rng(1)
    found = lookalike_locations(data, seg, ["T1", "T1c", "T2", "FLAIR"], [2.0] * 3, rng)
    assert set(found) == {"FLAIR", "T1c"}
    flair = {tuple(v) for v in found["FLAIR"]}
    far_spot = {(z, y, x) for z in (20, 21) for y in (20, 21) for x in (20, 21)}
    assert far_spot <= flair
    # independent check: every location is brain, not tumour, >= 10 mm from it, top 1 %
    distance = ndimage.distance_transform_edt(seg == 0, sampling=2.0)
    for z, y, x in flair:
        assert seg[z, y, x] == 0
        assert data[:, z, y, x].any()
        assert distance[z, y, x] >= 10.0
    near_spot = {(z, y, x) for z in (5, 6) for y in (5, 6) for x in (11, 12)}
    assert not near_spot & flair
    eligible = (data != 0).any(0) & (seg == 0) & (distance >= 10.0)
    assert len(flair) == int((data[3][eligible] > np.percentile(data[3][eligible], 99)).sum())
    t1c = {tuple(v) for v in found["T1c"]}
    assert {(z, y, x) for z in (24, 25) for y in (24, 25) for x in (24, 25)} <= t1c
    assert lookalike_locations(data[:1], seg, ["T1"], [2.0] * 3, rng) == {}


def test_lookalike_oversampling_shares_the_batch() -> None:
    from tumorseg.trainers.sampling import LookalikeOversampling

    properties = {
        "class_locations": {"2": [[6, 6, 6]]},
        "lookalike_locations": {"FLAIR": [[20, 20, 20]], "T1c": [[25, 25, 25]]},
    }
    policy = LookalikeOversampling(0.33, 0.33)
    assert policy.counts(2) == (1, 1)
    assert policy.counts(1) == (0, 1)  # the only sample stays a foreground one
    assert policy.counts(6) == (2, 2)
    rng = np.random.default_rng(0)
    drawn = [[policy.centre(rng, s, 6, properties) for s in range(6)] for _ in range(200)]
    assert all(batch[0] is None and batch[1] is None for batch in drawn)
    assert all(batch[4] == [6, 6, 6] == batch[5] for batch in drawn)
    hard = Counter(tuple(batch[s]) for batch in drawn for s in (2, 3))
    assert set(hard) == {(20, 20, 20), (25, 25, 25)}
    # preprocessed before look-alikes existed: random there, foreground still forced
    old = {"class_locations": {"2": [[6, 6, 6]]}}
    assert policy.centre(rng, 2, 6, old) is None
    assert policy.centre(rng, 5, 6, old) == [6, 6, 6]


def test_the_loop_setting_turns_lookalike_sampling_on() -> None:
    from tumorseg.trainers.hooks import sampling_policy_for
    from tumorseg.trainers.sampling import LookalikeOversampling
    from tumorseg.training.config import LoopSettings

    plain = object()  # a trainer without its own policy
    assert isinstance(sampling_policy_for(plain, LoopSettings()), ForegroundOversampling)
    chosen = sampling_policy_for(plain, LoopSettings(oversample_lookalikes=0.5))
    assert chosen == LookalikeOversampling(LoopSettings().oversample_foreground, 0.5)
