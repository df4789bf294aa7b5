"""The clfc trainer through the public CLI, as a user runs it (slow: several tiny trainings).

synth-like raw data with healthy subjects -> plan -> train-normal -> train clfc (two folds,
--save-attention) -> predict with TTA and fold ensembling -> evaluate -> find-best ->
export-model / install-model without the normal-model folder -> normal-appearance; plus the
one-line refusals (no normal model, no healthy references).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tests.tiny_data import write_tiny_dataset
from tests.trainers.normal_fixtures import add_healthy_to_dataset
from tumorseg.cli import main
from tumorseg.data.io import read_image
from tumorseg.paths import Roots

pytestmark = pytest.mark.slow

NORMAL = [
    "--epochs", "2", "--iterations-per-epoch", "2", "--batch-size", "4",
    "--set", "image_size=16", "--set", "channels=4,8", "--set", "latent_dim=4",
    "--set", "fov_mm=64", "--set", "min_brain_fraction=0.01", "--device", "cpu",
]  # fmt: skip
TRAIN = [
    "--trainer", "clfc", "--epochs", "1", "--iterations-per-epoch", "2",
    "--val-iterations", "1", "-np", "0", "--device", "cpu",
]  # fmt: skip


#: Which root options each command takes.
_ROOTS = {
    "plan": ("raw", "preprocessed", "results"),
    "train": ("raw", "preprocessed", "results"),
    "train-normal": ("raw", "preprocessed", "results"),
    "find-best": ("raw", "preprocessed", "results"),
    "normal-appearance": ("raw", "results"),
    "evaluate": ("raw",),
    "postprocess": (),
}


def _cli(roots: Roots, *args: str) -> int:
    argv = ["tumorseg", *args]
    for root in _ROOTS.get(args[0], ("results",)):
        argv += [f"--{root}", str(getattr(roots, root))]
    old = sys.argv
    sys.argv = argv
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = old
    return 0


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Roots, Path]:
    roots = Roots.under(tmp_path_factory.mktemp("clfc") / "tumorseg_data")
    raw = write_tiny_dataset(roots.raw, n_cases=5, shape=(16, 32, 32))
    add_healthy_to_dataset(raw, n_subjects=2)
    assert _cli(roots, "plan", "1", "--device", "cpu", "-np", "1") == 0
    assert _cli(roots, "train-normal", "1", *NORMAL) == 0
    for fold in ("0", "1"):
        extra = ["--save-attention"] if fold == "0" else []
        assert _cli(roots, "train", "1", "2.5d", fold, *TRAIN, *extra) == 0
    return roots, raw


def test_train_normal_and_clfc_runs(workflow: tuple[Roots, Path]) -> None:
    roots, _ = workflow
    results = roots.results / "Dataset001_Tiny"
    (normal,) = results.glob("normal_appearance*")
    (run,) = results.glob("clfc*__tumorsegPlans__2.5d")
    fold = run / "fold_0"
    record = json.loads((fold / "normal_model.json").read_text())
    assert record["name"] == normal.name
    config = json.loads((fold / "train_config.json").read_text())
    assert config["trainer_settings"]["normal_image_size"] == 16
    assert config["trainer_settings"]["normal_channels"] == [4, 8]
    assert sorted(fold.glob("attention/*.png"))
    assert (fold / "validation" / "summary.json").is_file()
    cache = roots.preprocessed / "Dataset001_Tiny" / "tumorsegPlans_fullres" / "references"
    assert len(list((cache / "pseudo_healthy_t1").glob("*.npy"))) == 5
    stamp = json.loads((cache / "pseudo_healthy_t1" / "made_by.json").read_text())
    assert stamp["version"] == record["sha256"]


def test_predict_ensemble_evaluate_find_best_export_install(
    workflow: tuple[Roots, Path], tmp_path: Path
) -> None:
    roots, raw = workflow
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in sorted((raw / "imagesTr").glob("tiny_000_*.nii.gz")):
        shutil.copy(path, inputs / path.name)
    out = tmp_path / "pred"
    args = ["-i", str(inputs), "-o", str(out), "-d", "1", "-c", "2.5d", "-tr", "clfc"]
    assert _cli(roots, "predict", *args, "-f", "0,1") == 0
    label, geometry = read_image(out / "tiny_000.nii.gz")
    assert geometry.shape == (16, 32, 32)
    assert set(np.unique(label)) <= {0, 1, 2, 3}
    reference = tmp_path / "gt"
    reference.mkdir()
    shutil.copy(raw / "labelsTr" / "tiny_000.nii.gz", reference)
    assert _cli(roots, "evaluate", str(out), str(reference), "-d", "1") == 0
    assert (out / "summary.json").is_file()
    assert _cli(roots, "find-best", "1", "-c", "2.5d", "-tr", "clfc") == 0
    decision = roots.results / "Dataset001_Tiny" / "find_best.json"
    processed = tmp_path / "post"
    assert _cli(roots, "postprocess", "apply", "-i", str(out), "-o", str(processed),
                "--decision", str(decision)) == 0  # fmt: skip
    post_label, post_geometry = read_image(processed / "tiny_000.nii.gz")
    assert post_geometry == geometry
    # Post-processing only removes or relabels tumour voxels: never adds any.
    assert np.count_nonzero(post_label) <= np.count_nonzero(label)

    archive = tmp_path / "clfc.zip"
    assert _cli(roots, "export-model", "1", "-c", "2.5d", "-tr", "clfc", "-f", "0,1",
                "-o", str(archive)) == 0  # fmt: skip
    other = Roots(roots.raw, roots.preprocessed, tmp_path / "elsewhere")
    assert _cli(other, "install-model", str(archive)) == 0
    installed = other.results / "Dataset001_Tiny"
    assert not list(installed.glob("normal_appearance*"))  # the weights travel in the run
    assert list(installed.glob("clfc*/fold_0/normal_model.json"))
    again = tmp_path / "pred_installed"
    args = ["-i", str(inputs), "-o", str(again), "-d", "1", "-c", "2.5d", "-tr", "clfc"]
    assert _cli(other, "predict", *args, "-f", "0,1") == 0
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "tiny_000.nii.gz")))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(again / "tiny_000.nii.gz")))
    np.testing.assert_array_equal(a, b)


def test_normal_appearance_command(workflow: tuple[Roots, Path], tmp_path: Path) -> None:
    roots, raw = workflow
    t1 = raw / "imagesTr" / "tiny_001_0000.nii.gz"
    figure = tmp_path / "na.png"
    code = _cli(roots, "normal-appearance", "-i", str(t1), "-o", str(tmp_path / "out"),
                "-d", "1", "--figure", str(figure), "--device", "cpu")  # fmt: skip
    assert code == 0
    written = tmp_path / "out" / "tiny_001_0000_pseudohealthy.nii.gz"
    healthy, geometry = read_image(written)
    original, original_geometry = read_image(t1)
    assert geometry == original_geometry
    assert (healthy[original == 0] == 0).all()
    assert figure.is_file()
    # A raw-convention case folder: the T1 is found as channel 0 of the dataset.
    case = tmp_path / "case"
    case.mkdir()
    for path in (raw / "imagesTr").glob("tiny_001_000*.nii.gz"):
        shutil.copy(path, case / path.name)
    assert _cli(roots, "normal-appearance", "-i", str(case), "-o", str(tmp_path / "o2.nii.gz"),
                "-d", "1", "--device", "cpu") == 0  # fmt: skip
    assert (tmp_path / "o2.nii.gz").is_file()


def test_refusals_are_one_line(
    workflow: tuple[Roots, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roots, _ = workflow
    fresh = Roots(roots.raw, roots.preprocessed, tmp_path / "results")
    capsys.readouterr()
    assert _cli(fresh, "train", "1", "2.5d", "2", *TRAIN) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "run `tumorseg train-normal Dataset001_Tiny` first" in err
    assert not list((fresh.results / "Dataset001_Tiny").glob("clfc*"))  # nothing half-written
    plain = write_tiny_dataset(tmp_path / "raw", dataset_id=7, n_cases=2)
    other = Roots(plain.parent, roots.preprocessed, tmp_path / "results")
    assert _cli(other, "train-normal", "7", *NORMAL) == 1
    err = capsys.readouterr().err.strip()
    assert "declares no healthy references" in err
    assert err.count("\n") == 0


def test_real_healthy_t1_and_a_real_patient(shared_data: Path, tmp_path: Path) -> None:
    """IXI (a real healthy T1, sagittally acquired, 0.94 x 1.2 mm in-plane) trains a normal
    model; the BraTS 2023 case folder (``t1n.nii.gz``) gets its pseudo-healthy T1."""
    roots = Roots.under(tmp_path / "tumorseg_data")
    write_tiny_dataset(roots.raw, n_cases=2)
    ixi = tmp_path / "ixi"
    ixi.mkdir()
    shutil.copy(shared_data / "ixi_healthy" / "hd_bet_IXI002-Guys-0828-T1.nii.gz", ixi)
    small = ["--epochs", "1", "--iterations-per-epoch", "2", "--batch-size", "4",
             "--set", "image_size=32", "--set", "channels=4,8", "--set", "latent_dim=8",
             "--device", "cpu"]  # fmt: skip
    assert _cli(roots, "train-normal", "1", "--healthy", str(ixi), *small) == 0
    (folder,) = (roots.results / "Dataset001_Tiny").glob("normal_appearance*")
    config = json.loads((folder / "normal_config.json").read_text())
    assert config["healthy"]["subjects"] == ["hd_bet_IXI002-Guys-0828-T1"]
    assert config["healthy"]["slices"] > 100
    out = tmp_path / "brats.nii.gz"
    case = shared_data / "brats2023_gli_case"
    assert _cli(roots, "normal-appearance", "-i", str(case), "-o", str(out), "-d", "1",
                "--device", "cpu") == 0  # fmt: skip
    healthy, geometry = read_image(out)
    t1, t1_geometry = read_image(case / "t1n.nii.gz")
    assert geometry == t1_geometry
    assert (healthy[t1 == 0] == 0).all()
    assert np.count_nonzero(healthy) > 0.9 * np.count_nonzero(t1)
