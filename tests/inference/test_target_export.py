"""Target maps (the recurrence region) beside the label maps: names, values, geometry, records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.inference.tiny_run import GEOMETRY, tiny_dataset_json
from tumorseg.data.io import read_image
from tumorseg.data.labels import LabelManager, read_label_record
from tumorseg.data.targets import target_of_folder
from tumorseg.evaluation.summary import case_files
from tumorseg.inference.export import load_probabilities, write_prediction


def test_segmentation_and_recurrence_maps_are_written_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.random((4, *GEOMETRY.shape)).astype(np.float32)  # WT, TC, ET, recurrence
    dataset = tiny_dataset_json()
    # A case named like the target folder must not collide with it.
    for case in ("c1", "recurrence"):
        write_prediction(
            tmp_path,
            case,
            probabilities,
            GEOMETRY,
            dataset,
            "sigmoid",
            save_probabilities=True,
            target_outputs=("recurrence",),
        )
    assert sorted(case_files(tmp_path)) == ["c1", "recurrence"]  # label maps only
    binary, geometry = read_image(tmp_path / "recurrence" / "c1.nii.gz")
    probability, _ = read_image(tmp_path / "recurrence_probability" / "c1.nii.gz")
    assert geometry.mismatch(GEOMETRY) is None
    assert probability.dtype == np.float32
    np.testing.assert_allclose(probability, probabilities[3], atol=1e-6)
    np.testing.assert_array_equal(binary, (probabilities[3] > 0.5).astype(np.uint8))
    assert target_of_folder(tmp_path / "recurrence") == "recurrence"
    assert target_of_folder(tmp_path) is None  # the label maps' folder is not a target folder
    labels, _ = read_image(tmp_path / "c1.nii.gz")
    manager = LabelManager.from_dataset_json(dataset)
    expected = manager.to_file(
        manager.probabilities_to_labels(probabilities[:3], "sigmoid"), manager.export_convention
    )
    np.testing.assert_array_equal(labels, expected)
    saved, _, _ = load_probabilities(tmp_path / "c1.npz")
    assert saved.shape[0] == 3  # segmentation channels only
    record = read_label_record(tmp_path / "recurrence")
    assert record is not None
    assert record.manager.labels == {"background": 0, "recurrence": 1}
