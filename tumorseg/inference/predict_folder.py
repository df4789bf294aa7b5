"""Predicting every case of an input folder, one line per failed case, resumable.

``predict_folder`` predicts given cases with a ready ``CasePredictor``;
``tumorseg.inference.predict_run.predict_with_run`` is ``tumorseg predict`` as a function
(locate a trained run's folds, build the ``Predictor``, choose the post-processing, then this).

A case needs only the channels the run's networks read (``ChannelPolicy.needed``; an msf run
trained on ``modalities=t1c,flair`` reads T1c and FLAIR). Only those are read from disk, so the
brain crop is the union of their nonzero voxels; every other channel is handed to the
preprocessing as zeros, which it normalises to zeros and the network never sees. A needed
channel that a case lacks stops that case with one line (``MissingModality.ERROR``), or
(``ZERO``) is zero-filled: an all-zero image normalises to 0, the value the network sees for
"no signal". ``prediction.json`` records per case which channels were present and which were
zero-filled.

With ``uncertainty``, the same network passes also give per-region variance maps and a row of
``uncertainty.csv`` per case (``tumorseg.inference.uncertainty``); a case counts as done only
with them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tumorseg.constants import MissingModality
from tumorseg.data.dataset_json import DatasetJson
from tumorseg.data.io import Geometry, read_channels, read_geometry
from tumorseg.data.labels import LabelManager
from tumorseg.errors import OutputError, TumorsegError
from tumorseg.inference.export import (
    is_finished,
    prediction_path,
    prepare_folder,
    record_predicted_case,
    uncertainty_finished,
    write_prediction,
    write_uncertainty,
)
from tumorseg.inference.input_layout import InputCase, channel_label
from tumorseg.inference.uncertainty import (
    UncertaintyMaps,
    UncertaintyRegions,
    require_spread,
    uncertainty_regions,
)


class CasePredictor(Protocol):
    """What ``predict_folder`` needs; ``Predictor`` implements it."""

    @property
    def dataset_json(self) -> DatasetJson: ...

    @property
    def activation(self) -> str: ...

    @property
    def n_outputs(self) -> int: ...

    @property
    def spread_members(self) -> int: ...

    def predict_case(
        self,
        images: list[np.ndarray],
        geometry: Geometry,
        region_matrix: np.ndarray | None = None,
    ) -> np.ndarray: ...


def _target_outputs(predictor: CasePredictor) -> tuple[str, ...]:
    """The predictor's extra-target channels (``Predictor.target_outputs``; none for others)."""
    return tuple(getattr(predictor, "target_outputs", ()))


@dataclass
class FolderReport:
    """Outcome of ``predict_folder``: case ids per outcome, failures with their message; from
    ``predict_with_run`` also which folds and which post-processing were used, in words."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    folds: str = ""
    postprocessing: str = ""


@dataclass(frozen=True)
class ChannelPolicy:
    """Which dataset channels a run reads, and what to do when a case lacks one of them."""

    # Dataset channel indices the run's networks read, ascending; None: every channel.
    needed: tuple[int, ...] | None = None
    missing_modality: MissingModality = MissingModality.ERROR

    def needs(self, channel: int) -> bool:
        return self.needed is None or channel in self.needed


@dataclass(frozen=True)
class CaseImages:
    """The images of one case as the predictor takes them, and what was done to get them.

    ``images``: one ``(Z, Y, X)`` float32 array per dataset channel, zeros for a channel not
    read; ``present`` / ``zero_filled`` / ``not_read``: dataset channel indices.
    """

    images: list[np.ndarray]
    geometry: Geometry
    present: tuple[int, ...]
    zero_filled: tuple[int, ...]
    not_read: tuple[int, ...]

    def facts(self, case: InputCase, dataset_json: DatasetJson) -> dict[str, Any]:
        """The case's entry of ``prediction.json``: input files and channels by name."""

        def names(channels: Sequence[int]) -> list[str]:
            return [dataset_json.channel_names[c] for c in channels]

        return {
            "images": [str(p.resolve()) if p is not None else None for p in case.images],
            "present": names(self.present),
            "zero_filled": names(self.zero_filled),
            "not_read": names(self.not_read),
        }


def _absent_message(dataset_json: DatasetJson, absent: Sequence[int]) -> str:
    names = ", ".join(channel_label(dataset_json, c) for c in absent)
    them = "it" if len(absent) == 1 else "them"
    return (
        f"missing channel(s) {names}, which the run reads; supply {them} (CASE_NNNN files or "
        f"a file named by contrast), or predict with --missing-modality zero to give the "
        f"network no signal in {them}"
    )


def read_case_images(
    case: InputCase, dataset_json: DatasetJson, policy: ChannelPolicy | None = None
) -> CaseImages:
    """Read the channels of ``case`` that the run needs (see the module docstring).

    Raises a one-line ``TumorsegError`` for an ambiguous case, a needed channel that is absent
    (unless ``policy`` zero-fills it), a non-3D image or channels on different grids (the
    network needs co-registered channels).
    """
    policy = policy or ChannelPolicy()
    if case.problem:
        raise TumorsegError(case.problem)
    n = dataset_json.num_channels
    needed = [c for c in range(n) if policy.needs(c)]
    absent = [c for c in needed if case.images[c] is None]
    if absent and policy.missing_modality is MissingModality.ERROR:
        raise TumorsegError(_absent_message(dataset_json, absent))
    present = [c for c in needed if case.images[c] is not None]
    if not present:
        wanted = ", ".join(channel_label(dataset_json, c) for c in needed)
        raise TumorsegError(
            f"none of the channels the run reads ({wanted}) is present; supply at least one"
        )
    arrays, geometry = read_channels([p for c in present if (p := case.images[c]) is not None])
    images = [np.zeros(geometry.shape, np.float32) for _ in range(n)]
    for channel, array in zip(present, arrays, strict=True):
        images[channel] = array
    not_read = tuple(c for c in range(n) if not policy.needs(c))
    return CaseImages(images, geometry, tuple(present), tuple(absent), not_read)


