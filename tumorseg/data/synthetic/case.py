"""One synthetic subject: anatomy, tumour, labels and images, as arrays.

Two generators share the anatomy and the growth model: ``basic`` (the first one, unchanged)
and ``realistic`` (``tumorseg.data.synthetic.realistic``). Everything random is drawn from one
``numpy.random.Generator`` in a fixed order, so a case is a pure function of its generator's
seed and the difficulty: the same seed gives byte-identical arrays, whatever process computes
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tumorseg.data.io import Geometry
from tumorseg.data.synthetic import realistic
from tumorseg.data.synthetic.acquisition import sample_acquisition
from tumorseg.data.synthetic.anatomy import find_landmarks
from tumorseg.data.synthetic.compartments import (
    compartments_to_labels,
    edema_strength,
    perturbed_density,
    sample_appearance,
    tumour_compartments,
)
from tumorseg.data.synthetic.contrasts import render, sample_contrast
from tumorseg.data.synthetic.difficulty import DEFAULT_DIFFICULTY, Difficulty
from tumorseg.data.synthetic.infiltration import label_edema, water_content
from tumorseg.data.synthetic.longitudinal import follow_up
from tumorseg.data.synthetic.template import deform_template, load_template
from tumorseg.data.synthetic.tumour_growth import (
    diffusivity_map,
    initial_density,
    sample_growth_parameters,
    simulate,
)

#: Stream identifiers mixed into the seed, so tumour and healthy subjects never share draws.
TUMOUR_STREAM = 0
HEALTHY_STREAM = 1


@dataclass(frozen=True)
class SyntheticCase:
    """A generated case. Arrays are ``(Z, Y, X)`` on ``geometry``'s grid (axis 0 axial).

    ``images`` are float32 in channel order T1, T1c, T2, FLAIR; ``label`` holds internal labels
    (0 background, 1 necrosis / non-enhancing core, 2 edema, 3 enhancing), all 0 for a healthy
    subject. ``tissue`` is the subject's healthy anatomy. Longitudinal cases also carry the
    follow-up images and label, the resection cavity and the binary recurrence target.
    """

    images: tuple[np.ndarray, ...]
    label: np.ndarray
    geometry: Geometry
    tissue: np.ndarray  # float32 (3, Z, Y, X): white matter, grey matter, CSF fractions
    followup_images: tuple[np.ndarray, ...] | None = None
    followup_label: np.ndarray | None = None
    cavity: np.ndarray | None = None
    recurrence: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)  # drawn parameters, JSON-able
    # Realistic generator: the hidden fields behind the images (look-alike fractions "wmh",
    # "vessel", "choroid", "dura"; edema "water"; compartment codes "compartments"), for
    # inspection and tests. Never written to a dataset.
    maps: dict[str, np.ndarray] = field(default_factory=dict)


def case_rng(seed: int, index: int, stream: int = TUMOUR_STREAM) -> np.random.Generator:
    """The generator of case ``index`` of a dataset made with ``seed``.

    Derived from ``(seed, stream, index)`` alone, so cases can be made in any order or process.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index]))


