"""train-normal: healthy sources, bad input, the IntroVAE loop (resume), reference caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_data import write_tiny_dataset
from tests.trainers.normal_fixtures import TINY_NORMAL, add_healthy_to_dataset, write_healthy
from tumorseg.data.healthy import healthy_t1_images, read_healthy_t1
from tumorseg.data.io import Geometry, read_image, write_image
from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots
from tumorseg.preprocessing.storage import reference_path, write_case
from tumorseg.trainers.inputs import ReferenceProducer
from tumorseg.trainers.normal_model import load_normal_model
from tumorseg.training import normal_training
from tumorseg.training.normal_training import (
    NormalTrainer,
    introvae_losses,
    prepare_normal_training,
    train_normal,
)
from tumorseg.training.references import STAMP_FILE, ensure_references

GEOMETRY = Geometry((6, 8, 8), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


@pytest.fixture
def raw_with_healthy(roots: Roots) -> Path:
    folder = write_tiny_dataset(roots.raw)
    add_healthy_to_dataset(folder)
    return folder


def test_healthy_t1_of_a_dataset_is_its_t1_channel(raw_with_healthy: Path) -> None:
    images = healthy_t1_images(raw_with_healthy)
    assert [i.subject for i in images] == ["HEALTHY_000", "HEALTHY_001"]
    assert all(i.path.name.endswith("_0000.nii.gz") for i in images)  # T1 is channel 0


def test_healthy_from_another_dataset_uses_its_own_t1_channel(roots: Roots) -> None:
    """``"healthy": <path of another raw dataset>``: its ``imagesTr``, T1 by its channel names."""
    patients = write_tiny_dataset(roots.raw, dataset_id=5)
    ixi = roots.raw / "Dataset006_Healthy"
    files = write_healthy(ixi / "imagesTr", channels=2)
    (ixi / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T2", "1": "T1"}, "labels": {"background": 0},
        "numTraining": len(files), "file_ending": ".nii.gz",
    }))  # fmt: skip
    data = json.loads((patients / "dataset.json").read_text())
    data["healthy"] = "../Dataset006_Healthy"
    (patients / "dataset.json").write_text(json.dumps(data))
    images = healthy_t1_images(patients)
    assert [i.subject for i in images] == ["HEALTHY_000", "HEALTHY_001"]
    assert all(i.path.name.endswith("_0001.nii.gz") for i in images)  # T1 is its channel 1


def test_healthy_from_a_folder_or_a_file(tmp_path: Path) -> None:
    files = write_healthy(tmp_path / "t1s", channels=1)
    assert [i.path for i in healthy_t1_images(None, tmp_path / "t1s")] == files
    assert [i.path for i in healthy_t1_images(None, files[0])] == files[:1]


def test_healthy_sources_bad_input(roots: Roots, tmp_path: Path) -> None:
    plain = write_tiny_dataset(roots.raw, dataset_id=2)
    with pytest.raises(TumorsegError, match="declares no healthy references") as info:
        healthy_t1_images(plain)
    assert "tumorseg synth --healthy" in str(info.value)
    # A dataset whose channels include no T1.
    other = write_tiny_dataset(roots.raw, dataset_id=3)
    data = json.loads((other / "dataset.json").read_text())
    data["channel_names"] = {"0": "FLAIR", "1": "T2", "2": "T1c", "3": "T2w"}
    data["healthy"] = "healthyTr"
    (other / "dataset.json").write_text(json.dumps(data))
    write_healthy(other / "healthyTr")
    with pytest.raises(TumorsegError, match="declares no T1 channel"):
        healthy_t1_images(other)
    # A healthy subject without its T1 file.
    missing = write_tiny_dataset(roots.raw, dataset_id=4)
    add_healthy_to_dataset(missing)
    (missing / "healthyTr" / "HEALTHY_001_0000.nii.gz").unlink()
    with pytest.raises(TumorsegError, match="T1 \\(channel 0\\) of healthy subject HEALTHY_001"):
        healthy_t1_images(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TumorsegError, match="holds no healthy images"):
        healthy_t1_images(None, empty)


def test_healthy_image_checks(tmp_path: Path) -> None:
    two_d = tmp_path / "flat.nii.gz"
    write_image(two_d, np.ones((1, 8, 8), np.float32), GEOMETRY.__class__(
        (1, 8, 8), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), GEOMETRY.direction
    ))
    full = tmp_path / "skull.nii.gz"
    write_image(full, np.ones((6, 8, 8), np.float32), GEOMETRY)
    zero = tmp_path / "zero.nii.gz"
    write_image(zero, np.zeros((6, 8, 8), np.float32), GEOMETRY)
    for path, problem in ((two_d, "has shape"), (full, "not skull-stripped"), (zero, "all zero")):
        (image,) = healthy_t1_images(None, path)
        with pytest.raises(TumorsegError, match=problem):
            read_healthy_t1(image)


def test_encoder_loss_is_introvaes(raw_with_healthy: Path, roots: Roots) -> None:
    """L_E = KL(x) + alpha ([m - KL(x_r)]^+ + [m - KL(x_p)]^+) + beta L_AE, checked term by
    term against the logged parts (the margin is set above every KL, so the hinges are
    m - KL)."""
    job = prepare_normal_training(roots, "1", settings={**TINY_NORMAL, "margin": 1e4})
    trainer = NormalTrainer(job, echo=False)
    torch.manual_seed(0)
    images = torch.randn(4, 1, 16, 16)
    s = job.settings
    torch.manual_seed(1)
    parts = introvae_losses(trainer.model, images, s)
    torch.manual_seed(1)  # the same reparameterisation noise
    mu, logvar = trainer.model.vae.encoder(images)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    x_r = trainer.model.vae.decoder(z)
    rec = 0.5 * (images - x_r).square().flatten(1).sum(1)
    expected = (
        parts["kl_real"]
        + s.alpha * (2 * s.margin - parts["kl_reconstruction"] - parts["kl_sample"])
        + s.beta * rec.mean()
    )
    assert float(parts["encoder"].detach()) == pytest.approx(float(expected.detach()), rel=1e-4)


@pytest.mark.slow
def test_train_normal_writes_its_run_folder_and_resumes_exactly(
    raw_with_healthy: Path, roots: Roots, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {**TINY_NORMAL, "vae_warmup_fraction": 0.5}
    job = prepare_normal_training(roots, "1", settings=settings)
    assert job.run_folder.parent == roots.results / "Dataset001_Tiny"
    assert job.run_folder.name.startswith("normal_appearance-")
    train_normal(job, echo=False)
    folder = job.run_folder
    for name in ("checkpoint_final.pt", "normal_config.json", "log.txt", "progress.png",
                 "samples.png"):
        assert (folder / name).is_file(), name
    state = torch.load(folder / "checkpoint_final.pt", weights_only=True)
    config = json.loads((folder / "normal_config.json").read_text())
    assert config["healthy"]["subjects"] == ["HEALTHY_000", "HEALTHY_001"]
    assert config["loop"]["epochs_done"] == 2
    assert config["loop"]["warmup_epochs"] == 1
    log = (folder / "log.txt").read_text()
    assert "epoch 0 (vae)" in log
    assert "epoch 1 (introvae)" in log

    # The same run interrupted after its first epoch, then resumed, ends bit-identical.
    other = Roots(roots.raw, roots.preprocessed, roots.results.parent / "other")
    job_b = prepare_normal_training(other, "1", settings=settings)
    original = NormalTrainer.epoch
    calls = {"n": 0}

    def interrupted(self: NormalTrainer, slices: object) -> dict:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, slices)  # type: ignore[arg-type]

    monkeypatch.setattr(normal_training.NormalTrainer, "epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_normal(job_b, echo=False)
    assert not (job_b.run_folder / "checkpoint_final.pt").exists()
    monkeypatch.setattr(normal_training.NormalTrainer, "epoch", original)
    train_normal(job_b, resume=True, echo=False)
    resumed = torch.load(job_b.run_folder / "checkpoint_final.pt", weights_only=True)
    for key, value in state["network"].items():
        assert torch.equal(resumed["network"][key], value), key

    model, record = load_normal_model(folder)
    assert record.name == folder.name
    assert not model.training


def test_train_normal_bad_input_is_one_line(roots: Roots) -> None:
    write_tiny_dataset(roots.raw)
    with pytest.raises(TumorsegError, match="declares no healthy references"):
        prepare_normal_training(roots, "1")
    with pytest.raises(TumorsegError, match="unknown setting"):
        prepare_normal_training(roots, "1", settings={"marginn": 3})
    with pytest.raises(TumorsegError, match="image_size must be a multiple"):
        prepare_normal_training(roots, "1", settings={"image_size": 20})


def _case(folder: Path, case_id: str, value: float) -> None:
    data = np.full((2, 3, 4, 4), value, np.float32)
    write_case(folder, case_id, data, np.zeros((1, 3, 4, 4), np.int8), {"targets": []})


def test_reference_images_are_computed_once_and_recomputed_for_another_version(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    for i, case in enumerate(("a", "b", "c")):
        _case(folder, case, float(i))
    calls: list[float] = []

    def compute(data: np.ndarray) -> np.ndarray:
        calls.append(float(data[0, 0, 0, 0]))
        return data[1:] * 2

    producer = ReferenceProducer("healthy", "v1", compute)
    assert ensure_references(folder, ["a", "b", "c"], producer, log=lambda _: None) == 3
    np.testing.assert_array_equal(np.load(reference_path(folder, "b", "healthy")), 2.0)
    assert ensure_references(folder, ["a", "b", "c"], producer, log=lambda _: None) == 0
    # A missing (or corrupt) file is redone alone while the version matches.
    reference_path(folder, "a", "healthy").write_bytes(b"broken")
    assert ensure_references(folder, ["a", "b", "c"], producer, log=lambda _: None) == 1
    # A new version (e.g. a retrained normal model) redoes the run's cases and drops the rest.
    calls.clear()
    newer = ReferenceProducer("healthy", "v2", lambda d: d[1:] * 3)
    assert ensure_references(folder, ["a", "b"], newer, log=lambda _: None) == 2
    assert not reference_path(folder, "c", "healthy").exists()
    np.testing.assert_array_equal(np.load(reference_path(folder, "b", "healthy")), 3.0)
    stamp = json.loads((folder / "references" / "healthy" / STAMP_FILE).read_text())
    assert stamp["version"] == "v2"


def test_a_healthy_brain_wider_than_the_frame_is_refused(tmp_path: Path) -> None:
    """A placeholder spacing (10 mm for a 2 mm scan) makes the brain too wide for the frame."""
    from tumorseg.trainers.normal_model import NormalModelSettings
    from tumorseg.training.normal_data import load_healthy_slices

    (path,) = write_healthy(tmp_path, n_subjects=1, channels=1)
    array, geometry = read_image(path)
    wide = Geometry(geometry.shape, (10.0, 10.0, 10.0), geometry.origin, geometry.direction)
    write_image(path, array, wide)
    with pytest.raises(TumorsegError, match="more than the normal model's frame"):
        load_healthy_slices(healthy_t1_images(None, path), NormalModelSettings(), log=print)


@pytest.mark.slow
def test_time_budget_fits_the_epochs(raw_with_healthy: Path, roots: Roots) -> None:
    """A budget shorter than one epoch ends the schedule after the first epoch."""
    job = prepare_normal_training(roots, "1", settings={**TINY_NORMAL, "epochs": 50},
                                  time_budget_s=1e-3)  # fmt: skip
    assert job.run_folder.name.startswith("normal_appearance-")
    train_normal(job, echo=False)
    config = json.loads((job.run_folder / "normal_config.json").read_text())
    assert config["loop"]["epochs"] == config["loop"]["epochs_done"] == 1
    assert config["loop"]["requested_epochs"] == 50
