"""Tests of the built-in synthetic dataset (``tumorseg synth``), on coarse 4-6 mm grids.

The contracts here hold for both generators (``--difficulty basic`` and ``realistic``); the
realistic generator's phenomena are tested in ``test_synthetic_realistic.py``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import read_image
from tumorseg.data.raw_dataset import RawDataset
from tumorseg.data.synthetic import SyntheticCase, case_rng, generate_case, generate_dataset
from tumorseg.data.synthetic.montage import render_montage
from tumorseg.errors import TumorsegError

SPACING = 4.0
N_VARIETY = 6


@pytest.fixture(scope="module", params=["basic", "realistic"])
def cases(request: pytest.FixtureRequest) -> list[SyntheticCase]:
    """Six tumour cases of seed 0 at 4 mm (longitudinal, so every part is exercised)."""
    out = []
    for index in range(N_VARIETY):
        start = time.process_time()
        out.append(
            generate_case(case_rng(0, index), SPACING, longitudinal=True, difficulty=request.param)
        )
        # Information only (never asserted): CPU seconds per case, see `pytest -s`.
        elapsed = time.process_time() - start
        print(f"{request.param} case {index} at {SPACING} mm: {elapsed:.2f} s CPU")
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    return generate_dataset(
        raw, 42, 2, name="SynthTest", spacing=SPACING, seed=1, longitudinal=True, n_healthy=1
    )


@pytest.mark.parametrize("difficulty", ["basic", "realistic"])
def test_same_seed_gives_identical_arrays_and_other_seeds_differ(difficulty: str) -> None:
    first = generate_case(case_rng(5, 0), 6.0, difficulty=difficulty)
    again = generate_case(case_rng(5, 0), 6.0, difficulty=difficulty)
    other = generate_case(case_rng(6, 0), 6.0, difficulty=difficulty)
    for a, b in zip(first.images, again.images, strict=True):
        assert a.tobytes() == b.tobytes()
    assert first.label.tobytes() == again.label.tobytes()
    assert not np.array_equal(first.images[0], other.images[0])
    assert not np.array_equal(first.label, other.label)


def test_labels_are_internal_values_inside_the_brain(cases: list[SyntheticCase]) -> None:
    for case in cases:
        assert case.label.dtype == np.uint8
        assert set(np.unique(case.label)) <= {0, 1, 2, 3}
        assert (case.label > 0).any()
        brain = case.images[0] > 0
        assert not (case.label.astype(bool) & ~brain).any(), "tumour outside the brain"
        assert all(img.shape == case.geometry.shape for img in case.images)
        assert all((img[~brain] == 0).all() for img in case.images), "background must be 0"


def test_geometry_axis_zero_is_axial(cases: list[SyntheticCase]) -> None:
    direction = np.array(cases[0].geometry.direction).reshape(3, 3)
    # Array axis 0 is SimpleITK's index axis 2, which must map to the physical z axis.
    assert np.allclose(np.abs(direction[:, 2]), [0, 0, 1])
    assert cases[0].geometry.spacing == (SPACING,) * 3


def test_tumours_vary_in_size_necrosis_and_enhancement(cases: list[SyntheticCase]) -> None:
    volumes = [int((case.label > 0).sum()) for case in cases]
    assert len(set(volumes)) == len(cases)
    assert max(volumes) > 1.5 * min(volumes)
    with_label_1 = [bool((case.label == 1).any()) for case in cases]
    assert any(with_label_1)
    kinds = {case.info["kind"] for case in cases}
    assert "necrotic" in kinds
    assert len(kinds) >= 2, "all tumours of one type"
    centres = np.array([np.argwhere(case.label > 0).mean(axis=0) for case in cases])
    assert np.ptp(centres, axis=0).max() * SPACING > 20.0, "tumours all at one site"


def test_contrasts_follow_the_tissue_model(cases: list[SyntheticCase]) -> None:
    flair_csf = []
    for case in cases:
        t1, t1c, t2, flair = case.images
        wm_map, gm_map, csf_map = case.tissue
        # Realistic cases: leave out the look-alikes (vessels and choroid plexus lie in CSF).
        looks = sum(
            (case.maps[k] for k in ("vessel", "choroid", "dura") if k in case.maps),
            np.zeros(t1.shape),
        )
        healthy = ~np.isin(case.label, (1, 2, 3)) & (t1 > 0) & (looks < 0.05)
        wm = healthy & (wm_map > 0.9)
        gm = healthy & (gm_map > 0.8)
        csf = healthy & (csf_map > 0.8)
        edema = case.label == 2
        assert flair[edema].mean() > 1.3 * flair[wm].mean()
        assert t2[csf].mean() > 1.7 * t2[wm].mean()
        # FLAIR nulls free water. Realistic cases may fail to null patches of it (and thick
        # slices mix it with tissue), so each case only has CSF darker than white matter.
        flair_csf.append(np.median(flair[csf]) / np.median(flair[wm]))
        assert flair_csf[-1] < 0.8
        assert t1[wm].mean() > t1[gm].mean() > t1[csf].mean()
        if (case.label == 3).sum() > 5:
            # Enhancement: brighter after contrast than before, relative to white matter.
            et = case.label == 3
            before = t1[et].mean() / t1[wm].mean()
            assert t1c[et].mean() / t1c[wm].mean() > 1.2 * before
    assert np.median(flair_csf) < 0.55


def test_longitudinal_recurrence_is_binary_and_outside_the_cavity(
    cases: list[SyntheticCase],
) -> None:
    for case in cases:
        assert case.cavity is not None
        assert case.recurrence is not None
        assert case.followup_label is not None
        assert case.followup_images is not None
        assert case.cavity.any()
        assert set(np.unique(case.recurrence)) <= {0, 1}
        assert not (case.recurrence.astype(bool) & case.cavity).any()
        assert (case.followup_label[case.cavity] == 0).all()
        # The cavity holds fluid: dark on FLAIR compared with white matter.
        wm = (case.tissue[0] > 0.9) & (case.followup_label == 0) & ~case.cavity
        assert case.followup_images[3][case.cavity].mean() < case.followup_images[3][wm].mean()
    assert any(case.recurrence.any() for case in cases)


def test_healthy_subject_has_no_tumour() -> None:
    case = generate_case(case_rng(0, 0, stream=1), 6.0, tumour=False)
    assert not case.label.any()
    assert case.images[3].max() > 0


def test_generated_dataset_layout(dataset: Path) -> None:
    assert dataset.name == "Dataset042_SynthTest"
    dj = DatasetJson.read(dataset)
    assert dj.targets == {"recurrence": "recurrenceTr"}
    assert dj.healthy == "healthyTr"
    assert dj.label_convention is not None
    assert dj.label_convention.value == "brats2021"
    assert [dj.channel_names[i] for i in range(4)] == ["T1", "T1c", "T2", "FLAIR"]
    raw = RawDataset.open(dataset)
    cases = raw.training_cases()
    assert [c.case_id for c in cases] == ["SynthTest_000", "SynthTest_001"]
    for case in cases:
        assert all(p.is_file() for p in case.images)
        label, geometry = read_image(case.label)
        assert label.dtype == np.uint8
        assert set(np.unique(label)) <= {0, 1, 2, 3}
        assert geometry.spacing == (SPACING,) * 3
        recurrence, _ = read_image(case.targets["recurrence"])
        assert set(np.unique(recurrence)) <= {0, 1}
    healthy = raw.healthy_cases()
    assert [c.case_id for c in healthy] == ["HEALTHY_000"]
    assert all(p.is_file() for p in healthy[0].images)
    assert sorted(p.name for p in (dataset / "healthyTr").iterdir()) == [
        f"HEALTHY_000_{c:04d}.nii.gz" for c in range(4)
    ]
    assert not [p for p in dataset.parent.iterdir() if p.name.startswith(".")], "temp left"


def test_written_case_matches_generate_case(dataset: Path) -> None:
    expected = generate_case(case_rng(1, 1), SPACING, longitudinal=True)
    flair, _ = read_image(dataset / "imagesTr" / "SynthTest_001_0003.nii.gz")
    assert np.array_equal(flair, expected.images[3])


def test_existing_id_is_an_error_unless_forced(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path, 7, 1, spacing=6.0)
    with pytest.raises(TumorsegError, match="already exists"):
        generate_dataset(tmp_path, 7, 1, name="Other", spacing=6.0)
    replaced = generate_dataset(tmp_path, 7, 2, name="Other", spacing=6.0, force=True)
    assert not first.exists()
    assert DatasetJson.read(replaced).num_training == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset007_Other"]


def test_montage_png_is_written(dataset: Path, tmp_path: Path) -> None:
    out = render_montage(dataset, tmp_path / "montage.png", n_cases=1)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    from PIL import Image

    one = Image.open(render_montage(dataset, tmp_path / "one.png", case_ids=["SynthTest_001"]))
    two = Image.open(render_montage(dataset, tmp_path / "two.png", n_cases=2, dpi=60))
    # Each row is 2.4 inches tall: one row at 110 dpi, two rows at 60 dpi.
    assert one.size[1] == round(2.4 * 110)
    assert two.size[1] == round(2 * 2.4 * 60)
    with pytest.raises(TumorsegError, match="no training case Nope_000"):
        render_montage(dataset, tmp_path / "bad.png", case_ids=["Nope_000"])


def test_cli_synth_and_montage(tmp_path: Path) -> None:
    from tumorseg.cli import app

    runner = CliRunner()
    raw = tmp_path / "raw"
    result = runner.invoke(
        app, ["synth", "--id", "3", "--cases", "1", "--spacing", "6", "--raw", str(raw)]
    )
    assert result.exit_code == 0, result.output
    assert (raw / "Dataset003_Synth" / "labelsTr" / "Synth_000.nii.gz").is_file()
    extra = DatasetJson.read(raw / "Dataset003_Synth").extra["synthetic"]
    assert extra["difficulty"] == "realistic", "realistic is the default"
    png = tmp_path / "m.png"
    result = runner.invoke(app, ["synth-montage", "3", "-o", str(png), "--raw", str(raw)])
    assert result.exit_code == 0, result.output
    assert png.is_file()


def test_cli_difficulty_basic_is_the_first_generator(tmp_path: Path) -> None:
    from tumorseg.cli import app

    raw = tmp_path / "raw"
    args = ["synth", "--cases", "1", "--spacing", "6", "--raw", str(raw)]
    result = CliRunner().invoke(app, [*args, "--id", "4", "--difficulty", "basic"])
    assert result.exit_code == 0, result.output
    folder = raw / "Dataset004_Synth"
    assert DatasetJson.read(folder).extra["synthetic"]["difficulty"] == "basic"
    flair, _ = read_image(folder / "imagesTr" / "Synth_000_0003.nii.gz")
    expected = generate_case(case_rng(0, 0), 6.0, difficulty="basic")
    assert np.array_equal(flair, expected.images[3])
    result = CliRunner().invoke(app, [*args, "--id", "5", "--difficulty", "hard"])
    assert result.exit_code != 0


@pytest.mark.slow
def test_parallel_generation_matches_serial(tmp_path: Path) -> None:
    serial = generate_dataset(tmp_path / "a", 1, 2, spacing=6.0, seed=3)
    parallel = generate_dataset(tmp_path / "b", 1, 2, spacing=6.0, seed=3, num_processes=2)
    for name in ("imagesTr/Synth_001_0002.nii.gz", "labelsTr/Synth_000.nii.gz"):
        assert np.array_equal(read_image(serial / name)[0], read_image(parallel / name)[0])


@pytest.mark.slow
def test_benchmark_case_time_at_2mm() -> None:
    """Information only: CPU seconds per 2 mm case (printed, never asserted)."""
    generate_case(case_rng(0, 0), 2.0)  # template loading is not part of a case's cost
    for index in range(3):
        start = time.process_time()
        case = generate_case(case_rng(0, index), 2.0)
        print(f"2 mm case {index}: {time.process_time() - start:.2f} s CPU, {case.info['kind']}")
        assert case.label.any()
