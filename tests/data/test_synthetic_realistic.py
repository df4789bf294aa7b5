"""The realistic synthetic generator: each phenomenon is present, measurable and unlabelled
where it should be. Coarse grids (3 mm) and few cases keep these fast; phenomena that a case
draws only sometimes are switched on by raising their probability for the test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from tumorseg.data.synthetic import (
    SyntheticCase,
    case_rng,
    core_features,
    generate_case,
    lookalikes,
    multifocal,
)
from tumorseg.data.synthetic.compartments import CYST, HAEMORRHAGE
from tumorseg.data.synthetic.realistic import count_foci

SPACING = 3.0
HEALTHY = 1  # stream of healthy subjects


def _white_reference(case: SyntheticCase, channel: int, far_from: np.ndarray) -> float:
    """Median intensity of normal white matter (far from ``far_from``, no look-alikes)."""
    maps = case.maps
    quiet = (maps["wmh"] < 0.05) & (maps["vessel"] < 0.05) & (maps["dura"] < 0.05)
    far = ~ndimage.binary_dilation(far_from, iterations=3) if far_from.any() else True
    normal = (case.tissue[0] > 0.9) & (case.label == 0) & quiet & far & (case.images[1] > 0)
    return float(np.median(case.images[channel][normal]))


@pytest.fixture(scope="module")
def tumour_cases() -> list[SyntheticCase]:
    return [generate_case(case_rng(0, i), SPACING) for i in range(3)]


@pytest.fixture(scope="module")
def basic_cases() -> list[SyntheticCase]:
    return [generate_case(case_rng(0, i), SPACING, difficulty="basic") for i in range(3)]


@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case multifocal, cystic, bleeding and with Fazekas grade 3 white matter."""
    monkeypatch.setattr(multifocal, "P_MULTIFOCAL", 1.0)
    monkeypatch.setattr(core_features, "P_CYST", 1.0)
    monkeypatch.setattr(core_features, "P_HAEMORRHAGE", (1.0, 1.0))
    monkeypatch.setattr(lookalikes, "PERIVENTRICULAR_GRADES", (0.0, 0.0, 0.0, 1.0))
    return


def test_realistic_is_deterministic_per_seed_and_index() -> None:
    first = generate_case(case_rng(4, 2), 6.0, longitudinal=True)
    again = generate_case(case_rng(4, 2), 6.0, longitudinal=True)
    other = generate_case(case_rng(4, 3), 6.0, longitudinal=True)
    assert first.followup_images is not None
    assert again.followup_images is not None
    for a, b in zip(
        (*first.images, *first.followup_images, first.label),
        (*again.images, *again.followup_images, again.label),
        strict=True,
    ):
        assert a.tobytes() == b.tobytes()
    assert first.info == again.info
    assert not np.array_equal(first.images[3], other.images[3])
    healthy = generate_case(case_rng(4, 0, HEALTHY), 6.0, tumour=False)
    assert healthy.images[3].tobytes() == (
        generate_case(case_rng(4, 0, HEALTHY), 6.0, tumour=False).images[3].tobytes()
    )


def test_multifocal_cases_have_separate_foci_with_core(forced: None) -> None:
    for index in range(2):
        case = generate_case(case_rng(0, index), SPACING)
        satellites = case.info["satellite_seeds"]
        assert satellites, "a forced multifocal case drew no satellite"
        components, _ = ndimage.label(case.label > 0, structure=np.ones((3, 3, 3)))
        main = components[tuple(case.info["seed_voxel"])]
        # Each satellite seed lies in a tumour component other than the main lesion's.
        for seed in satellites:
            focus = components[tuple(seed)]
            assert focus > 0
            assert focus != main
            assert np.isin(case.label[components == focus], (1, 3)).any(), "focus without core"
        assert count_foci(case.label) == case.info["foci"] >= 2


