"""``postprocess apply``: a post-processing decision applied to every label map of a folder.

The files are read in their folder's convention (``labels.json``, which ``predict`` writes;
``convention`` overrides it; internal labels without either), mapped onto the dataset's labels,
processed, and written back in the same convention through ``export.write_labels``, with the
same ``labels.json`` in the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tumorseg.data.io import read_image
from tumorseg.data.labels import FileConvention, LabelManager, read_label_record
from tumorseg.errors import OutputError, TumorsegError
from tumorseg.inference.export import prepare_folder, write_labels
from tumorseg.postprocessing.rules import apply_postprocessing


def folder_labels(
    folder: Path, convention: FileConvention | None = None
) -> tuple[LabelManager, FileConvention]:
    """The labels and convention of the label maps in ``folder`` (see the module docstring)."""
    record = read_label_record(folder)
    manager = record.manager if record is not None else LabelManager.internal()
    default = record.convention if record is not None else FileConvention.INTERNAL
    return manager, convention or default


def postprocess_folder(
    input_folder: Path,
    output_folder: Path,
    decision: dict[str, Any],
    convention: FileConvention | None = None,
    file_ending: str = ".nii.gz",
) -> tuple[list[Path], list[str]]:
    """Post-process every ``*<file_ending>`` in ``input_folder`` into ``output_folder``.

    Each output is written atomically and checked. Returns ``(written paths, one error line per
    failed file)``: one bad file does not stop the others, an output that cannot be written
    (``OutputError``: full disk, read-only folder) does.
    """
    files = sorted(
        p for p in Path(input_folder).glob(f"*{file_ending}") if not p.name.startswith(".")
    )
    if not files:
        raise TumorsegError(f"{input_folder}: no *{file_ending} files; check the folder")
    manager, convention = folder_labels(Path(input_folder), convention)
    prepare_folder(Path(output_folder), manager, convention)
    written, errors = [], []
    for path in files:
        try:
            labels, geometry = read_image(path)
            values = manager.from_file(labels, convention, path)
            result = apply_postprocessing(values, decision, geometry.spacing)
            out = Path(output_folder) / path.name
            written.append(write_labels(out, result, geometry, manager, convention))
        except OutputError:
            raise  # a full disk or read-only folder fails every later file the same way
        except TumorsegError as exc:
            errors.append(str(exc))
    return written, errors