def _already_done(
    case: InputCase,
    path: Path,
    policy: ChannelPolicy,
    regions: UncertaintyRegions | None = None,
    file_ending: str = ".nii.gz",
    probabilities: Path | None = None,
) -> bool:
    """True when ``path`` holds a complete label map on the grid of ``case``'s images (and,
    with ``regions``, the case's complete uncertainty maps and table row; with
    ``probabilities``, the case's complete ``CASE.npz``)."""
    if not path.is_file() or case.problem:
        return False
    found = [p for c, p in enumerate(case.images) if p is not None and policy.needs(c)]
    if not found:
        return False
    try:
        shape = read_geometry(found[0]).shape
    except TumorsegError:
        return False
    if not is_finished(path, shape, probabilities):
        return False
    if regions is None:
        return True
    return uncertainty_finished(path.parent, case.case_id, regions.names, shape, file_ending)


def predict_folder(
    predictor: CasePredictor,
    cases: Sequence[InputCase],
    output: Path,
    *,
    save_probabilities: bool = False,
    postprocessing: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
    progress: bool = True,
    channels: ChannelPolicy | None = None,
    settings: dict[str, Any] | None = None,
    uncertainty: bool = False,
) -> FolderReport:
    """Predict ``cases`` into ``output``; cases whose label map is complete are skipped.

    ``postprocessing`` is the decision applied to every label map; ``record`` what the folder's
    ``labels.json`` says about it (``ChosenPostprocessing.record()``; a folder written with
    another one is an error, so a resumed prediction cannot mix post-processings).

    Complete: it loads in full with the shape of the case's images (a truncated or otherwise
    broken file from an earlier run is predicted again and replaced). ``channels``: which
    channels the run reads and the missing-modality policy (None: every channel, absent ones
    are an error). ``settings``: what produces the predictions, recorded with each case's
    channels in ``prediction.json`` (None: no record).

    A case that fails with a user error (missing channel, unreadable file, mismatched grids) is
    reported as one ``error: CASE: ...`` line on stderr and the others still run; the report
    lists it under ``failed``. A run that predicts extra targets (the recurrence trainer) also
    writes their probability and binary maps (``tumorseg.inference.export.write_target_maps``).
    """
    from tqdm import tqdm

    output = Path(output)
    report = FolderReport()
    dataset_json = predictor.dataset_json
    prepare_folder(output, LabelManager.from_dataset_json(dataset_json), postprocessing=record)
    bar = tqdm(cases, desc="predict", unit="case", disable=not progress, file=sys.stderr)
    policy = channels or ChannelPolicy()
    regions = None
    if uncertainty:
        require_spread(predictor.spread_members)
        manager = LabelManager.from_dataset_json(dataset_json)
        regions = uncertainty_regions(
            manager, predictor.activation, predictor.n_outputs, len(_target_outputs(predictor))
        )
    ending = dataset_json.file_ending
    for case in bar:
        done_path = prediction_path(output, case.case_id, dataset_json)
        npz = output / f"{case.case_id}.npz" if save_probabilities else None
        if _already_done(case, done_path, policy, regions, ending, npz):
            report.skipped.append(case.case_id)
            continue
        bar.set_postfix_str(case.case_id)
        try:
            read = read_case_images(case, dataset_json, policy)
            if regions is None:
                probabilities = predictor.predict_case(read.images, read.geometry)
            else:
                both = predictor.predict_case(read.images, read.geometry, regions.matrix)
                probabilities = both[: predictor.n_outputs]
                maps = _region_maps(regions, probabilities, both[predictor.n_outputs :])
                write_uncertainty(output, case.case_id, maps, read.geometry, ending)
            if settings is not None:
                facts = read.facts(case, dataset_json)
                record_predicted_case(output, case.case_id, settings, facts)
            write_prediction(
                output,
                case.case_id,
                probabilities,
                read.geometry,
                dataset_json,
                predictor.activation,
                save_probabilities=save_probabilities,
                postprocessing=postprocessing,
                target_outputs=_target_outputs(predictor),
            )
        except OutputError:
            raise  # a full disk or read-only folder fails every later case the same way
        except TumorsegError as exc:
            report.failed[case.case_id] = str(exc)
            tqdm.write(f"error: {case.case_id}: {exc}", file=sys.stderr)
            continue
        report.done.append(case.case_id)
    bar.close()
    return report


def _region_maps(
    regions: UncertaintyRegions, probabilities: np.ndarray, second_moments: np.ndarray
) -> UncertaintyMaps:
    """The maps of one case from its probabilities ``(K, ...)`` and region second moments."""
    mean = np.einsum("rk,k...->r...", regions.matrix, probabilities)
    return UncertaintyMaps.from_moments(regions.names, mean, second_moments)