def generate_case(
    rng: np.random.Generator | int,
    spacing: float = 2.0,
    *,
    tumour: bool = True,
    longitudinal: bool = False,
    difficulty: Difficulty | str = DEFAULT_DIFFICULTY,
) -> SyntheticCase:
    """Generate one subject on an isotropic ``spacing`` mm grid.

    ``rng`` is a generator or an integer seed. ``tumour=False`` gives a healthy subject;
    ``longitudinal=True`` adds a post-operative follow-up (ignored for healthy subjects).
    ``difficulty`` chooses the generator (``basic`` or ``realistic``).
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    if Difficulty(difficulty) is Difficulty.REALISTIC:
        return _realistic_case(rng, float(spacing), tumour, longitudinal)
    template = load_template(float(spacing))
    wm, gm, csf = deform_template(template, rng)
    contrast = sample_contrast(rng)
    tissue = wm + gm
    tissue_maps = np.stack([wm, gm, csf])
    info: dict[str, Any] = {"tumour": tumour}
    if not tumour:
        codes = np.zeros(wm.shape, np.uint8)
        images = render((wm, gm, csf), codes, contrast, rng, spacing)
        return SyntheticCase(tuple(images), codes, template.geometry, tissue_maps, info=info)

    growth = sample_growth_parameters(rng)
    appearance = sample_appearance(rng)
    u0, seed_voxel = initial_density(wm, rng, spacing)
    diffusivity = diffusivity_map(wm, gm, growth, rng, spacing)
    u, days = simulate(u0, diffusivity, growth, spacing)
    density = perturbed_density(u, appearance, rng, spacing)
    codes = tumour_compartments(density, tissue, appearance, rng, spacing)
    strength = edema_strength(density, appearance)
    images = render((wm, gm, csf), codes, contrast, rng, spacing, strength)
    label = compartments_to_labels(codes)
    voxel_ml = spacing**3 / 1000.0
    info.update(
        kind=appearance.kind,
        seed_voxel=list(seed_voxel),
        growth_days=round(days, 1),
        diffusion_wm=round(growth.diffusion_wm, 4),
        proliferation=round(growth.proliferation, 4),
        volumes_ml={
            name: round(float((label == value).sum()) * voxel_ml, 2)
            for name, value in (("necrosis", 1), ("edema", 2), ("enhancing", 3))
        },
    )
    if not longitudinal:
        return SyntheticCase(tuple(images), label, template.geometry, tissue_maps, info=info)

    later = follow_up(u, codes, diffusivity, tissue, growth, appearance, rng, spacing)
    followup_images = render(
        (wm, gm, csf), later.compartments, contrast, rng, spacing, later.edema_strength
    )
    info.update(
        followup_days=round(later.days, 1),
        cavity_ml=round(float(later.cavity.sum()) * voxel_ml, 2),
        recurrence_ml=round(float(later.recurrence.sum()) * voxel_ml, 2),
    )
    return SyntheticCase(
        tuple(images),
        label,
        template.geometry,
        tissue_maps,
        followup_images=tuple(followup_images),
        followup_label=compartments_to_labels(later.compartments),
        cavity=later.cavity,
        recurrence=later.recurrence,
        info=info,
    )


def _realistic_case(
    rng: np.random.Generator, spacing: float, tumour: bool, longitudinal: bool
) -> SyntheticCase:
    template = load_template(spacing)
    tissue = deform_template(template, rng)
    info: dict[str, Any] = {"tumour": tumour, "difficulty": Difficulty.REALISTIC.value}
    if not tumour:
        subject = realistic.draw_subject(template.geometry, tissue, rng)
        session = sample_acquisition(rng)
        info.update(subject.info, acquisition=session.info())
        codes = np.zeros(tissue[0].shape, np.uint8)
        images = realistic.render_images(subject, codes, None, session, rng, spacing)
        maps = subject.lookalikes.as_dict()
        return SyntheticCase(
            tuple(images), codes, template.geometry, np.stack(tissue), info=info, maps=maps
        )

    wm, gm, csf = tissue
    grown = realistic.grow_tumour(
        tissue, find_landmarks(wm, gm, csf, template.geometry), rng, spacing
    )
    subject = realistic.draw_subject(template.geometry, grown.tissue, rng)
    session = sample_acquisition(rng)
    codes = grown.codes.copy()
    codes[~subject.inside] = 0
    images = realistic.render_images(subject, codes, grown.water, session, rng, spacing)
    label = compartments_to_labels(codes)
    info.update(subject.info, acquisition=session.info())
    info.update(grown.info, **realistic.tumour_summary(label, spacing))
    tissue_maps = np.stack(grown.tissue)
    maps = {**subject.lookalikes.as_dict(), "water": grown.water, "compartments": codes}
    if not longitudinal:
        return SyntheticCase(
            tuple(images), label, template.geometry, tissue_maps, info=info, maps=maps
        )

    tissue_fraction = subject.tissue_fraction
    later = follow_up(
        grown.cells,
        codes,
        grown.diffusivity,
        tissue_fraction,
        grown.growth,
        grown.appearance,
        rng,
        spacing,
    )
    relative = grown.diffusivity / grown.growth.diffusion_wm
    water = water_content(
        later.density, later.compartments, relative, grown.appearance, grown.edema, rng, spacing
    )
    later_codes = label_edema(later.compartments, water, tissue_fraction, grown.edema)
    later_codes[~subject.inside] = 0
    # The follow-up is another session: same subject and protocol, another scanner state.
    followup_images = realistic.render_images(
        subject, later_codes, water, sample_acquisition(rng), rng, spacing
    )
    voxel_ml = spacing**3 / 1000.0
    recurrence = (later.recurrence * subject.inside).astype(np.uint8)
    info.update(
        followup_days=round(later.days, 1),
        cavity_ml=round(float(later.cavity.sum()) * voxel_ml, 2),
        recurrence_ml=round(float(recurrence.sum()) * voxel_ml, 2),
    )
    return SyntheticCase(
        tuple(images),
        label,
        template.geometry,
        tissue_maps,
        followup_images=tuple(followup_images),
        followup_label=compartments_to_labels(later_codes),
        cavity=later.cavity,
        recurrence=recurrence,
        info=info,
        maps=maps,
    )
