"""Hand-edited plans through `train` and `preprocess`: one line naming the field and the fix.

Each row edits one field of a good ``tumorsegPlans.json`` the way a user might (a negative
patch, a string for a number, spacing 0 ...). Before plans were checked on load these gave
tracebacks deep in training, or trained a model that `predict` could not use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.inference.tiny_run import write_raw_case, write_tiny_run
from tests.reliability.cli import Trial, run_cli
from tests.reliability.conftest import Workspace
from tests.training.tiny_preprocessed import write_tiny_preprocessed

TRAIN = ["train", "1", "3d_fullres", "0", "--epochs", "1", "--iterations-per-epoch", "1",
         "--val-iterations", "1", "-np", "0"]  # fmt: skip
PREPROCESS = ["preprocess", "1", "-np", "1"]
CONFIG = "configurations.3d_fullres"
FIX = "fix the edit or re-run `tumorseg plan`"


def plans_path(ws: Workspace) -> Path:
    return ws.preprocessed_dataset / "tumorsegPlans.json"


def set_field(data: dict[str, Any], field: str, value: Any) -> None:
    """Set the dotted ``field`` of ``data``; ``value`` may be a function of the old value."""
    *parents, key = field.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[key] = value(node[key]) if callable(value) else value


def edit_json(path: Path, changes: dict[str, Any]) -> None:
    data = json.loads(path.read_text())
    for field, value in changes.items():
        set_field(data, field, value)
    path.write_text(json.dumps(data))


def edited_many(changes: dict[str, Any], args: list[str] = TRAIN):  # type: ignore[no-untyped-def]
    """A ``prepare``: a preprocessed dataset whose plans have the dotted fields of ``changes``
    set, then ``tumorseg ARGS``."""

    def prepare(ws: Workspace) -> list[str]:
        write_tiny_preprocessed(ws.roots, with_raw=False)
        edit_json(plans_path(ws), changes)
        return list(args)

    return prepare


def edited(field: str, value: Any, args: list[str] = TRAIN):  # type: ignore[no-untyped-def]
    return edited_many({field: value}, args)


def predict_with_run_plans(changes: dict[str, Any]):  # type: ignore[no-untyped-def]
    """A ``prepare``: a trained run whose stored plans.json is edited, then `predict`."""

    def prepare(ws: Workspace) -> list[str]:
        run = write_tiny_run(ws.roots.results)
        edit_json(run / "plans.json", changes)
        write_raw_case(ws.tmp / "input", "a")
        return ["predict", "-i", str(ws.tmp / "input"), "-o", str(ws.tmp / "out"), "-d", "1",
                "-c", "3d_fullres", "--no-tta", "-q"]  # fmt: skip

    return prepare


def no_run(ws: Workspace) -> list[Path]:
    """A failed `train` starts no run folder."""
    return [ws.roots.results / ws.raw_dataset.name]


TOPOLOGY = f"{CONFIG}.topology"
TRIALS = [
    Trial("negative-patch", edited(f"{CONFIG}.patch_size", [-16, 16, 16]),
          f"{CONFIG}.patch_size must be 3 positive integers (found [-16, 16, 16])", no_run),
    Trial("patch-of-2-axes-in-3d", edited(f"{CONFIG}.patch_size", [16, 16]),
          f"{CONFIG}.patch_size must be 3 positive integers (found [16, 16])", no_run),
    Trial("patch-not-divisible-by-strides", edited(f"{CONFIG}.patch_size", [15, 16, 16]),
          f"{CONFIG}.patch_size [15, 16, 16] is not divisible by the total stride [2, 2, 2]",
          no_run),
    Trial("string-batch-size", edited(f"{CONFIG}.batch_size", "2"),
          f"{CONFIG}.batch_size must be an integer (found '2')", no_run),
    Trial("true-batch-size", edited(f"{CONFIG}.batch_size", True),
          f"{CONFIG}.batch_size must be an integer (found True)", no_run),
    Trial("zero-batch-size", edited(f"{CONFIG}.batch_size", 0),
          f"{CONFIG}.batch_size must be at least 1 (found 0)", no_run),
    Trial("string-in-spacing", edited(f"{CONFIG}.spacing", ["2", 2, 2]),
          f"{CONFIG}.spacing must be a list of 3 numbers (found ['2', 2, 2])", no_run),
    Trial("zero-spacing", edited(f"{CONFIG}.spacing", [0, 2, 2]),
          f"{CONFIG}.spacing must be 3 positive numbers in mm (found [0.0, 2.0, 2.0])", no_run),
    Trial("zero-spacing-preprocess", edited(f"{CONFIG}.spacing", [2, 0.0, 2], PREPROCESS),
          f"{CONFIG}.spacing must be 3 positive numbers in mm (found [2.0, 0.0, 2.0])"),
    Trial("nan-spacing", edited(f"{CONFIG}.spacing", [float("nan"), 2, 2]),
          f"{CONFIG}.spacing must be 3 positive numbers in mm (found [nan, 2.0, 2.0])", no_run),
    Trial("strides-of-3-stages", edited(f"{TOPOLOGY}.strides", [[1, 1, 1], [2, 2, 2], [2, 2, 2]]),
          f"{TOPOLOGY}.strides must have one entry per stage (2, as features_per_stage)", no_run),
    Trial("stride-of-2-axes", edited(f"{TOPOLOGY}.strides", [[1, 1, 1], [2, 2]]),
          f"{TOPOLOGY}.strides[1] must be 3 positive integers (found [2, 2])", no_run),
    Trial("string-stride", edited(f"{TOPOLOGY}.strides", [[1, 1, 1], ["2", 2, 2]]),
          f"{TOPOLOGY}.strides must be a list of lists of integers", no_run),
    Trial("even-kernel", edited(f"{TOPOLOGY}.kernel_sizes", [[3, 3, 3], [3, 2, 3]]),
          f"{TOPOLOGY}.kernel_sizes[1] must be 3 odd positive integers (found [3, 2, 3])", no_run),
    Trial("negative-features", edited(f"{TOPOLOGY}.features_per_stage", [4, -8]),
          f"{TOPOLOGY}.features_per_stage must be positive integers (found [4, -8])", no_run),
    Trial("zero-convolutions", edited(f"{TOPOLOGY}.n_conv_per_stage", 0),
          f"{TOPOLOGY}.n_conv_per_stage must be at least 1 (found 0)", no_run),
    Trial("unknown-normalization", edited("normalization", lambda n: [*n[:3], "minmax"]),
          "normalization[3] is 'minmax', not a known scheme (known: zscore_brain)", no_run),
    Trial("normalization-per-channel", edited("normalization", lambda n: n[:3]),
          "normalization has 3 entries for 4 channels", no_run),
    Trial("three-channels", edited("channel_names", lambda c: c[:3]),
          "normalization has 4 entries for 3 channels (channel_names)", no_run),
    Trial("three-channels-consistently",
          edited_many({"channel_names": lambda c: c[:3], "normalization": lambda n: n[:3]}),
          "channel_names ['T1', 'T1c', 'T2'] differ from dataset.json's "
          "['T1', 'T1c', 'T2', 'FLAIR']", no_run),
    Trial("renamed-channels", edited("channel_names", ["T1", "T1c", "FLAIR", "T2"]),
          "channel_names ['T1', 'T1c', 'FLAIR', 'T2'] differ from dataset.json's "
          "['T1', 'T1c', 'T2', 'FLAIR']", no_run),
    Trial("transpose-not-a-permutation", edited("transpose_forward", [0, 0, 1]),
          "transpose_forward must be a permutation of 0, 1, 2 (found [0, 0, 1])", no_run),
    Trial("data-folder-outside-the-dataset",
          edited(f"{CONFIG}.data_identifier", "../../elsewhere"),
          f"{CONFIG}.data_identifier must be a plain folder name (found '../../elsewhere')",
          no_run),
    Trial("spatial-dims-of-another-configuration", edited(f"{CONFIG}.spatial_dims", 2),
          f"{CONFIG}.spatial_dims must be 3 for 3d_fullres (found 2)", no_run),
    Trial("context-slices-in-3d", edited(f"{CONFIG}.context_slices", 2),
          f"{CONFIG}.context_slices must be 0 for 3d_fullres (found 2)", no_run),
    Trial("configuration-renamed", edited(f"{CONFIG}.name", "2d"),
          f"{CONFIG}.name is '2d' but the configuration is listed as '3d_fullres'", no_run),
    Trial("resampling-order-7", edited(f"{CONFIG}.resampling_order_image", 7),
          f"{CONFIG}.resampling_order_image must be an interpolation order 0-5 (found 7)",
          no_run),
    Trial("string-memory-budget", edited("memory_budget_gb", "lots"),
          "memory_budget_gb must be a number (found 'lots')", no_run),
    Trial("configurations-a-list", edited("configurations", []),
          "configurations must be an object", no_run),
    Trial("predict-run-plans-unknown-normalization",
          predict_with_run_plans({"normalization": lambda n: [*n[:3], "minmax"]}),
          "plans.json: normalization[3] is 'minmax', not a known scheme",
          lambda ws: [ws.tmp / "out" / "a.nii.gz"]),
    Trial("predict-run-plans-negative-patch",
          predict_with_run_plans({f"{CONFIG}.patch_size": [8, -8, 8]}),
          f"plans.json: {CONFIG}.patch_size must be 3 positive integers",
          lambda ws: [ws.tmp / "out" / "a.nii.gz"]),
    Trial("unknown-network", edited(f"{TOPOLOGY}.network", "transformer"),
          "unknown network 'transformer'", no_run),
]  # fmt: skip


@pytest.mark.parametrize("trial", TRIALS, ids=[t.name for t in TRIALS])
def test_bad_plans_are_one_clean_line(workspace: Workspace, trial: Trial) -> None:
    line = trial.check(workspace)
    if trial.name == "unknown-network":  # named when the network is built: 'topology.network'
        return
    if not trial.name.startswith("predict"):
        assert line.startswith(f"{plans_path(workspace)}: "), line
    assert line.endswith(FIX), line


def test_the_good_plans_train(workspace: Workspace) -> None:
    """The same setup without an edit trains (so every row above fails for its edit alone)."""
    write_tiny_preprocessed(workspace.roots, with_raw=False)
    outcome = run_cli(TRAIN)
    assert outcome.exit_code == 0, outcome.describe()
