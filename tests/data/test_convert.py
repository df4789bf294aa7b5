from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tumorseg.constants import Modality
from tumorseg.data.convert import convert_brats, convert_longitudinal, convert_msd
from tumorseg.data.convert.common import BRAIN_MASK, SEGMENTATION, file_role
from tumorseg.data.convert.sources import image_files
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_geometry, read_image, write_image
from tumorseg.data.labels import LabelConvention
from tumorseg.data.validate import validate_dataset
from tumorseg.errors import TumorsegError

SHAPE = (6, 8, 10)
GEOMETRY = Geometry(SHAPE, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _label(values: tuple[int, ...]) -> np.ndarray:
    """A label image holding each of ``values`` in its own block of voxels."""
    label = np.zeros(SHAPE, np.uint8)
    for i, v in enumerate(values):
        label[1 + i % 4, 2:5, 1 + 2 * (i // 4) : 3 + 2 * (i // 4)] = v
    return label


def _write_case(folder: Path, names: dict[str, str], labels: tuple[int, ...] = (1, 2, 4)) -> None:
    """Write images named by role: ``{"FLAIR": "x_flair.nii.gz", "seg": "x_seg.nii.gz"}``."""
    rng = np.random.default_rng(len(str(folder)))
    for role, name in names.items():
        array = _label(labels) if role == "seg" else rng.normal(5, 1, SHAPE).astype(np.float32)
        write_image(folder / name, array, GEOMETRY)


def _brats2021_case(src: Path, case: str, with_seg: bool = True) -> Path:
    folder = src / case
    names = {m: f"{case}_{m.lower()}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")}
    if with_seg:
        names["seg"] = f"{case}_seg.nii.gz"
    _write_case(folder, names)
    return folder


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("BraTS2021_00000_t1ce.nii.gz", Modality.T1C),
        ("BraTS2021_00000_seg.nii.gz", SEGMENTATION),
        ("BraTS-GLI-00001-000-t2f.nii.gz", Modality.FLAIR),
        ("seg-BraTS23_1.nii.gz", SEGMENTATION),
        ("Flair_subtrMeanDivStd.nii.gz", Modality.FLAIR),
        ("VSD.Brain.XX.O.MR_T1c.54513.mha", Modality.T1C),
        ("VSD.Brain_3more.XX.O.OT.54517.mha", SEGMENTATION),
        ("brainmask.nii.gz", BRAIN_MASK),
        ("Pre_Scan_T1.nii.gz", Modality.T1),
        ("notes.nii.gz", None),
    ],
)
def test_file_role_from_name(name: str, role: object) -> None:
    assert file_role(Path(name)) == role


def test_brats2021_layout_maps_labels_and_splits_test_cases(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for case in ("BraTS2021_00000", "BraTS2021_00001"):
        _brats2021_case(src, case)
    _brats2021_case(src, "BraTS2021_00099", with_seg=False)
    result = convert_brats(src, tmp_path / "raw", 5, "B21", num_processes=2)
    folder = tmp_path / "raw" / "Dataset005_B21"
    assert result.folder == folder
    assert (result.num_training, result.num_test) == (2, 1)
    dj = DatasetJson.read(folder)
    assert dj.modalities == (Modality.T1, Modality.T1C, Modality.T2, Modality.FLAIR)
    assert dj.label_convention is LabelConvention.BRATS2021
    label, _ = read_image(folder / "labelsTr" / "BraTS2021_00000.nii.gz")
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3}  # 4 (ET) became 3
    source_t1ce, _ = read_image(src / "BraTS2021_00000" / "BraTS2021_00000_t1ce.nii.gz")
    written, geometry = read_image(folder / "imagesTr" / "BraTS2021_00000_0001.nii.gz")
    np.testing.assert_array_equal(written, source_t1ce)
    assert geometry == GEOMETRY
    assert (
        sorted(p.name for p in (folder / "imagesTs").iterdir())[0] == "BraTS2021_00099_0000.nii.gz"
    )
    assert validate_dataset(folder).ok


def test_brats2023_single_case_folder(tmp_path: Path) -> None:
    src = tmp_path / "BraTS-GLI-00001-000"
    names = {m: f"{m}.nii.gz" for m in ("t1n", "t1c", "t2w", "t2f")}
    _write_case(src, {**names, "seg": "seg-model.nii.gz"}, labels=(1, 2, 3))
    result = convert_brats(src, tmp_path / "raw", 6, "B23")
    assert result.label_convention is LabelConvention.BRATS2023
    assert result.channel_names == ("T1", "T1c", "T2", "FLAIR")
    assert (result.folder / "labelsTr" / "BraTS-GLI-00001-000.nii.gz").is_file()


