"""Wrongly typed JSON written by hand: `compare` summaries and `postprocess apply` decisions.

The summaries come from a real `tumorseg evaluate` of the tiny dataset, the decision from the
pairing preset; each row changes one value to the wrong type.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.reliability.cli import Trial, run_cli
from tests.reliability.conftest import Workspace
from tumorseg.data.io import read_image
from tumorseg.postprocessing.rules import preset_decision

CASE = "tiny_001"
SUMMARY_FIX = "re-run 'tumorseg evaluate'"
DECISION_FIX = "re-run 'tumorseg postprocess determine'"


def summaries(ws: Workspace) -> tuple[Path, Path]:
    """Two evaluated runs of the same cases: a perfect one and one with a case emptied."""
    labels = ws.raw_dataset / "labelsTr"
    for name in ("a", "b"):
        shutil.copytree(labels, ws.tmp / name)
        outcome = run_cli(["evaluate", str(ws.tmp / name), str(labels)])
        assert outcome.exit_code == 0, outcome.describe()
    return ws.tmp / "a" / "summary.json", ws.tmp / "b" / "summary.json"


def compare_edited(change: Callable[[dict[str, Any]], object]) -> Callable[[Workspace], list[str]]:
    def prepare(ws: Workspace) -> list[str]:
        a, b = summaries(ws)
        data = json.loads(b.read_text())
        change(data)
        b.write_text(json.dumps(data))
        return ["compare", str(a), str(b), "-o", str(ws.tmp / "comparison.json")]

    return prepare


def case_metric(value: Any, region: str = "WT", metric: str = "dice"):  # type: ignore[no-untyped-def]
    return lambda d: d["cases"][CASE]["metrics"][region].update({metric: value})


def apply_edited(change: Callable[[list[Any]], object]) -> Callable[[Workspace], list[str]]:
    def prepare(ws: Workspace) -> list[str]:
        decision = preset_decision("pairing")
        change(decision["steps"])
        (ws.tmp / "postprocessing.json").write_text(json.dumps(decision))
        return ["postprocess", "apply", "-i", str(ws.raw_dataset / "labelsTr"), "-o",
                str(ws.tmp / "out"), "--decision", str(ws.tmp / "postprocessing.json")]  # fmt: skip

    return prepare


def step(index: int, **values: Any) -> Callable[[list[Any]], object]:
    return lambda steps: steps[index].update(values)


def replace_step(index: int, value: Any) -> Callable[[list[Any]], object]:
    return lambda steps: steps.__setitem__(index, value)


def nothing_applied(ws: Workspace) -> list[Path]:
    return [ws.tmp / "out"]


WHERE = f"cases.{CASE}.metrics.WT.dice"
TRIALS = [
    Trial("compare-metric-a-string", compare_edited(case_metric("0.9")),
          f'{WHERE} is "0.9", not a number', lambda ws: [ws.tmp / "comparison.json"]),
    Trial("compare-metric-null", compare_edited(case_metric(None)),
          f"{WHERE} is null, not a number", lambda ws: [ws.tmp / "comparison.json"]),
    Trial("compare-metric-true", compare_edited(case_metric(True)),
          f"{WHERE} is true, not a number"),
    Trial("compare-metric-missing",
          compare_edited(lambda d: d["cases"][CASE]["metrics"]["TC"].pop("hd95")),
          f"cases.{CASE}.metrics.TC has no 'hd95'"),
    Trial("compare-case-a-list", compare_edited(lambda d: d["cases"].update({CASE: [1]})),
          f"cases.{CASE} has no 'metrics' object"),
    Trial("compare-metrics-a-string", compare_edited(lambda d: d.update(metrics="dice")),
          "'metrics' must be a list of metric names"),
    Trial("compare-regions-null", compare_edited(lambda d: d.update(regions=None)),
          "'regions' must be an object of region names"),
    Trial("apply-step-a-string", apply_edited(replace_step(0, "remove_small_components")),
          'steps[0] is "remove_small_components", not a step object', nothing_applied),
    Trial("apply-min-voxels-lots", apply_edited(step(0, min_voxels="lots")),
          'steps[0].min_voxels is "lots", not a whole number of at least 0', nothing_applied),
    Trial("apply-min-voxels-negative", apply_edited(step(1, min_voxels=-5)),
          "steps[1].min_voxels is -5, not a whole number of at least 0", nothing_applied),
    Trial("apply-min-voxels-null", apply_edited(step(1, min_voxels=None)),
          "steps[1].min_voxels is null, not a whole number of at least 0", nothing_applied),
    Trial("apply-no-size",
          apply_edited(lambda steps: steps[1].pop("min_voxels")),
          "steps[1] (small_et_to_necrosis) has no size ('min_voxels' or 'min_volume_mm3')",
          nothing_applied),
    Trial("apply-labels-a-string", apply_edited(step(0, labels="1,2,3")),
          'steps[0].labels is "1,2,3", not a list of label values', nothing_applied),
    Trial("apply-fill-a-string", apply_edited(step(0, fill="background")),
          'steps[0].fill is "background", not a label value', nothing_applied),
    Trial("apply-unknown-rule", apply_edited(step(0, rule="dilate")),
          'steps[0].rule is "dilate", not one of remove_small_components', nothing_applied),
    Trial("apply-empty-step", apply_edited(lambda steps: steps.clear() or steps.append({})),
          "steps[0].rule is null, not one of", nothing_applied),
]  # fmt: skip


@pytest.mark.parametrize("trial", TRIALS, ids=[t.name for t in TRIALS])
def test_wrongly_typed_json_is_one_clean_line(workspace: Workspace, trial: Trial) -> None:
    line = trial.check(workspace)
    fix = SUMMARY_FIX if trial.name.startswith("compare") else DECISION_FIX
    assert line.endswith(fix), line


def test_good_json_still_works(workspace: Workspace) -> None:
    """The same setups unedited: compare prints its table, apply writes every file."""
    outcome = run_cli(compare_edited(lambda d: None)(workspace))
    assert outcome.exit_code == 0, outcome.describe()
    assert json.loads((workspace.tmp / "comparison.json").read_text())["rows"]
    outcome = run_cli(apply_edited(lambda steps: None)(workspace))
    assert outcome.exit_code == 0, outcome.describe()
    # Every label map, beside the folder's labels.json record of their convention.
    written = sorted(p.name for p in (workspace.tmp / "out").glob("*.nii.gz"))
    assert written == sorted(p.name for p in (workspace.raw_dataset / "labelsTr").iterdir())
    out, _ = read_image(workspace.tmp / "out" / f"{CASE}.nii.gz")
    assert set(np.unique(out).tolist()) <= {0, 1, 2, 3}
