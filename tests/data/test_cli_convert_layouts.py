"""``tumorseg convert`` on the layouts real downloads come in, through the CLI.

Longitudinal folders given to ``convert brats``, a single longitudinal case folder, ``.nii.gz.gz``
download artefacts, symbolic links to case folders on shared storage (``convert brats``,
``convert msd``, ``convert longitudinal``, ``validate``), time point 2 masks off the baseline grid
and TCIA's placeholder 1x1x1 mm header spacing.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tests.data.test_convert import _write_msd
from tumorseg.cli import app
from tumorseg.data.io import Geometry, read_geometry, read_image, write_image
from tumorseg.errors import TumorsegError

runner = CliRunner()
SHAPE = (6, 8, 10)
GEOMETRY = Geometry(SHAPE, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
MODALITIES = ("flair", "t1", "t1ce", "t2")


def _convert(kind: str, src: Path, raw: Path, *extra: str, dataset_id: int = 40) -> object:
    args = ["convert", kind, str(src), "--id", str(dataset_id), "--name", "X", "--raw", str(raw)]
    return runner.invoke(app, [*args, *extra])


def _tumorseg(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m tumorseg`` in a subprocess: the path that prints one-line errors."""
    command = [sys.executable, "-m", "tumorseg", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _error(result: object) -> str:
    """The one-line ``TumorsegError`` a CLI run stopped with."""
    exception = getattr(result, "exception", None)
    assert isinstance(exception, TumorsegError), getattr(result, "output", result)
    assert "\n" not in str(exception)
    return str(exception)


def _nothing_written(raw: Path) -> bool:
    return not raw.exists() or not any(raw.iterdir())


def _brats2021_case(folder: Path, seed: int) -> dict[str, np.ndarray]:
    """A BraTS 2021-named case; returns the written arrays by file suffix."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for modality in MODALITIES:
        arrays[modality] = rng.normal(5, 1, SHAPE).astype(np.float32)
        write_image(folder / f"{folder.name}_{modality}.nii.gz", arrays[modality], GEOMETRY)
    seg = np.zeros(SHAPE, np.uint8)
    seg[2:4, 2:5, 3:6], seg[3, 3, 4] = 2, 4
    arrays["seg"] = seg
    write_image(folder / f"{folder.name}_seg.nii.gz", seg, GEOMETRY)
    return arrays


def _tcia_case(folder: Path, post_geometry: Geometry = GEOMETRY) -> np.ndarray:
    """A TCIA-named pair; returns the time point 2 mask as written (0/255)."""
    rng = np.random.default_rng(len(folder.name))
    pre, post = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    pre[2:4, 2:4, 2:4], post[1:5, 2:6, 2:6] = 255, 255
    for name, array, geometry in (
        ("Pre_Scan_T1", rng.normal(size=SHAPE).astype(np.float32), GEOMETRY),
        ("Post_Scan_T1", rng.normal(size=SHAPE).astype(np.float32), post_geometry),
        ("Pre_Mask", pre, GEOMETRY),
        ("Post_Mask", post, post_geometry),
    ):
        write_image(folder / f"{name}.nii.gz", array, geometry)
    return post


# ---- issue point: a longitudinal folder given to convert brats ------------------------------


def test_convert_brats_on_real_tcia_points_to_convert_longitudinal(
    shared_data: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    for src in (shared_data / "tcia_progression", shared_data / "tcia_progression" / "01"):
        result = _tumorseg("convert", "brats", src, "--id", "30", "--name", "T", "--raw", raw)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {shared_data / 'tcia_progression' / '01'}: holds two")
        assert "(Pre_* and Post_* files)" in lines[0]
        assert "'tumorseg convert longitudinal'" in lines[0]
        assert "keep one file per modality" not in lines[0]  # the advice that destroyed data
        assert "Traceback" not in result.stderr
    assert _nothing_written(raw)


def test_convert_brats_on_tp1_tp2_folders_points_to_convert_longitudinal(tmp_path: Path) -> None:
    case = tmp_path / "src" / "p1"
    for time_point in ("tp1", "tp2"):
        _brats2021_case(case / time_point, seed=1)
    message = _error(_convert("brats", tmp_path / "src", tmp_path / "raw"))
    assert message.startswith(f"{case.resolve()}: holds two time points (tp1/ and tp2/ folders)")
    assert "convert longitudinal" in message
    assert _nothing_written(tmp_path / "raw")


# ---- issue point: convert longitudinal on a single case folder ------------------------------


def test_convert_longitudinal_accepts_a_real_single_case_folder(
    shared_data: Path, tmp_path: Path
) -> None:
    case = shared_data / "tcia_progression" / "01"
    raw = tmp_path / "raw"
    result = _convert("longitudinal", case, raw, "--spacing", "6", "0.9", "0.9")
    assert result.exit_code == 0, result.output
    assert "training cases: 1, test cases: 0" in result.output
    folder = raw / "Dataset040_X"
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["01_0000.nii.gz"]
    target, geometry = read_image(folder / "recurrenceTr" / "01.nii.gz")
    post, _ = read_image(case / "Post_Mask.nii.gz")
    np.testing.assert_array_equal(target, (post != 0).astype(np.uint8))
    np.testing.assert_allclose(geometry.spacing, (6.0, 0.9, 0.9), rtol=1e-6)
    image, _ = read_image(folder / "imagesTr" / "01_0000.nii.gz")
    np.testing.assert_array_equal(image, read_image(case / "Pre_Scan_T1.nii.gz")[0])


def test_convert_longitudinal_accepts_a_tp1_tp2_case_folder(tmp_path: Path) -> None:
    case = tmp_path / "patient7"
    arrays = _brats2021_case(case / "tp1", seed=2)
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:3, 1:3, 1:3] = 1
    write_image(case / "tp2" / "tumor_mask.nii.gz", mask, GEOMETRY)
    result = _convert("longitudinal", case, tmp_path / "raw")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "raw" / "Dataset040_X"
    assert "channels: T1, T1c, T2, FLAIR" in result.output
    flair, _ = read_image(folder / "imagesTr" / "patient7_0003.nii.gz")
    np.testing.assert_array_equal(flair, arrays["flair"])
    np.testing.assert_array_equal(read_image(folder / "recurrenceTr" / "patient7.nii.gz")[0], mask)


# ---- issue point: *.nii.gz.gz download artefacts ---------------------------------------------


def _double_named(src: Path, twice_gzipped: bool) -> None:
    """Two BraTS cases whose files all end in .nii.gz.gz (one gzip or two)."""
    for i, case in enumerate(("c0", "c1")):
        _brats2021_case(src / case, seed=i)
        for path in sorted((src / case).iterdir()):
            data = path.read_bytes()
            (src / case / f"{path.name}.gz").write_bytes(
                gzip.compress(data) if twice_gzipped else data
            )
            path.unlink()


def test_single_gzip_under_a_double_name_is_explained_and_the_fix_works(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _double_named(src, twice_gzipped=False)
    message = _error(_convert("brats", src, tmp_path / "raw"))
    first = src.resolve() / "c0" / "c0_flair.nii.gz.gz"
    assert message.startswith(f"{first}: ends in .nii.gz.gz, which is no image format")
    assert "(and 9 more *.nii.gz.gz files)" in message
    assert "a valid .nii.gz under a doubled name: drop the last .gz" in message
    assert _nothing_written(tmp_path / "raw")
    for path in src.rglob("*.nii.gz.gz"):  # the advice: rename, dropping the last .gz
        path.rename(path.with_name(path.name[: -len(".gz")]))
    result = _convert("brats", src, tmp_path / "raw")
    assert result.exit_code == 0, result.output
    assert "training cases: 2" in result.output


def test_twice_gzipped_files_are_explained_and_the_fix_works(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _double_named(src, twice_gzipped=True)
    message = _error(_convert("brats", src, tmp_path / "raw"))
    assert "c0_flair.nii.gz.gz: ends in .nii.gz.gz" in message
    assert "it is gzipped twice: gunzip each such file once" in message
    for path in src.rglob("*.nii.gz.gz"):  # the advice: gunzip once
        path.with_name(path.name[: -len(".gz")]).write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
    result = _convert("brats", src, tmp_path / "raw")
    assert result.exit_code == 0, result.output
    label, _ = read_image(tmp_path / "raw" / "Dataset040_X" / "labelsTr" / "c1.nii.gz")
    assert set(np.unique(label).tolist()) == {0, 2, 3}  # BraTS 2021 ET 4 became 3


def test_double_named_files_in_longitudinal_and_msd_sources(tmp_path: Path) -> None:
    _tcia_case(tmp_path / "tcia" / "01")
    path = tmp_path / "tcia" / "01" / "Post_Mask.nii.gz"
    path.rename(path.with_name("Post_Mask.nii.gz.gz"))
    message = _error(_convert("longitudinal", tmp_path / "tcia", tmp_path / "raw"))
    assert "Post_Mask.nii.gz.gz: ends in .nii.gz.gz" in message
    _write_msd(tmp_path / "Task01")
    image = tmp_path / "Task01" / "imagesTr" / "BRATS_001.nii.gz"
    image.rename(image.with_name("BRATS_001.nii.gz.gz"))
    message = _error(_convert("msd", tmp_path / "Task01", tmp_path / "raw"))
    assert "BRATS_001.nii.gz.gz: ends in .nii.gz.gz" in message
    assert _nothing_written(tmp_path / "raw")


# ---- issue point: symbolic links to case folders on shared storage ---------------------------


def test_symlinked_brats_case_folders_convert_like_copies(tmp_path: Path) -> None:
    storage, src = tmp_path / "storage", tmp_path / "dataset" / "HGG"
    arrays = {case: _brats2021_case(storage / case, seed=i) for i, case in enumerate(("a", "b"))}
    src.mkdir(parents=True)
    for case in arrays:
        (src / case).symlink_to(storage / case, target_is_directory=True)
    (src / "a" / "again").symlink_to(src.parent, target_is_directory=True)  # a loop
    result = _convert("brats", src.parent, tmp_path / "raw")
    assert result.exit_code == 0, result.output
    assert "training cases: 2, test cases: 0" in result.output
    folder = tmp_path / "raw" / "Dataset040_X"
    t1ce, _ = read_image(folder / "imagesTr" / "b_0001.nii.gz")
    np.testing.assert_array_equal(t1ce, arrays["b"]["t1ce"])
    validated = runner.invoke(app, ["validate", "40", "--raw", str(tmp_path / "raw")])
    assert validated.exit_code == 0, validated.output


def test_a_broken_link_to_an_image_is_named(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _brats2021_case(src / "c0", seed=0)
    (src / "c0" / "c0_t2.nii.gz").unlink()
    (src / "c0" / "c0_t2.nii.gz").symlink_to(tmp_path / "gone" / "c0_t2.nii.gz")
    message = _error(_convert("brats", src, tmp_path / "raw"))
    assert message == (
        f"{src.resolve() / 'c0' / 'c0_t2.nii.gz'}: is a broken symbolic link; "
        "restore its target or remove the link"
    )


def test_real_tcia_as_symlinked_case_folders(shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "progression"
    src.mkdir()
    for case in ("01", "02"):
        (src / case).symlink_to(shared_data / "tcia_progression" / case, target_is_directory=True)
    raw = tmp_path / "raw"
    result = _convert("longitudinal", src, raw, "--spacing", "6", "0.9", "0.9")
    assert result.exit_code == 0, result.output
    assert "training cases: 2" in result.output
    for case in ("01", "02"):
        target, _ = read_image(raw / "Dataset040_X" / "recurrenceTr" / f"{case}.nii.gz")
        post, _ = read_image(shared_data / "tcia_progression" / case / "Post_Mask.nii.gz")
        assert int(target.sum()) == int(np.count_nonzero(post))
    assert runner.invoke(app, ["validate", "40", "--raw", str(raw)]).exit_code == 0


def test_symlinked_msd_folders_convert_like_copies(tmp_path: Path) -> None:
    source = _write_msd(tmp_path / "storage" / "Task01_BrainTumour")
    task = tmp_path / "Task01_BrainTumour"
    task.mkdir()
    for name in ("imagesTr", "labelsTr", "imagesTs", "dataset.json"):
        (task / name).symlink_to(tmp_path / "storage" / "Task01_BrainTumour" / name)
    result = _convert("msd", task, tmp_path / "raw")
    assert result.exit_code == 0, result.output
    assert "training cases: 2, test cases: 1" in result.output
    t1c, _ = read_image(tmp_path / "raw" / "Dataset040_X" / "imagesTr" / "BRATS_000_0001.nii.gz")
    np.testing.assert_allclose(t1c, source[..., 2].transpose(2, 1, 0))


def test_validate_follows_a_symlinked_dataset_and_split_folders(tmp_path: Path) -> None:
    storage, raw = tmp_path / "storage", tmp_path / "raw"
    src = tmp_path / "src"
    for i, case in enumerate(("c0", "c1", "c2")):
        _brats2021_case(src / case, seed=i)
    assert _convert("brats", src, storage).exit_code == 0
    dataset = raw / "Dataset040_X"
    dataset.mkdir(parents=True)
    for name in ("imagesTr", "labelsTr", "dataset.json"):
        (dataset / name).symlink_to(storage / "Dataset040_X" / name)
    (raw / "Dataset041_Y").symlink_to(storage / "Dataset040_X", target_is_directory=True)
    for reference in ("40", "41"):
        result = runner.invoke(app, ["validate", reference, "--raw", str(raw)])
        assert result.exit_code == 0, result.output
        assert "no problems found" in result.output
        assert "c2: shape (6, 8, 10)" in result.output


# ---- issue 10 point: time point 2 off the baseline grid, placeholder spacing -----------------


def test_time_point_2_outside_the_baseline_grid_is_an_error(tmp_path: Path) -> None:
    far = Geometry(SHAPE, GEOMETRY.spacing, (500.0, 0.0, 0.0), GEOMETRY.direction)
    _tcia_case(tmp_path / "src" / "01")
    _tcia_case(tmp_path / "src" / "02", post_geometry=far)
    message = _error(_convert("longitudinal", tmp_path / "src", tmp_path / "raw"))
    mask = (tmp_path / "src" / "02" / "Post_Mask.nii.gz").resolve()
    assert message.startswith(
        f"{mask}: the time point 2 tumour (64 voxels, 64 of them outside time point 1's field of "
        "view) leaves no voxel on time point 1's grid, so the recurrence target would be empty"
    )
    assert _nothing_written(tmp_path / "raw")


def test_time_point_2_partly_outside_warns_naming_the_case(tmp_path: Path) -> None:
    # Shifted by 2 slices (4 mm) along Z: the tumour's last slice (4) maps beyond time point 1's
    # last slice (5), its other slices onto slices 3-5.
    shifted = Geometry(SHAPE, GEOMETRY.spacing, (4.0, 0.0, 0.0), GEOMETRY.direction)
    post = _tcia_case(tmp_path / "src" / "07", post_geometry=shifted)
    result = _convert("longitudinal", tmp_path / "src", tmp_path / "raw")
    assert result.exit_code == 0, result.output
    on_grid = int(np.count_nonzero(post[:4]))  # slices 0-3 land on time point 1's slices 2-5
    outside = int(np.count_nonzero(post)) - on_grid
    assert outside == 16
    assert (
        f"warning: 07: {outside} of 64 time point 2 tumour voxels (25%) lie outside time point "
        "1's field of view and are missing from its recurrence target"
    ) in result.output
    target, _ = read_image(tmp_path / "raw" / "Dataset040_X" / "recurrenceTr" / "07.nii.gz")
    np.testing.assert_array_equal(target[2:], (post[:4] != 0).astype(np.uint8))
    assert int(target.sum()) == on_grid


def test_real_tcia_placeholder_spacing_warns_and_points_to_spacing(
    shared_data: Path, tmp_path: Path
) -> None:
    case = shared_data / "tcia_progression" / "01"
    geometry = read_geometry(case / "Pre_Scan_T1.nii.gz")
    assert geometry.spacing == (1.0, 1.0, 1.0)  # the sample's placeholder header
    result = _convert("longitudinal", case, tmp_path / "raw")
    assert result.exit_code == 0, result.output
    warning = (
        "warning: 1 of 1 case(s) have header spacing 1x1x1 mm on grids too small to hold a brain "
        f"(e.g. 01: {'x'.join(map(str, geometry.shape))} voxels, so {min(geometry.shape)} mm "
        "along one axis)"
    )
    assert warning in result.output
    assert "--spacing Z Y X" in result.output
    fixed = _convert("longitudinal", case, tmp_path / "raw2", "--spacing", "6", "0.9", "0.9")
    assert fixed.exit_code == 0, fixed.output
    assert "warning" not in fixed.output


def test_1mm_headers_of_a_whole_brain_grid_give_no_spacing_warning(tmp_path: Path) -> None:
    # A 1 mm grid at least 12 cm along every axis holds a brain: no placeholder.
    brats = Geometry((120, 128, 128), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), GEOMETRY.direction)
    case = tmp_path / "src" / "p1"
    for time_point in ("tp1", "tp2"):
        write_image(case / time_point / "t1c.nii.gz", np.zeros(brats.shape, np.int16), brats)
        mask = np.zeros(brats.shape, np.uint8)
        mask[70:80, 100:110, 100:110] = 1
        write_image(case / time_point / "mask.nii.gz", mask, brats)
    result = _convert("longitudinal", tmp_path / "src", tmp_path / "raw")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def test_a_symlinked_single_case_folder_keeps_its_own_name(
    shared_data: Path, tmp_path: Path
) -> None:
    _brats2021_case(tmp_path / "storage" / "x9", seed=3)
    (tmp_path / "BraTS2021_00123").symlink_to(tmp_path / "storage" / "x9")
    (tmp_path / "patient_A").symlink_to(shared_data / "tcia_progression" / "01")
    assert _convert("brats", tmp_path / "BraTS2021_00123", tmp_path / "raw").exit_code == 0
    labels = tmp_path / "raw" / "Dataset040_X" / "labelsTr"
    assert [p.name for p in labels.iterdir()] == ["BraTS2021_00123.nii.gz"]
    result = _convert("longitudinal", tmp_path / "patient_A", tmp_path / "raw", dataset_id=41)
    assert result.exit_code == 0, result.output
    images = tmp_path / "raw" / "Dataset041_X" / "imagesTr"
    assert [p.name for p in images.iterdir()] == ["patient_A_0000.nii.gz"]