def test_brats2013_nested_subset_with_brainmask(tmp_path: Path) -> None:
    src = tmp_path / "HG"
    for case in ("0001", "0002"):
        for kind in ("MR_Flair.100", "MR_T1c.101", "OT.102"):
            nested = src / case / f"VSD.Brain.XX.O.{kind}"
            role = "seg" if kind.startswith("OT") else "img"
            _write_case(nested, {role: f"VSD.Brain.XX.O.{kind}.mha"}, labels=(1, 2, 3, 4))
        brain = np.zeros(SHAPE, np.uint8)
        brain[1:5, 1:7, 1:9] = 1
        write_image(src / case / "brainmask.nii.gz", brain, GEOMETRY)
    result = convert_brats(src, tmp_path / "raw", 7, "B13")
    assert result.channel_names == ("T1c", "FLAIR")
    assert result.label_convention is LabelConvention.BRATS2013
    assert any("brainmask" in note for note in result.notes)
    flair, _ = read_image(result.folder / "imagesTr" / "0001_0001.nii.gz")
    assert np.all(flair[0] == 0)
    assert np.all(flair[1:5, 1:7, 1:9] != 0)
    label, _ = read_image(result.folder / "labelsTr" / "0001.nii.gz")
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3}  # 3 non-enhancing merged into 1


def _no_dataset_left(raw: Path) -> bool:
    return not raw.exists() or not any(raw.iterdir())


def _corrupt_nan(folder: Path) -> None:
    array, geometry = read_image(folder / "c1_t2.nii.gz")
    array[0, 0, 0] = np.nan
    write_image(folder / "c1_t2.nii.gz", array, geometry)


def _corrupt_geometry(folder: Path) -> None:
    array, _ = read_image(folder / "c1_t2.nii.gz")
    write_image(
        folder / "c1_t2.nii.gz", array, Geometry(SHAPE, (3.0, 1, 1), (0, 0, 0), GEOMETRY.direction)
    )


def _corrupt_label(folder: Path) -> None:
    write_image(folder / "c1_seg.nii.gz", _label((1, 2, 7)), GEOMETRY)


def _truncate(folder: Path) -> None:
    path = folder / "c1_flair.nii.gz"
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda f: (f / "c1_t2.nii.gz").unlink(), "c1: has modalities T1, T1c, FLAIR but c0 has"),
        (_corrupt_geometry, r"c1_t2.nii.gz: geometry differs from c1_t1.nii.gz \(spacing"),
        (_corrupt_label, r"c1_seg.nii.gz: label value\(s\) \[7\] are not in the brats2021"),
        (_corrupt_nan, "c1_t2.nii.gz: contains 1 NaN/Inf voxels"),
        (_truncate, "c1_flair.nii.gz: is truncated or corrupt"),
        (lambda f: (f / "c1_t1.nii.gz").rename(f / "c1_flair_copy.nii.gz"), "more than one FLAIR"),
    ],
    ids=["missing-channel", "geometry", "unknown-label", "nan", "truncated", "duplicate-modality"],
)
def test_bad_brats_input_is_one_line_and_leaves_nothing(
    tmp_path: Path, corrupt: object, message: str
) -> None:
    src = tmp_path / "src"
    _brats2021_case(src, "c0")
    corrupt(_brats2021_case(src, "c1"))  # type: ignore[operator]
    with pytest.raises(TumorsegError, match=message) as info:
        convert_brats(src, tmp_path / "raw", 9, "Bad")
    assert "\n" not in str(info.value)
    assert _no_dataset_left(tmp_path / "raw")


def test_error_in_a_parallel_worker_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _brats2021_case(src, "c0")
    _corrupt_label(_brats2021_case(src, "c1"))
    with pytest.raises(TumorsegError, match=r"c1_seg.nii.gz: label value\(s\) \[7\]"):
        convert_brats(src, tmp_path / "raw", 9, "Bad", num_processes=2)
    assert _no_dataset_left(tmp_path / "raw")


def test_empty_and_unknown_sources_fail(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TumorsegError, match="empty"):
        convert_brats(tmp_path / "empty", tmp_path / "raw", 1, "X")
    _write_case(tmp_path / "odd" / "case", {"img": "scan_a.nii.gz"})
    with pytest.raises(TumorsegError, match=r"no modality recognised among scan_a\.nii\.gz"):
        convert_brats(tmp_path / "odd", tmp_path / "raw", 1, "X")
    with pytest.raises(TumorsegError, match="unknown longitudinal layout"):
        convert_longitudinal(tmp_path / "odd", tmp_path / "raw", 1, "X")
    with pytest.raises(TumorsegError, match="no imagesTr/"):
        convert_msd(tmp_path / "odd", tmp_path / "raw", 1, "X")
    assert _no_dataset_left(tmp_path / "raw")


