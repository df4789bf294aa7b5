"""Plans are checked on load: every plan the planner writes passes, bad edits fail by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.planning.fingerprints import dataset_json, fingerprint, uniform
from tumorseg.errors import TumorsegError
from tumorseg.planning.normalization import SCHEME_NAMES
from tumorseg.planning.planner import plan_experiment
from tumorseg.planning.plans import Plans
from tumorseg.preprocessing import normalization


def test_known_schemes_are_the_implemented_ones() -> None:
    assert set(SCHEME_NAMES) == set(normalization._FUNCTIONS)


@pytest.mark.parametrize(
    "fp",
    [
        uniform((1, 1, 1), (140, 170, 140)),  # BraTS-like
        uniform((1, 1, 1), (8, 8, 8)),  # tiny
        uniform((0.5, 0.5, 0.5), (400, 400, 400)),  # with 3d_lowres
        uniform((1, 1, 1), (1, 240, 240)),  # one slice: 2d only
        fingerprint([(0.9, 6.0, 0.9)] * 10, [(256, 20, 256)] * 10),  # thick slices
    ],
    ids=["brats", "tiny", "lowres", "one-slice", "anisotropic"],
)
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_planned_plan_passes_its_own_check(fp: object, device: str) -> None:
    plans = plan_experiment(fp, dataset_json(), memory_budget_gb=8.0, device=device)  # type: ignore[arg-type]
    assert Plans.from_dict(json.loads(json.dumps(plans.to_dict()))) == plans


def _plans_dict() -> dict:
    plans = plan_experiment(
        uniform((1, 1, 1), (64, 64, 64)), dataset_json(), memory_budget_gb=8.0, device="cpu"
    )
    return json.loads(json.dumps(plans.to_dict()))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(batch=2), "unknown key(s) ['batch'] in the plans; remove them"),
        (lambda d: d.pop("device"), "missing key(s) ['device'] in the plans"),
        (lambda d: d["configurations"]["2d"].update(patch_size=[256, 256.0]),
         "configurations.2d.patch_size must be a list of integers (found [256, 256.0])"),
        (lambda d: d["configurations"]["2d"]["topology"].update(extra=1),
         "unknown key(s) ['extra'] in configurations.2d.topology"),
        (lambda d: d.update(notes="none"), "notes must be a list of strings (found 'none')"),
        (lambda d: d["configurations"].update(foo=d["configurations"]["2d"]),
         "configurations has 'foo', not one of 2d, 2.5d, 3d_fullres, 3d_lowres"),
    ],
    ids=["unknown-key", "missing-key", "float-in-patch", "topology-key", "notes", "unknown-config"],
)  # fmt: skip
def test_bad_fields_name_the_file_and_field(tmp_path: Path, edit: object, message: str) -> None:
    data = _plans_dict()
    edit(data)  # type: ignore[operator]
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TumorsegError) as info:
        Plans.read(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_a_json_list_is_not_plans(tmp_path: Path) -> None:
    (tmp_path / "plans.json").write_text("[1, 2]")
    with pytest.raises(TumorsegError, match=r"plans\.json: is not a plans object"):
        Plans.read(tmp_path / "plans.json")
