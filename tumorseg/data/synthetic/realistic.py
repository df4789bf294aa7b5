"""The realistic generator (``tumorseg synth --difficulty realistic``, the default).

The basic generator's anatomy (MNI152 tissue maps, a random deformation per subject) and
tumour growth (Fisher-Kolmogorov reaction-diffusion) with what makes real BraTS cases hard
for a segmenter, each phenomenon in its own module with the literature it imitates:

1. tumour site drawn by lobe with population frequencies (``anatomy``, Larjavaara 2007);
   diffusely infiltrating (non-enhancing) tumours get wider fronts (``tumour_growth``);
2. cysts and haemorrhage inside the core (``core_features``);
3. multifocal tumours: satellite foci apart from the main lesion (``multifocal``);
4. infiltrative edema: one smooth water field, images rendered from it and the label drawn at
   a per-case threshold of it, so the FLAIR border fades (``infiltration``);
5. mass effect: the tumour pushes ventricles, midline and sulci aside (``mass_effect``);
6. look-alikes in every subject: white-matter hyperintensities graded on the Fazekas scale,
   enhancing cortical veins, sinus remnant, choroid plexus and dura (``lookalikes``);
7. per-case contrast tables with wide ranges for the phenomena that vary most (enhancement
   strength, edema brightness, cyst protein content) and tissue texture (``appearance``);
8. scanner variability: field strength, bias fields, Rician noise, blur, thick 2D slices of
   T1 / T2 / FLAIR along a random axis, misregistration, intensity scale and response
   (``acquisition``);
9. imperfect skull stripping: the brain mask's border level varies smoothly (a few mm in or
   out of the brain), and dura remnants stay at the surface;
10. follow-up scans (``--longitudinal``): resection and regrowth as in the basic generator
    (``longitudinal``), with the edema rebuilt as in 4 and a second scanning session (new
    bias, noise, slices).

Labels keep the BraTS meaning (internal 0 background, 1 necrosis / cyst / haemorrhage /
non-enhancing core, 2 edema, 3 enhancing) and are 0 outside the brain mask. Every draw comes
from the case's generator in a fixed order, so a case is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from tumorseg.data.io import Geometry
from tumorseg.data.synthetic.acquisition import Acquisition, acquire
from tumorseg.data.synthetic.anatomy import Landmarks, draw_tumour_site, find_landmarks
from tumorseg.data.synthetic.appearance import SignalParameters, render_signal, sample_signal
from tumorseg.data.synthetic.compartments import (
    EDEMA,
    TumourAppearance,
    compartments_to_labels,
    perturbed_density,
    sample_appearance,
    tumour_compartments,
)
from tumorseg.data.synthetic.core_features import add_core_features
from tumorseg.data.synthetic.fields import smooth_random_field
from tumorseg.data.synthetic.infiltration import (
    EdemaModel,
    label_edema,
    sample_edema_model,
    water_content,
)
from tumorseg.data.synthetic.lookalikes import Lookalikes, sample_lookalikes
from tumorseg.data.synthetic.mass_effect import MassEffect, sample_swelling, warp
from tumorseg.data.synthetic.multifocal import draw_satellite_count, grow_satellite
from tumorseg.data.synthetic.tumour_growth import (
    GrowthParameters,
    diffusivity_map,
    sample_growth_parameters,
    seed_cells,
    simulate,
)

#: Front width sqrt(D / rho) in mm: enhancing (more circumscribed) vs diffusely infiltrating.
FRONT_WIDTH_MM = {True: (1.5, 4.0), False: (2.5, 5.0)}


@dataclass(frozen=True)
class Subject:
    """One subject as scanned: anatomy (after any mass effect) and what is drawn on it."""

    tissue: tuple[np.ndarray, np.ndarray, np.ndarray]  # wm, gm, csf fractions (Z, Y, X)
    geometry: Geometry
    landmarks: Landmarks
    lookalikes: Lookalikes
    signal: SignalParameters
    inside: np.ndarray  # bool skull-stripping mask
    info: dict[str, Any]

    @property
    def tissue_fraction(self) -> np.ndarray:
        return self.tissue[0] + self.tissue[1]


@dataclass(frozen=True)
class Tumour:
    """A grown tumour: compartment codes (edema included), edema water, the anatomy it has
    deformed, and what it needs to evolve (for a follow-up)."""

    codes: np.ndarray  # uint8 (Z, Y, X)
    water: np.ndarray  # float32 (Z, Y, X) in [0, 1]
    cells: np.ndarray  # float32 simulated density of all foci
    diffusivity: np.ndarray  # mm^2/day
    tissue: tuple[np.ndarray, np.ndarray, np.ndarray]  # wm, gm, csf after the mass effect
    growth: GrowthParameters
    appearance: TumourAppearance
    edema: EdemaModel
    info: dict[str, Any]


def draw_subject(
    geometry: Geometry,
    tissue: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
    landmarks: Landmarks | None = None,
) -> Subject:
    """Look-alikes, contrast tables and skull-stripping mask of one subject (``landmarks``
    are found from ``tissue`` unless given)."""
    wm, gm, csf = tissue
    spacing = float(geometry.spacing[0])
    if landmarks is None:
        landmarks = find_landmarks(wm, gm, csf, geometry)
    lookalikes, look_info = sample_lookalikes(wm, gm, csf, landmarks, rng)
    signal = sample_signal(rng)
    level = np.clip(0.35 + 0.12 * smooth_random_field(rng, wm.shape, spacing, 20.0), 0.15, 0.6)
    inside = (wm + gm + csf) > level
    return Subject(tissue, geometry, landmarks, lookalikes, signal, inside, look_info)


def grow_tumour(
    tissue: tuple[np.ndarray, np.ndarray, np.ndarray],
    landmarks: Landmarks,
    rng: np.random.Generator,
    spacing: float,
) -> Tumour:
    """Main tumour, core features, satellites, edema and mass effect, in that order."""
    wm, gm, _ = tissue
    tissue_fraction = wm + gm
    appearance = sample_appearance(rng)
    swelling = sample_swelling(appearance.enhancing, rng)
    growth = sample_growth_parameters(rng, FRONT_WIDTH_MM[appearance.enhancing])
    # The mass effect magnifies the core by (1 + a)^3: grow it that much smaller.
    growth = replace(growth, target_core_ml=growth.target_core_ml / (1.0 + swelling) ** 3)
    seed, lobe = draw_tumour_site(wm, landmarks, rng)
    u0 = seed_cells(wm, seed, np.argwhere(wm > 0.9), rng, spacing)
    diffusivity = diffusivity_map(wm, gm, growth, rng, spacing)
    cells, days = simulate(u0, diffusivity, growth, spacing)
    density = perturbed_density(cells, appearance, rng, spacing)
    codes = tumour_compartments(density, tissue_fraction, appearance, rng, spacing)
    codes[codes == EDEMA] = 0
    codes, core_info = add_core_features(codes, tissue_fraction, appearance, rng, spacing)
    edema = sample_edema_model(appearance, rng)
    relative = diffusivity / growth.diffusion_wm
    water = water_content(density, codes, relative, appearance, edema, rng, spacing)
    satellites = []
    for _ in range(draw_satellite_count(rng)):
        lesion = label_edema(codes, water, tissue_fraction, edema) > 0
        satellite = grow_satellite(
            lesion, wm, tissue_fraction, diffusivity, growth, appearance, landmarks, rng, spacing
        )
        if satellite is None:
            break
        satellites.append(list(satellite.seed))
        # Satellites are smaller and younger: half the vasogenic reach.
        smaller = replace(edema, extent_mm=0.5 * edema.extent_mm)
        extra = satellite.clearance * water_content(
            satellite.density, satellite.codes, relative, appearance, smaller, rng, spacing
        )
        codes = np.where(satellite.codes > 0, satellite.codes, codes)
        cells = np.maximum(cells, satellite.cells)
        water = np.maximum(water, extra)
    core = np.isin(compartments_to_labels(codes), (1, 3))
    effect = MassEffect.of(core, swelling, spacing)
    warped, (codes,), shift_mm = warp(
        effect, landmarks.depth_mm, spacing, [*tissue, water, cells, diffusivity], [codes]
    )
    wm, gm, csf, water, cells, diffusivity = warped or (*tissue, water, cells, diffusivity)
    # Seeds are reported where they ended up, in the deformed anatomy of the images.
    seeds = effect.move_voxels(np.array([seed, *satellites]), landmarks.depth_mm, spacing)
    codes = label_edema(codes, water, wm + gm, edema)
    info = {
        "kind": appearance.kind,
        "lobe": lobe,
        "seed_voxel": [int(v) for v in seeds[0]],
        "satellite_seeds": [[int(v) for v in point] for point in seeds[1:]],
        "growth_days": round(days, 1),
        "diffusion_wm": round(growth.diffusion_wm, 4),
        "proliferation": round(growth.proliferation, 4),
        "edema_extent_mm": round(edema.extent_mm, 1),
        "edema_fade_mm": round(edema.fade_mm, 1),
        "edema_vasogenic": round(edema.vasogenic, 2),
        "edema_border_level": round(edema.border_level, 3),
        "mass_effect_mm": round(shift_mm, 1),
        **core_info,
    }
    return Tumour(codes, water, cells, diffusivity, (wm, gm, csf), growth, appearance, edema, info)


def render_images(
    subject: Subject,
    codes: np.ndarray,
    water: np.ndarray | None,
    acquisition: Acquisition,
    rng: np.random.Generator,
    spacing: float,
) -> list[np.ndarray]:
    """The four images of one session (float32 ``(Z, Y, X)``, channel order T1, T1c, T2,
    FLAIR)."""
    signals = render_signal(
        subject.tissue, codes, water, subject.lookalikes, subject.signal, rng, spacing
    )
    return acquire(signals, subject.inside, acquisition, rng, spacing)


def count_foci(label: np.ndarray) -> int:
    """Connected components (26-connectivity) of the whole tumour that hold tumour core."""
    components, count = ndimage.label(label > 0, structure=np.ones((3, 3, 3)))
    if count == 0:
        return 0
    with_core = np.unique(components[np.isin(label, (1, 3))])
    return int((with_core > 0).sum())


def tumour_summary(label: np.ndarray, spacing: float) -> dict[str, Any]:
    """Volumes and focus count of a case's internal labels (JSON-able)."""
    voxel_ml = spacing**3 / 1000.0
    return {
        "foci": count_foci(label),
        "volumes_ml": {
            name: round(float((label == value).sum()) * voxel_ml, 2)
            for name, value in (("necrosis", 1), ("edema", 2), ("enhancing", 3))
        },
    }