def test_cysts_and_haemorrhage_are_core_with_their_own_signal(forced: None) -> None:
    case = generate_case(case_rng(0, 1), SPACING)
    codes = case.maps["compartments"]
    cyst, blood = codes == CYST, codes == HAEMORRHAGE
    assert cyst.sum() >= 3
    assert blood.sum() >= 3
    assert (case.label[cyst | blood] == 1).all(), "cysts and blood products are label 1"
    tumour = case.label > 0
    t1, t1c, t2, _ = (img / _white_reference(case, c, tumour) for c, img in enumerate(case.images))
    # Cyst: fluid, dark on T1 and bright on T2. Blood: bright on T1 already, dark on T2.
    assert np.median(t1[cyst]) < 0.6
    assert np.median(t2[cyst]) > 2.0
    assert np.median(t1[blood]) > 1.05
    assert np.median(t2[blood]) < np.median(t2[case.label == 2])
    # On T1c alone blood looks like enhancement; T1c minus T1 tells them apart.
    enhancing = case.label == 3
    assert np.median(t1c[blood]) > 1.05
    assert np.median(t1c[blood] - t1[blood]) < np.median(t1c[enhancing] - t1[enhancing])


def test_white_matter_hyperintensities_are_flair_bright_and_unlabelled(forced: None) -> None:
    case = generate_case(case_rng(2, 0, HEALTHY), SPACING, tumour=False)
    assert case.info["fazekas_periventricular"] == 3
    wmh = (case.maps["wmh"] > 0.8) & (case.tissue[0] > 0.7) & (case.images[3] > 0)
    assert wmh.sum() > 50
    assert not case.label[wmh].any()
    flair = case.images[3] / _white_reference(case, 3, wmh)
    t1c = case.images[1] / _white_reference(case, 1, wmh)
    assert np.median(flair[wmh]) > 1.4
    assert np.median(t1c[wmh]) < 1.05, "hyperintensities do not enhance"


def test_vessels_and_choroid_plexus_enhance_and_are_unlabelled(
    tumour_cases: list[SyntheticCase],
) -> None:
    for case in tumour_cases:
        away = ~ndimage.binary_dilation(case.label > 0, iterations=2)
        for name in ("vessel", "choroid"):
            structure = (case.maps[name] > 0.6) & (case.images[1] > 0) & away
            assert structure.sum() >= 3, name
            t1c = case.images[1] / _white_reference(case, 1, case.label > 0)
            t1 = case.images[0] / _white_reference(case, 0, case.label > 0)
            # Enhancing: far brighter after contrast than before (both relative to white
            # matter); the choroid glomus also outshines white matter (thin veins at 3 mm are
            # diluted by partial volume).
            assert np.median(t1c[structure] - t1[structure]) > 0.3, name
            if name == "choroid":
                assert np.median(t1c[structure]) > 1.25


def _flair_profile(case: SyntheticCase) -> dict[int, float]:
    """Median FLAIR of white matter (relative to distant white matter) per ring of voxels at
    signed distance d from the whole-tumour border (d < 0 outside), core excluded."""
    tumour = case.label > 0
    signed = np.where(
        tumour, ndimage.distance_transform_edt(tumour), -ndimage.distance_transform_edt(~tumour)
    )
    white = (case.tissue[0] > 0.7) & ~np.isin(case.label, (1, 3))
    reference = np.median(case.images[3][white & (signed < -6)])
    return {
        d: float(np.median(case.images[3][white & (np.round(signed) == d)]) / reference)
        for d in (-3, -2, -1, 1, 2, 3)
    }


def test_edema_fades_across_the_label_border(
    tumour_cases: list[SyntheticCase], basic_cases: list[SyntheticCase]
) -> None:
    """Realistic FLAIR keeps rising smoothly from outside the label to its plateau; the basic
    generator's edema stops at its label (flat outside)."""
    realistic = [_flair_profile(c) for c in tumour_cases]
    basic = [_flair_profile(c) for c in basic_cases]
    for profile in realistic:
        values = [profile[d] for d in sorted(profile)]
        assert all(b >= a - 0.05 for a, b in itertools.pairwise(values)), profile
    # Hyperintensity outside the label: the ring next to the border against three voxels out,
    # as a share of the whole rise from outside to the plateau three voxels in.
    outside_real = [(p[-1] - p[-3]) / (p[3] - p[-3]) for p in realistic]
    outside_basic = [(p[-1] - p[-3]) / (p[3] - p[-3]) for p in basic]
    assert min(outside_real) > max(outside_basic)
    assert np.mean(outside_real) > 2.0 * np.mean(outside_basic)


