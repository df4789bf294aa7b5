"""Converters from public brain tumour datasets to tumorseg raw datasets.

- ``convert_brats``: BraTS 2013/2015, 2017-2021 and 2023+ layouts, detected from file names;
- ``convert_msd``: Medical Segmentation Decathlon Task01_BrainTumour (4D images);
- ``convert_longitudinal``: two time points per patient, the later tumour as recurrence target.

Each returns a ``ConversionResult`` and writes the dataset atomically.
"""

from __future__ import annotations

from tumorseg.data.convert.brats import convert_brats
from tumorseg.data.convert.common import ConversionResult
from tumorseg.data.convert.longitudinal import convert_longitudinal
from tumorseg.data.convert.msd import convert_msd

__all__ = ["ConversionResult", "convert_brats", "convert_longitudinal", "convert_msd"]
