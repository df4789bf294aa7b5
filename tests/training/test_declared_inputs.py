"""Declared batch inputs: the loader delivers exactly them, aligned with the image patch."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainers.probe import RECURRENCE_LABEL, ProbeTrainer, build_probe, write_probe_inputs
from tests.training.tiny_preprocessed import DATASET, write_tiny_preprocessed
from tumorseg.constants import TrainerName
from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots
from tumorseg.preprocessing.storage import reference_path
from tumorseg.trainers import TRAINERS, build_trainer
from tumorseg.trainers.inputs import ExtraTarget, ReferenceImage, RegionMask
from tumorseg.training import augmentation
from tumorseg.training.dataloading import PatchBatches, region_mask
from tumorseg.training.loop import Loop
from tumorseg.training.run import TrainingRun, prepare_run
from tumorseg.training.steps import to_device

LOOP = {"epochs": 2, "iterations_per_epoch": 3, "val_iterations": 1, "num_workers": 0}
INPUTS = ProbeTrainer.inputs


@pytest.fixture
def probe_roots(roots: Roots) -> Roots:
    write_tiny_preprocessed(roots, with_raw=False)
    write_probe_inputs(roots.preprocessed / DATASET)
    return roots


def _probe_run(roots: Roots, configuration: str, settings: dict | None = None) -> TrainingRun:
    run = prepare_run(roots, "1", configuration, 0, loop_values=LOOP)
    return dataclasses.replace(run, trainer=build_probe(run.trainer.context, settings))


def _without_intensity(patch_size: tuple[int, ...], augment: bool = True) -> object:
    """The real pipeline minus its intensity part, so images stay comparable bit for bit."""
    return dataclasses.replace(_REAL_BUILD(patch_size, augment), intensity=())


_REAL_BUILD = augmentation.build_augmentation


@pytest.mark.parametrize("configuration", ["3d_fullres", "2.5d"])
def test_probe_trainer_receives_its_inputs_aligned_with_the_image(
    probe_roots: Roots, configuration: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spatial augmentation (rotation, scaling, mirroring) stays on; only intensity changes are
    # switched off, so the reference (2 x T1 on disk) must equal 2 x the T1 patch exactly.
    monkeypatch.setattr("tumorseg.training.dataloading.build_augmentation", _without_intensity)
    run = _probe_run(probe_roots, configuration)
    assert run.loop.augment
    loop = Loop(run, echo=False)
    loop.fit()
    trainer = run.trainer
    assert isinstance(trainer, ProbeTrainer)
    slices = run.config.input_channels_per_modality
    assert len(trainer.seen) == LOOP["epochs"] * (LOOP["iterations_per_epoch"] + 1)
    for batch in trainer.seen:
        assert set(batch) == {"data", "target", "targets", "references", "masks"}
        assert set(batch["targets"]) == {"recurrence"}
        assert set(batch["references"]) == {"pseudo_healthy"}
        assert set(batch["masks"]) == {"normal"}
        target, data = batch["target"], batch["data"]
        reference = batch["references"]["pseudo_healthy"]
        assert reference.shape == (data.shape[0], slices, *data.shape[2:])
        assert reference.dtype == torch.float32
        # Channel 0 (T1) brings the first `slices` channels of the data (modality-major).
        assert torch.equal(reference, 2 * data[:, :slices])
        recurrence = batch["targets"]["recurrence"]
        assert recurrence.dtype == torch.long
        assert torch.equal(recurrence, (target == RECURRENCE_LABEL).long())
        normal = batch["masks"]["normal"]
        assert normal.dtype == torch.bool
        assert not (normal & (target > 0)).any()
    # The patches held tumour and normal brain, so the comparisons above were not vacuous.
    assert any((b["targets"]["recurrence"] > 0).any() for b in trainer.seen)
    assert any(b["masks"]["normal"].any() for b in trainer.seen)
    # The trainer's own logs reached the history and log.txt.
    entry = loop.state.history[-1]
    assert {"recurrence_loss", "reconstruction_loss", "dice", "loss"} <= set(entry["train_logs"])
    assert "reconstruction_loss" in entry["val_logs"]
    assert "train dice" in (run.fold_folder / "log.txt").read_text()
    assert "recurrence_loss" in (run.fold_folder / "log.txt").read_text()


def _loader(folder: Path, inputs: tuple, augment: bool = True, config: str = "3d_fullres"):
    from tests.training.tiny_preprocessed import tiny_configuration

    return PatchBatches(
        folder,
        ["tiny_000", "tiny_001"],
        tiny_configuration(config),
        [0, 1, 2, 3],
        batch_size=2,
        seed=7,
        augment=augment,
        inputs=inputs,
    )


def test_declaring_inputs_leaves_image_and_label_patches_unchanged(probe_roots: Roots) -> None:
    folder = probe_roots.preprocessed / DATASET / "tumorsegPlans_3d"
    plain, probed = _loader(folder, ()), _loader(folder, INPUTS)
    for index in range(6):
        a, b = plain[index], probed[index]
        assert set(a) == {"data", "target"}
        np.testing.assert_array_equal(a["data"], b["data"])
        np.testing.assert_array_equal(a["target"], b["target"])


def test_intensity_augmentation_leaves_references_alone(
    probe_roots: Roots, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full pipeline draws spatial parameters first, so a pipeline without intensity and
    # mirroring sees the same rotation/scaling: the full pipeline's reference must be 2 x that
    # T1 patch up to a mirroring, while its image differs (the intensity changes hit it).
    folder = probe_roots.preprocessed / DATASET / "tumorsegPlans_3d"
    full = _loader(folder, INPUTS)
    geometric = _loader(folder, INPUTS)
    geometric.transform = dataclasses.replace(geometric.transform, intensity=(), mirror=())
    flips = [axes for n in range(4) for axes in itertools.combinations((1, 2, 3), n)]
    image_changed = False
    for index in range(10):
        a, b = full[index], geometric[index]
        for sample in range(2):
            reference = a["references"]["pseudo_healthy"][sample]
            expected = 2 * b["data"][sample, :1]
            matches = [f for f in flips if np.array_equal(reference, np.flip(expected, f))]
            assert matches, f"batch {index} sample {sample}: reference was changed"
            flip = matches[0]
            np.testing.assert_array_equal(a["target"][sample], np.flip(b["target"][sample], flip))
            image_changed |= not np.array_equal(a["data"][sample], np.flip(b["data"][sample], flip))
    assert image_changed


def test_region_mask_rules() -> None:
    images = np.zeros((2, 4, 4), np.float32)
    images[1, 1:3, 1:3] = 5.0  # brain: 4 voxels, from channel 1 only
    label = np.zeros((4, 4), np.int8)
    label[1, 1] = 2
    assert region_mask("brain", images, label).sum() == 4
    assert region_mask("lesion", images, label).tolist() == (label > 0).astype(int).tolist()
    normal = region_mask("normal", images, label)
    assert normal.sum() == 3
    assert normal[1, 1] == 0


def test_missing_reference_is_one_line_error(probe_roots: Roots) -> None:
    folder = probe_roots.preprocessed / DATASET / "tumorsegPlans_3d"
    reference_path(folder, "tiny_001", "pseudo_healthy").unlink()
    with pytest.raises(TumorsegError) as info:
        _loader(folder, INPUTS)
    message = str(info.value)
    assert "references/pseudo_healthy/tiny_001.npy" in message
    assert "run write_probe_inputs" in message
    assert "\n" not in message


def test_reference_with_wrong_channels_is_one_line_error(probe_roots: Roots) -> None:
    folder = probe_roots.preprocessed / DATASET / "tumorsegPlans_3d"
    two = (ReferenceImage("pseudo_healthy", channels=2, missing_hint="recompute it"),)
    with pytest.raises(TumorsegError, match=r"tiny_000\.npy: has 1 channels, .* expects 2"):
        _loader(folder, two)


def test_case_without_declared_target_is_one_line_error(roots: Roots) -> None:
    write_tiny_preprocessed(roots, with_raw=False)  # cases without a recurrence channel
    folder = roots.preprocessed / DATASET / "tumorsegPlans_3d"
    with pytest.raises(TumorsegError, match=r"tiny_000\.json: case tiny_000 has no extra target"):
        _loader(folder, (ExtraTarget("recurrence"),))


def test_target_missing_from_dataset_json_fails_when_the_trainer_is_built(
    roots: Roots, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tiny_preprocessed(roots, with_raw=False)  # dataset.json declares no targets
    context = prepare_run(roots, "1", "3d_fullres", 0).trainer.context
    # Registered under a free name, as a new trainer file would be (one registry line).
    monkeypatch.setitem(TRAINERS, TrainerName.CLFC, ProbeTrainer)
    with pytest.raises(TumorsegError, match=r"declares no 'recurrence' target.*'probe' needs it"):
        build_trainer("clfc", context)
    # Registered trainers that declare nothing need nothing extra.
    assert build_trainer("default", context).name == "default"


def test_to_device_moves_exactly_the_declared_entries() -> None:
    batch = {
        "data": torch.zeros(1, 2, 4, 4, dtype=torch.float64),
        "target": torch.zeros(1, 1, 4, 4, dtype=torch.int8),
        "targets": {"recurrence": torch.ones(1, 1, 4, 4, dtype=torch.int8)},
        "masks": {"normal": torch.ones(1, 1, 4, 4, dtype=torch.bool)},
        "references": {"pseudo_healthy": torch.ones(1, 1, 4, 4, dtype=torch.float64)},
        "unrelated": torch.zeros(1),
    }
    moved = to_device(batch, "cpu")
    assert set(moved) == {"data", "target", "targets", "masks", "references"}
    assert moved["data"].dtype == torch.float32
    assert moved["target"].dtype == torch.long
    assert moved["targets"]["recurrence"].dtype == torch.long
    assert moved["masks"]["normal"].dtype == torch.bool
    assert moved["references"]["pseudo_healthy"].dtype == torch.float32
    assert set(to_device({k: batch[k] for k in ("data", "target")}, "cpu")) == {"data", "target"}


def test_mask_input_on_two_d_slices(probe_roots: Roots) -> None:
    folder = probe_roots.preprocessed / DATASET / "tumorsegPlans_2d"
    batch = _loader(folder, (RegionMask("lesion", "lesion"),), augment=True, config="2d")[3]
    assert batch["masks"]["lesion"].shape == batch["target"].shape
    np.testing.assert_array_equal(batch["masks"]["lesion"], batch["target"] > 0)
