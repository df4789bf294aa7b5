"""Long end-to-end runs of the longitudinal task (``-m slow``): transfer learning from a
default-trainer run through the CLI, frozen encoders, and the real TCIA pairs (T1c only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.tiny_longitudinal import write_tiny_longitudinal
from tests.workflows.test_recurrence_workflow import FAST, _invoke, _roots
from tumorseg.paths import Roots
from tumorseg.runs.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
DATASET = "Dataset007_TinyRec"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Roots, Path]:
    """A default-trainer run (fold all) on the same plans: the transfer source."""
    roots = Roots.under(tmp_path_factory.mktemp("transfer") / "tumorseg_data")
    for folder in (roots.raw, roots.preprocessed, roots.results):
        folder.mkdir(parents=True)
    write_tiny_longitudinal(roots.raw)
    _invoke("plan", "7", "-c", "2d", *_roots(roots))
    _invoke("train", "7", "2d", "all", *FAST, *_roots(roots))
    (run,) = (roots.results / DATASET).glob("default*__tumorsegPlans__2d")
    return roots, run


def _encoder_state(state: dict, encoder: int) -> dict:
    prefix = f"encoders.{encoder}."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize("freeze", [False, True])
def test_transfer_from_a_default_run(pretrained: tuple[Roots, Path], freeze: bool) -> None:
    roots, source_run = pretrained
    extra = ["--set", "freeze_encoders=true"] if freeze else []
    result = _invoke("train", "7", "2d", "0", "--trainer", "recurrence", "--pretrained",
                     str(source_run), *extra, *FAST, *_roots(roots))  # fmt: skip
    output = getattr(result, "output", "")
    assert "pretrained weights:" in output
    assert "encoders.0 (FLAIR) <- encoder.*" in output
    assert "not copied:" in output
    folds = sorted((roots.results / DATASET).glob("recurrence-*/fold_0"))
    fold = next(f for f in folds if json.loads((f / "train_config.json").read_text())[
        "trainer_settings"]["freeze_encoders"] is freeze)  # fmt: skip
    record = json.loads((fold / "train_config.json").read_text())["pretrained"]
    assert record["checkpoint"] == str((source_run / "fold_all" / "checkpoint_final.pt").resolve())
    assert record["source_trainer"] == "default"
    assert record["transfer"]["layout"] == "unet"
    mapping = record["transfer"]["mapping"]
    assert mapping["encoders.0.0.0.conv.weight"] == "encoder.0.0.conv.weight[:, [3]]"
    assert mapping["encoders.1.0.0.conv.weight"] == "encoder.0.0.conv.weight[:, [1]]"
    assert set(record["copied"]) == set(mapping)
    assert all(not k.startswith("encoders.") for k in record["not_copied"])
    source = load_checkpoint(source_run / "fold_all" / "checkpoint_final.pt")["network"]
    trained = load_checkpoint(fold / "checkpoint_final.pt")["network"]
    first = trained["encoders.0.0.0.conv.weight"]
    expected = source["encoder.0.0.conv.weight"][:, [3]]
    # Frozen encoders end training exactly as transferred; trained ones moved away from it.
    assert torch.equal(first, expected) is freeze


def test_real_tcia_pairs_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    roots = Roots.under(tmp_path / "tumorseg_data")
    for folder in (roots.raw, roots.preprocessed, roots.results):
        folder.mkdir(parents=True)
    _invoke("convert", "longitudinal", str(shared_data / "tcia_progression"), "--id", "61",
            "--name", "TCIA", "--spacing", "6", "0.9", "0.9", "--raw", str(roots.raw))  # fmt: skip
    _invoke("plan", "61", "-c", "2d", *_roots(roots))
    _invoke("train", "61", "2d", "0", "--trainer", "recurrence", "--batch-size", "2", *FAST,
            *_roots(roots))  # fmt: skip
    (run,) = (roots.results / "Dataset061_TCIA").glob("recurrence*")
    config = json.loads((run / "fold_0" / "train_config.json").read_text())
    assert config["trainer_details"]["encoders"] == [["T1c"]]
    assert config["trainer_details"]["correlation"] == "none"
    validation = run / "fold_0" / "validation"
    summary = json.loads((validation / "recurrence" / "summary.json").read_text())
    assert summary["cases"]
    assert summary["settings"]["core_labels"] == [1]
