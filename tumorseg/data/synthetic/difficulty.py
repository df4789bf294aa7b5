"""How hard the synthetic data are: the one switch between the two generators.

- ``basic``: the first generator (clean anatomy, one grown tumour with crisp compartments, mild
  bias and noise), kept unchanged so results measured on it stay reproducible.
- ``realistic``: the same anatomy and growth model plus what makes real BraTS data hard
  (fading infiltrative edema, multifocal tumours, cysts and haemorrhage, look-alike lesions and
  enhancing structures outside the tumour, scanner variability, thick-slice acquisitions); see
  ``tumorseg.data.synthetic.realistic`` for the phenomena one by one.

Importing this module is light (the CLI uses it for its option choices).
"""

from __future__ import annotations

from enum import Enum


class Difficulty(str, Enum):
    """Which generator ``tumorseg synth`` runs."""

    BASIC = "basic"
    REALISTIC = "realistic"


#: What ``tumorseg synth`` and ``generate_dataset`` make when not told otherwise.
DEFAULT_DIFFICULTY = Difficulty.REALISTIC
