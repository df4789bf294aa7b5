"""The built-in synthetic glioma dataset (``tumorseg synth``).

Anatomy from the MNI152 2009 template shipped inside nilearn (``template``), a glioma grown by
Fisher-Kolmogorov reaction-diffusion (``tumour_growth``) and cut into BraTS compartments
(``compartments``), four MR contrasts (``contrasts``), an optional post-operative follow-up with
a recurrence target (``longitudinal``), assembled per case (``case``) and written as a raw
dataset (``generate``); ``montage`` renders a PNG for a person to look at.

``difficulty`` switches between that first generator (``basic``) and the default
``realistic`` one (``realistic``), which adds, each in its own module: anatomical landmarks
and tumour sites (``anatomy``), cysts and haemorrhage (``core_features``), satellite foci
(``multifocal``), fading infiltrative edema (``infiltration``), mass effect (``mass_effect``),
white-matter hyperintensities, vessels, choroid plexus and dura (``lookalikes``,
``vessels``), per-case contrasts (``appearance``) and the scanner (``acquisition``).

Importing this package is light: the generators import SimpleITK and scipy when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tumorseg.data.synthetic.case import SyntheticCase, case_rng, generate_case
    from tumorseg.data.synthetic.generate import generate_dataset
    from tumorseg.data.synthetic.montage import render_montage

__all__ = ["SyntheticCase", "case_rng", "generate_case", "generate_dataset", "render_montage"]

_HOMES = {
    "SyntheticCase": "case",
    "case_rng": "case",
    "generate_case": "case",
    "generate_dataset": "generate",
    "render_montage": "montage",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
