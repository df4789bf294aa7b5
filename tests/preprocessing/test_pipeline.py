from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.planning.fingerprints import dataset_json, uniform
from tests.tiny_data import tiny_case
from tumorseg.data.io import Geometry
from tumorseg.errors import TumorsegError
from tumorseg.planning.planner import plan_experiment
from tumorseg.planning.plans import ConfigurationPlan, Plans
from tumorseg.preprocessing.pipeline import preprocess_case, revert_to_original

PROPERTY_KEYS = {
    "geometry",
    "crop_bbox",
    "shape_after_crop",
    "shape_after_resampling",
    "spacing_after_resampling",
    "class_locations",
    "targets",
    "target_locations",
    "lookalike_locations",
}


def _case(shape=(20, 24, 24), spacing=(2.0, 2.0, 2.0)):
    images, label = tiny_case(np.random.default_rng(3), shape)
    padded_images = [np.pad(img, 3) for img in images]  # zero margin so the crop matters
    geometry = Geometry(
        tuple(s + 6 for s in shape), spacing, (1.0, 2.0, 3.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    return padded_images, np.pad(label, 3), geometry


def _plans(spacing, shape, transpose=None, target_spacing=None) -> tuple[Plans, ConfigurationPlan]:
    plans = plan_experiment(
        uniform(spacing, shape), dataset_json(), memory_budget_gb=1, device="cpu"
    )
    if transpose is not None:
        plans = dataclasses.replace(plans, transpose_forward=transpose)
    config = plans.configurations["3d_fullres"]
    if target_spacing is not None:
        config = dataclasses.replace(config, spacing=target_spacing)
    return plans, config


def test_no_resampling_case_is_cropped_normalised_and_sampled() -> None:
    images, label, geometry = _case()
    plans, config = _plans((2, 2, 2), (20, 24, 24))
    recurrence = (label == 3).astype(np.uint8)
    data, seg, props = preprocess_case(
        images, geometry, plans, config, label, {"recurrence": recurrence}
    )
    assert set(props) == PROPERTY_KEYS
    assert data.dtype == np.float32
    assert seg is not None
    assert seg.dtype == np.int8
    assert data.shape[0] == 4
    assert seg.shape[0] == 2
    assert tuple(data.shape[1:]) == tuple(props["shape_after_crop"]) == tuple(seg.shape[1:])
    assert all(lo >= 3 for lo, _ in props["crop_bbox"])
    brain = np.any(data != 0, axis=0)
    for channel in data:
        assert abs(channel[brain].mean()) < 1e-3
        assert channel[brain].std() == pytest.approx(1.0, abs=1e-3)
    assert props["targets"] == ["recurrence"]
    assert np.array_equal(seg[1], seg[0] == 3)
    for value, coords in props["class_locations"].items():
        assert coords
        assert all(seg[0][tuple(c)] == int(value) for c in coords[:50])
    assert set(props["class_locations"]) == {"1", "2", "3"}
    assert props["target_locations"]["recurrence"]


def test_round_trip_with_resampling_and_transpose() -> None:
    # Thick slices along array axis 2, resampled in-plane to a coarser grid.
    images, label, geometry = _case(shape=(30, 32, 12), spacing=(1.0, 1.0, 3.0))
    plans, config = _plans(
        (1.0, 1.0, 3.0), (30, 32, 12), transpose=(2, 0, 1), target_spacing=(3.0, 1.5, 1.5)
    )
    data, seg, props = preprocess_case(images, geometry, plans, config, label)
    assert seg is not None
    crop_shape = props["shape_after_crop"]
    expected = (crop_shape[2], round(crop_shape[0] / 1.5), round(crop_shape[1] / 1.5))
    assert data.shape[1:] == expected == seg.shape[1:]
    # One-hot of the preprocessed label, mapped back, must reproduce the original label.
    onehot = np.stack([seg[0] == k for k in range(4)]).astype(np.float32)
    back = revert_to_original(onehot, props, plans, config, activation="softmax")
    assert back.shape == (4, *geometry.shape)
    restored = back.argmax(axis=0)
    tumour = label > 0
    assert (restored == label).mean() > 0.97
    assert (restored[tumour] == label[tumour]).mean() > 0.8
    # The image, mapped back, is close to the normalised input inside the brain.
    reference, _, _ = preprocess_case(
        images, geometry, *_plans((1.0, 1.0, 3.0), (30, 32, 12), (2, 0, 1))
    )
    image_back = revert_to_original(data[:1], props, plans, config)[0]
    ref_back = revert_to_original(reference[:1], props, plans, config)[0]
    brain = images[0] != 0
    assert np.corrcoef(image_back[brain], ref_back[brain])[0, 1] > 0.9


def test_revert_pads_background_outside_crop() -> None:
    images, _label, geometry = _case()
    plans, config = _plans((2, 2, 2), (20, 24, 24))
    data, _, props = preprocess_case(images, geometry, plans, config)
    regions = np.full((3, *data.shape[1:]), 0.7, np.float32)
    back = revert_to_original(regions, props, plans, config)
    assert back[:, 0, 0, 0].tolist() == [0.0, 0.0, 0.0]
    softmax = revert_to_original(regions, props, plans, config, activation="softmax")
    assert softmax[:, 0, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert softmax[1, 10, 12, 12] == pytest.approx(0.7)


def test_prediction_without_label() -> None:
    images, _, geometry = _case()
    plans, config = _plans((2, 2, 2), (20, 24, 24))
    data, seg, props = preprocess_case(images, geometry, plans, config)
    assert seg is None
    assert props["class_locations"] == {}
    assert data.shape[0] == 4


def test_wrong_channel_count_is_an_error() -> None:
    images, label, geometry = _case()
    plans, config = _plans((2, 2, 2), (20, 24, 24))
    with pytest.raises(TumorsegError, match="case has 2 channels"):
        preprocess_case(images[:2], geometry, plans, config, label)


def test_a_channel_without_signal_reaches_the_network_as_zeros() -> None:
    """``predict --missing-modality zero`` hands an absent channel over as zeros; after
    cropping, normalisation and cubic resampling the network must see exactly 0 there, while
    the other channels keep their z-scores (crop from the channels with signal)."""
    images, _, geometry = _case()
    plans, config = _plans((2, 2, 2), (20, 24, 24), target_spacing=(1.5, 2.5, 2.0))
    full, _, _ = preprocess_case(images, geometry, plans, config)
    images[2] = np.zeros_like(images[2])
    data, _, _ = preprocess_case(images, geometry, plans, config)
    assert not data[2].any()
    np.testing.assert_array_equal(data[[0, 1, 3]], full[[0, 1, 3]])
