"""Unit tests of the realistic generator's physical models against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tumorseg.data.synthetic.acquisition import Acquisition, ChannelAcquisition, acquire
from tumorseg.data.synthetic.anatomy import LOBE_WEIGHTS, draw_tumour_site, find_landmarks
from tumorseg.data.synthetic.contrasts import CHANNELS
from tumorseg.data.synthetic.infiltration import tissue_distance
from tumorseg.data.synthetic.mass_effect import MassEffect, warp
from tumorseg.data.synthetic.template import deform_template, load_template


def test_tissue_distance_is_path_length_weighted_by_diffusivity() -> None:
    """Along a row of uniform tissue the distance is the path length; where the diffusivity is
    a tenth, each millimetre counts ten; tissue without diffusivity is never reached."""
    spacing = 2.0
    d = np.ones((5, 5, 30))
    source = np.zeros(d.shape, bool)
    source[2, 2, 0] = True
    distance = tissue_distance(d, source, spacing)
    np.testing.assert_allclose(distance[2, 2, :10], spacing * np.arange(10), rtol=1e-6)
    d[..., 10:] = 0.1
    slow = tissue_distance(d, source, spacing)
    # Steps inside the slow tissue cost 10x (the first one half, as costs are averaged).
    step = slow[2, 2, 15] - slow[2, 2, 14]
    assert step == pytest.approx(10 * spacing, rel=1e-6)
    d[..., 20] = 0.0
    assert np.isinf(tissue_distance(d, source, spacing)[..., 21:]).all()


def test_mass_effect_magnifies_the_core_and_spares_the_surface() -> None:
    spacing = 2.0
    grid = np.indices((48, 48, 48)).astype(float)
    r = np.sqrt(((grid - 24.0) ** 2).sum(axis=0))
    core = r <= 6.0
    deep = np.full(core.shape, 1e3, np.float32)
    effect = MassEffect.of(core, 0.2, spacing)
    _, (moved,), shift = warp(effect, deep, spacing, [], [core.astype(np.uint8)])
    assert moved.sum() / core.sum() == pytest.approx(1.2**3, rel=0.1)
    assert shift == pytest.approx(0.2 * effect.radius_mm, rel=0.15)
    # Far away the tissue barely moves; at the brain surface (depth 0) it does not move.
    far = np.array([[24.0, 24.0, 46.0]]) * spacing
    assert np.linalg.norm(effect.displacement(far, deep, spacing)) < 0.2 * spacing
    surface = np.zeros(core.shape, np.float32)
    near = np.array([[24.0, 24.0, 33.0]]) * spacing
    assert np.linalg.norm(effect.displacement(near, surface, spacing)) == 0.0


def _channel(slice_mm: float, noise: float = 0.0) -> ChannelAcquisition:
    return ChannelAcquisition(
        scale=1.0,
        gamma=1.0,
        noise=noise,
        blur_mm=0.0,
        bias=0.0,
        slice_mm=slice_mm,
        slice_axis=0,
        slice_offset=0.3,
        shift_mm=(0.0, 0.0, 0.0),
    )


def _acquisition(thick_mm: float, noise: float) -> Acquisition:
    channels = {ch: _channel(thick_mm if ch == "FLAIR" else 0.0, noise) for ch in CHANNELS}
    return Acquisition(1.5, 0.0, 80.0, channels)


def test_thick_slices_remove_through_plane_detail_only() -> None:
    rng = np.random.default_rng(0)
    texture = 1.0 + 0.3 * ndimage.gaussian_filter(rng.standard_normal((40, 40, 40)), 0.8)
    inside = np.ones(texture.shape, bool)
    images = acquire([texture.astype(np.float32)] * 4, inside, _acquisition(6.0, 0.0), rng, 2.0)
    t1c, flair = images[1], images[3]
    core = (slice(4, -4),) * 3

    def energy(image: np.ndarray, axis: int) -> float:
        return float((np.diff(image[core], axis=axis) ** 2).mean())

    assert energy(flair, 0) < 0.3 * energy(flair, 1)
    assert energy(flair, 2) == pytest.approx(energy(flair, 1), rel=0.2)
    assert energy(t1c, 0) == pytest.approx(energy(t1c, 1), rel=0.2)


def test_rician_noise_scales_with_voxel_volume() -> None:
    """sigma is given for 1 mm^3; a 2 mm voxel averages 8 of them: sigma / sqrt(8)."""
    rng = np.random.default_rng(1)
    signal = np.ones((30, 30, 30), np.float32)
    inside = np.ones(signal.shape, bool)
    images = acquire([signal] * 4, inside, _acquisition(0.0, 0.08), rng, 2.0)
    # At SNR ~35 a Rician magnitude is Gaussian to within 0.1 %.
    assert images[1].std() == pytest.approx(0.08 / np.sqrt(8.0), rel=0.05)


def test_tumour_sites_follow_the_lobe_frequencies() -> None:
    template = load_template(4.0)
    rng = np.random.default_rng(2)
    wm, gm, csf = deform_template(template, rng)
    landmarks = find_landmarks(wm, gm, csf, template.geometry)
    lobes = [draw_tumour_site(wm, landmarks, rng)[1] for _ in range(300)]
    frontal = lobes.count("frontal") / len(lobes)
    assert frontal == pytest.approx(LOBE_WEIGHTS["frontal"], abs=0.1)
    assert lobes.count("occipital") / len(lobes) < 0.1
    assert set(lobes) <= set(LOBE_WEIGHTS)