def test_existing_id_needs_force(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _brats2021_case(src, "c0")
    raw = tmp_path / "raw"
    (raw / "Dataset003_Old").mkdir(parents=True)
    (raw / "Dataset003_Old" / "keep.txt").write_text("x")
    with pytest.raises(TumorsegError, match="dataset id 3 is taken \\(Dataset003_Old\\)"):
        convert_brats(src, raw, 3, "New")
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset003_Old"]
    convert_brats(src, raw, 3, "New", force=True)
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset003_New"]


def _write_msd(src: Path, n_train: int = 2) -> np.ndarray:
    """A tiny Task01_BrainTumour: 4D images (X, Y, Z, 4) in MSD channel order; returns case 0."""
    rng = np.random.default_rng(0)
    affine = np.diag([1.0, 1.5, 2.0, 1.0])
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (src / folder).mkdir(parents=True)
    first = None
    for i in range(n_train + 1):
        data = rng.normal(size=(10, 8, 6, 4)).astype(np.float32)
        data[..., 2] += 100  # t1gd, channel 2 in the source, channel 1 (T1c) after conversion
        first = data if first is None else first
        split = "imagesTr" if i < n_train else "imagesTs"
        nib.save(nib.Nifti1Image(data, affine), src / split / f"BRATS_{i:03d}.nii.gz")
        if i < n_train:
            label = np.zeros((10, 8, 6), np.uint8)
            label[2:5, 2:5, 1:3], label[3, 3, 2] = 1, 3
            nib.save(nib.Nifti1Image(label, affine), src / "labelsTr" / f"BRATS_{i:03d}.nii.gz")
    modality = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    (src / "dataset.json").write_text(json.dumps({"modality": modality, "numTraining": n_train}))
    (src / "imagesTr" / "._BRATS_000.nii.gz").write_bytes(b"macOS resource fork")
    assert first is not None
    return first


def test_msd_4d_is_split_into_channels(tmp_path: Path) -> None:
    source = _write_msd(tmp_path / "Task01_BrainTumour")
    result = convert_msd(tmp_path / "Task01_BrainTumour", tmp_path / "raw", 10, "MSD")
    assert (result.num_training, result.num_test) == (2, 1)
    assert result.channel_names == ("T1", "T1c", "T2", "FLAIR")
    t1c, geometry = read_image(result.folder / "imagesTr" / "BRATS_000_0001.nii.gz")
    np.testing.assert_allclose(t1c, source[..., 2].transpose(2, 1, 0))
    assert geometry.shape == (6, 8, 10)
    assert geometry.spacing == (2.0, 1.5, 1.0)
    label, _ = read_image(result.folder / "labelsTr" / "BRATS_000.nii.gz")
    assert set(np.unique(label).tolist()) == {0, 2, 3}  # MSD 1 (edema) -> 2, 3 (ET) stays 3
    assert validate_dataset(result.folder).ok


def _write_tcia(src: Path, post_geometry: Geometry | None = None) -> None:
    for case in ("01", "02"):
        folder = src / case
        rng = np.random.default_rng(int(case))
        write_image(folder / "Pre_Scan_T1.nii.gz", rng.normal(size=SHAPE), GEOMETRY)
        write_image(folder / "Post_Scan_T1.nii.gz", rng.normal(size=SHAPE), GEOMETRY)
        pre, post = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
        pre[2:4, 2:4, 2:4], post[2:5, 2:6, 2:6] = 255, 255
        write_image(folder / "Pre_Mask.nii.gz", pre, GEOMETRY)
        write_image(folder / "Post_Mask.nii.gz", post, post_geometry or GEOMETRY)


def test_tcia_longitudinal_with_spacing_override(tmp_path: Path) -> None:
    _write_tcia(tmp_path / "tcia")
    result = convert_longitudinal(
        tmp_path / "tcia", tmp_path / "raw", 11, "Rec", spacing=(6, 0.9, 0.9)
    )
    dj = DatasetJson.read(result.folder)
    assert dj.channel_names == {0: "T1c"}
    assert dj.targets == {"recurrence": "recurrenceTr"}
    assert dj.label_values == (0, 1)
    assert dj.label_convention is LabelConvention.BINARY
    target, geometry = read_image(result.folder / "recurrenceTr" / "01.nii.gz")
    np.testing.assert_allclose(geometry.spacing, (6.0, 0.9, 0.9), rtol=1e-6)
    assert set(np.unique(target).tolist()) == {0, 1}
    assert int(target.sum()) == 3 * 4 * 4
    spacing = read_geometry(result.folder / "imagesTr" / "01_0000.nii.gz").spacing
    np.testing.assert_allclose(spacing, (6.0, 0.9, 0.9), rtol=1e-6)
    assert validate_dataset(result.folder).ok


def test_generic_longitudinal_resamples_time_point_2(tmp_path: Path) -> None:
    src = tmp_path / "pairs"
    for case in ("p1", "p2"):
        _write_case(src / case / "tp1", {"a": "flair.nii.gz", "b": "t1c.nii.gz"})
        _write_case(src / case / "tp1", {"seg": "tumor_mask.nii.gz"}, labels=(1,))
        # Time point 2 on a grid shifted by one voxel (2 mm) along Z.
        shifted = Geometry(SHAPE, GEOMETRY.spacing, (2.0, 0.0, 0.0), GEOMETRY.direction)
        mask = np.zeros(SHAPE, np.uint8)
        mask[1, 3, 3] = 1
        write_image(src / case / "tp2" / "seg.nii.gz", mask, shifted)
    result = convert_longitudinal(src, tmp_path / "raw", 12, "Pairs")
    assert result.channel_names == ("T1c", "FLAIR")
    assert any("resampled" in n for n in result.notes)
    target, _ = read_image(result.folder / "recurrenceTr" / "p1.nii.gz")
    assert target[2, 3, 3] == 1
    assert int(target.sum()) == 1


def _sample(shared: Path, name: str, cases: int | None, tmp_path: Path) -> Path:
    """The shared sample ``name``, or a view of its first ``cases`` case folders (file links)."""
    source = shared / name
    if cases is None:
        return source
    view = tmp_path / name
    for folder in sorted(p for p in source.iterdir() if p.is_dir())[:cases]:
        (view / folder.name).mkdir(parents=True)
        for file in folder.iterdir():
            (view / folder.name / file.name).symlink_to(file)
    return view


def _slab(case_folder: Path, out: Path, slices: int = 8) -> Path:
    """Copy of a real case folder holding only ``slices`` axial slices through the tumour.

    Files keep their names, full in-plane extent (so the background is still there) and their
    geometry; only the voxels outside the slab are left out, which keeps the test fast.
    """
    import SimpleITK as sitk

    files = image_files(case_folder, recursive=False)
    seg = next(p for p in files if file_role(p) == SEGMENTATION)
    label, _ = read_image(seg)
    centre = int(np.argwhere(label > 0)[:, 0].mean())
    for path in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = list(reader.GetSize())
        reader.SetExtractIndex([0, 0, centre - slices // 2])
        reader.SetExtractSize([size[0], size[1], slices])
        out.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(reader.Execute(), str(out / path.name), useCompression=True)
    return out


# The real samples are 240x240x155 volumes (seconds per file on 2 busy cores): the default suite
# converts slabs through the tumour or a few cases, the slow suite the whole samples.
@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_real_brats2015_converts_and_validates(
    shared_data: Path, tmp_path: Path, full: bool
) -> None:
    src = shared_data / "brats2015_flair_t1c"
    if not full:
        case = "brats_2013_pat0003_1"
        src = _slab(src / case, tmp_path / "src" / case).parent
    result = convert_brats(src, tmp_path / "raw", 20, "B15")
    assert result.channel_names == ("T1c", "FLAIR")
    assert result.num_training == (4 if full else 1)
    assert result.label_convention is LabelConvention.BRATS2013
    report = validate_dataset(result.folder, num_processes=2 if full else 1)
    assert report.ok, report.problems
    flair, _ = read_image(result.folder / "imagesTr" / "brats_2013_pat0003_1_0001.nii.gz")
    assert flair[0, 0, 0] == 0  # the z-scored, nonzero background was masked
    assert any("brainmask" in note for note in result.notes)
    assert all((c.foreground_voxels or 0) > 1000 for c in report.cases)


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_real_brats2023_case_converts_and_validates(
    shared_data: Path, tmp_path: Path, full: bool
) -> None:
    src = shared_data / "brats2023_gli_case"
    if not full:
        src = _slab(src, tmp_path / "brats2023_gli_case")
    result = convert_brats(src, tmp_path / "raw", 21, "B23")
    assert result.channel_names == ("T1", "T1c", "T2", "FLAIR")
    assert result.label_convention is LabelConvention.BRATS2023
    report = validate_dataset(result.folder)
    assert report.ok, report.problems
    assert report.summary["modalities"] == "T1, T1c, T2, FLAIR"


@pytest.mark.parametrize("cases", [1, pytest.param(None, marks=pytest.mark.slow)])
def test_real_tcia_converts_and_validates(
    shared_data: Path, tmp_path: Path, cases: int | None
) -> None:
    src = _sample(shared_data, "tcia_progression", cases, tmp_path)
    result = convert_longitudinal(src, tmp_path / "raw", 22, "TCIA", spacing=(6.0, 0.9, 0.9))
    assert result.num_training == (cases or 8)
    assert result.channel_names == ("T1c",)
    report = validate_dataset(result.folder)
    assert report.ok, report.problems
    np.testing.assert_allclose(report.summary["spacing (Z, Y, X) mm"]["median"], (6.0, 0.9, 0.9))
    assert all((c.foreground_voxels or 0) > 0 for c in report.cases)