def test_edema_label_is_a_level_set_of_the_water_field(
    tumour_cases: list[SyntheticCase],
) -> None:
    for case in tumour_cases:
        # The recorded level is rounded to 3 decimals.
        water, level = case.maps["water"], case.info["edema_border_level"] - 5e-4
        edema = case.label == 2
        assert (water[edema] >= level).all()
        free = (case.label == 0) & (case.tissue[0] + case.tissue[1] > 0.3) & (case.images[0] > 0)
        above = free & (water >= level)
        assert above.sum() <= 0.02 * edema.sum(), "unlabelled voxels above the border level"
        fading = free & (water > 0.05) & (water < level)
        border = edema & ndimage.binary_dilation(case.label == 0)
        assert fading.sum() > 0.5 * border.sum(), "no sub-threshold fade beyond the label"


def _energy(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean squared neighbour difference along each axis, inside ``mask``."""
    out = []
    for axis in range(3):
        n = image.shape[axis]
        pair = np.take(mask, range(n - 1), axis=axis) & np.take(mask, range(1, n), axis=axis)
        out.append(float((np.diff(image, axis=axis)[pair] ** 2).mean()))
    return np.array(out)


def test_thick_slice_channels_lose_through_plane_detail() -> None:
    seen = 0
    for index in range(3):
        case = generate_case(case_rng(0, index, HEALTHY), 2.0, tumour=False)
        mask = ndimage.binary_erosion(case.images[1] > 0, iterations=3)
        reference = _energy(case.images[1] / np.median(case.images[1][mask]), mask)  # T1c: 3D
        channels = ("T1", "T1c", "T2", "FLAIR")
        for name, slices in case.info["acquisition"]["thick_slices"].items():
            if slices["mm"] < 4.0:  # thinner slices barely differ from the 2 mm grid
                continue
            image = case.images[channels.index(name)]
            energy = _energy(image / np.median(image[mask]), mask)
            axis = slices["axis"]
            others = [a for a in range(3) if a != axis]
            anisotropy = energy[axis] / energy[others].mean()
            baseline = reference[axis] / reference[others].mean()
            assert anisotropy < 0.75 * baseline, (name, slices, anisotropy, baseline)
            seen += 1
    assert seen >= 2, "no thick-slice channel among the subjects tested"


def test_scanner_and_contrast_vary_between_cases() -> None:
    """Scale, bias-field non-uniformity and grey/white contrast differ from case to case."""
    scales, bias, contrast = [], [], []
    for index in range(6):
        case = generate_case(case_rng(1, index, HEALTHY), 4.0, tumour=False)
        flair = case.images[3]
        brain = flair > 0
        white = brain & (case.tissue[0] > 0.95) & (case.maps["wmh"] < 0.05)
        grey = brain & (case.tissue[1] > 0.9)
        scales.append(np.median(flair[brain]))
        # Low-frequency non-uniformity: spread of white-matter means over the eight octants.
        points = np.argwhere(white)
        side = points > points.mean(axis=0)
        octant = side @ np.array([1, 2, 4])
        means = [flair[tuple(points[octant == k].T)].mean() for k in range(8)]
        bias.append(np.std(means) / np.mean(means))
        contrast.append(np.median(flair[grey]) / np.median(flair[white]))
    assert max(scales) / min(scales) > 2.0
    assert max(bias) / min(bias) > 1.5
    assert max(contrast) - min(contrast) > 0.05


def test_healthy_subjects_get_look_alikes_and_scanner_effects() -> None:
    case = generate_case(case_rng(0, 3, HEALTHY), SPACING, tumour=False)
    assert not case.label.any()
    assert case.info["difficulty"] == "realistic"
    assert {"fazekas_periventricular", "acquisition", "cortical_veins"} <= set(case.info)
    assert (case.maps["vessel"] > 0.5).any()
    assert (case.maps["choroid"] > 0.5).any()
