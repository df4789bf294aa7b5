"""Which patient each case belongs to, so that cross-validation never splits a patient.

A longitudinal dataset may hold several cases of one patient (time points, pre/post pairs,
cases derived from one scan). Validating on a case whose sibling was trained on leaks that
patient's anatomy and tumour into the score, so the splits keep every patient in one fold.

The patient of a case comes from, first that applies:

1. ``dataset.json`` ``"patients"``: an object ``{case_id: patient_id}`` (a case not listed is
   its own patient), or a string, a regular expression that must match the whole case id and
   whose group ``patient`` (else its first group) is the patient id (a case it does not match is
   its own patient);
2. the case name: a trailing time-point or visit suffix is dropped (:data:`TIME_POINT_SUFFIX`:
   ``P01_tp1``, ``P01-timepoint2``, ``sub-01_ses-02``, ``P01_t3``, ``P01_visit1``, ``P01_fu2``,
   ``P01_pre``, ``P01_post``, ``P01_baseline``, ``P01_followup``), and so is the 3-digit time
   point of BraTS 2023+ names (``BraTS-GLI-00001-000`` and ``-001`` are patient
   ``BraTS-GLI-00001``);
3. otherwise the case is its own patient (``Synth_000``, ``01``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from tumorseg.data.dataset_json import DatasetJson
from tumorseg.errors import bad_file

#: Trailing time-point / visit suffixes of a case name (case-insensitive).
TIME_POINT_SUFFIX = re.compile(
    r"^(?P<patient>.+?)[_-]"
    r"(?:(?:tp|timepoint|time|t|visit|ses|session|fu|followup)-?\d+"
    r"|pre|post|preop|postop|baseline|followup)$",
    re.IGNORECASE,
)
#: BraTS 2023+ names: the last 3-digit group is the time point of the patient.
BRATS_TIME_POINT = re.compile(r"^(?P<patient>BraTS-[A-Za-z]+-\d{5})-\d{3}$")

PATIENTS_KEY = "patients"


def patient_from_name(case_id: str) -> str:
    """The patient id the case name encodes (rule 2 of the module docstring), else the id."""
    for pattern in (BRATS_TIME_POINT, TIME_POINT_SUFFIX):
        match = pattern.match(case_id)
        if match:
            return match.group("patient")
    return case_id


def _from_pattern(text: str, case_ids: Iterable[str], source: Path | str) -> dict[str, str]:
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise bad_file(
            source,
            f"'patients' is not a valid regular expression ({exc})",
            'write e.g. "patients": "(?P<patient>P\\\\d+)_tp\\\\d+"',
        ) from None
    if pattern.groups == 0:
        raise bad_file(
            source,
            f"'patients' pattern {text!r} has no group for the patient id",
            "mark the patient part with (?P<patient>...)",
        )
    out = {}
    for case_id in case_ids:
        match = pattern.fullmatch(case_id)
        group = "patient" if "patient" in pattern.groupindex else 1
        out[case_id] = match.group(group) if match and match.group(group) else case_id
    return out


def patient_ids(
    dataset_json: DatasetJson, case_ids: Iterable[str], source: Path | str = "dataset.json"
) -> dict[str, str]:
    """``{case_id: patient_id}`` for ``case_ids`` (see the module docstring for the rules).

    A ``"patients"`` entry of the wrong type, or an invalid pattern, is a one-line error naming
    ``source``.
    """
    ids = list(case_ids)
    declared = dataset_json.extra.get(PATIENTS_KEY)
    if declared is None:
        return {case_id: patient_from_name(case_id) for case_id in ids}
    if isinstance(declared, str):
        return _from_pattern(declared, ids, source)
    if isinstance(declared, Mapping) and all(
        isinstance(k, str) and isinstance(v, str | int) for k, v in declared.items()
    ):
        return {case_id: str(declared.get(case_id, case_id)) for case_id in ids}
    raise bad_file(
        source,
        "'patients' is neither an object {case: patient} nor a pattern string",
        'write e.g. "patients": {"P01_tp1": "P01", "P01_tp2": "P01"}',
    )


def group_by_patient(patients: Mapping[str, str]) -> dict[str, list[str]]:
    """``{patient_id: [case ids, sorted]}``, patients sorted."""
    groups: dict[str, list[str]] = {}
    for case_id, patient in patients.items():
        groups.setdefault(patient, []).append(case_id)
    return {patient: sorted(groups[patient]) for patient in sorted(groups)}
