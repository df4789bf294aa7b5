from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tests.utils.owners import dead_owner_tag
from tumorseg.data.raw_dataset import RawDataset
from tumorseg.errors import TumorsegError
from tumorseg.planning.fingerprint import compute_fingerprint
from tumorseg.planning.planner import plan_experiment
from tumorseg.planning.plans import Plans
from tumorseg.preprocessing import storage
from tumorseg.preprocessing.runner import preprocess_dataset, preprocessing_hash


def _plans(folder: Path) -> Plans:
    dataset = RawDataset.open(folder)
    return plan_experiment(
        compute_fingerprint(dataset),
        dataset.dataset_json,
        memory_budget_gb=1,
        device="cpu",
        configurations=("2d", "3d_fullres"),
    )


def test_preprocess_skip_and_invalidate(tiny_dataset: Path, tmp_path: Path) -> None:
    plans = _plans(tiny_dataset)
    out = tmp_path / "pre"
    assert preprocess_dataset(tiny_dataset, out, plans, ["2d", "3d_fullres"]) == {
        "tumorsegPlans_fullres": 6
    }
    folder = out / "tumorsegPlans_fullres"
    assert storage.list_cases(folder) == [f"tiny_{i:03d}" for i in range(6)]
    data, seg, props = storage.read_case(folder, "tiny_000")
    assert seg is not None
    assert data.shape[1:] == seg.shape[1:]
    assert props["plans_hash"] == preprocessing_hash(plans, plans.configurations["3d_fullres"])
    assert props["case_id"] == "tiny_000"
    # Idempotent: a rerun writes nothing; a batch-size edit does not invalidate the data.
    edited = dataclasses.replace(
        plans,
        configurations={
            k: dataclasses.replace(c, batch_size=7) for k, c in plans.configurations.items()
        },
    )
    assert preprocess_dataset(tiny_dataset, out, edited, ["3d_fullres"]) == {
        "tumorsegPlans_fullres": 0
    }
    # A spacing change invalidates every case.
    changed = dataclasses.replace(
        plans,
        configurations={
            "3d_fullres": dataclasses.replace(
                plans.configurations["3d_fullres"], spacing=(2.0, 3.0, 3.0)
            )
        },
    )
    assert preprocess_dataset(tiny_dataset, out, changed, ["3d_fullres"]) == {
        "tumorsegPlans_fullres": 6
    }
    assert storage.read_case(folder, "tiny_000")[0].shape[2] < data.shape[2]


def test_resume_after_kill(tiny_dataset: Path, tmp_path: Path) -> None:
    plans = _plans(tiny_dataset)
    out = tmp_path / "pre"
    preprocess_dataset(tiny_dataset, out, plans, ["3d_fullres"])
    folder = out / "tumorsegPlans_fullres"
    reference = {c: storage.read_case(folder, c, mmap=False)[0] for c in ("tiny_001", "tiny_002")}
    # A kill mid-write leaves: arrays without properties, a truncated array, a temp file.
    (folder / "tiny_001.json").unlink()
    (folder / "tiny_002.json").unlink()
    (folder / "tiny_002.npy").write_bytes(b"\x93NUMPY garbage")
    temp = folder / f".tiny_003.npy.{dead_owner_tag()}.abcd1234.tmp.npy"
    temp.write_bytes(b"partial")
    assert storage.list_cases(folder) == ["tiny_000", "tiny_003", "tiny_004", "tiny_005"]
    assert preprocess_dataset(tiny_dataset, out, plans, ["3d_fullres"]) == {
        "tumorsegPlans_fullres": 2
    }
    assert len(storage.list_cases(folder)) == 6
    assert not temp.exists()
    for case, expected in reference.items():
        np.testing.assert_array_equal(storage.read_case(folder, case)[0], expected)
        assert json.loads((folder / f"{case}.json").read_text())["case_id"] == case


def test_corrupt_case_stops_with_one_line(tiny_dataset: Path, tmp_path: Path) -> None:
    plans = _plans(tiny_dataset)
    path = tiny_dataset / "labelsTr" / "tiny_004.nii.gz"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(TumorsegError, match=r"tiny_004.nii.gz: cannot be read") as exc:
        preprocess_dataset(tiny_dataset, tmp_path / "pre", plans, ["3d_fullres"])
    assert "\n" not in str(exc.value)
    assert "tiny_004" not in storage.list_cases(tmp_path / "pre" / "tumorsegPlans_fullres")
