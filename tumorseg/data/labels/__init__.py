"""Labels: the one place that knows label conventions, a dataset's labels and its regions.

Three notions, kept apart:

- **The label space of a dataset**: the values its ``labelsTr`` files hold, as dataset.json's
  ``labels`` declares them (plain labels, or nnU-Net regions with ``regions_class_order``).
  Datasets tumorseg writes (``convert``, ``synth``) hold the internal glioma labels
  (``TumorLabel``: 0 background, 1 necrosis / non-enhancing core, 2 edema, 3 enhancing, the
  BraTS 2023 numbers) with the BraTS regions; an nnU-Net dataset keeps its own numbering
  (Dataset137 style: 1 edema, 2 non-enhancing, 3 enhancing, regions declared).
- **A source convention** (``LabelConvention``): how a public release numbers glioma labels
  (BraTS 2017-2021 writes enhancing tumour as 4 ...). dataset.json's ``label_convention`` names
  the one the data came in; predictions are written back in it.
- **The convention of a label file** (``FileConvention``): ``internal`` (the dataset's own
  values) or a source convention. Each folder of label maps tumorseg writes records it in
  ``labels.json`` (see ``record``), so predictions are read right by default.

``LabelManager`` answers every question about one dataset's labels: which values, which
regions in which order, which are WT / TC / ET, how a file's values map onto the label space
and back, how probabilities become a label map. A value that a file's convention does not
declare is a one-line error naming the file and the value, never ignored.
"""

from tumorseg.data.labels.conventions import (
    INTERNAL_REGIONS,
    INTERNAL_REGIONS_CLASS_ORDER,
    FileConvention,
    LabelConvention,
    LabelMapping,
    TumorLabel,
    internal_dataset_labels,
    map_label_values,
)
from tumorseg.data.labels.manager import (
    LabelManager,
    RegionSet,
    RegionSpec,
    brats_regions,
    label_mapping,
    label_regions,
)
from tumorseg.data.labels.record import (
    LABEL_RECORD,
    LabelRecord,
    default_convention,
    read_label_record,
    write_label_record,
)

__all__ = [
    "INTERNAL_REGIONS",
    "INTERNAL_REGIONS_CLASS_ORDER",
    "LABEL_RECORD",
    "FileConvention",
    "LabelConvention",
    "LabelManager",
    "LabelMapping",
    "LabelRecord",
    "RegionSet",
    "RegionSpec",
    "TumorLabel",
    "brats_regions",
    "default_convention",
    "internal_dataset_labels",
    "label_mapping",
    "label_regions",
    "map_label_values",
    "read_label_record",
    "write_label_record",
]
