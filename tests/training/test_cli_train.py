from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.tiny_preprocessed import DATASET, write_tiny_preprocessed
from tumorseg.cli import main
from tumorseg.paths import Roots
from tumorseg.runs.trained import load_trained_model
from tumorseg.training.run import prepare_run

FAST = ["--epochs", "2", "--iterations-per-epoch", "2", "--val-iterations", "1", "-np", "0"]
FAST_LOOP = {"epochs": 2, "iterations_per_epoch": 2, "val_iterations": 1, "num_workers": 0}


def _cli(roots: Roots, *args: str, monkeypatch: pytest.MonkeyPatch) -> int:
    argv = [
        "tumorseg",
        *args,
        "--raw",
        str(roots.raw),
        "--preprocessed",
        str(roots.preprocessed),
        "--results",
        str(roots.results),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Roots, Path]:
    """One tiny CPU training run through the CLI, shared by the tests below."""
    roots = Roots.under(tmp_path_factory.mktemp("cli") / "tumorseg_data")
    for p in (roots.raw, roots.preprocessed, roots.results):
        p.mkdir(parents=True)
    write_tiny_preprocessed(roots)
    with pytest.MonkeyPatch.context() as mp:
        assert _cli(roots, "train", "1", "3d_fullres", "0", *FAST, monkeypatch=mp) == 0
    runs = list((roots.results / DATASET).iterdir())
    assert len(runs) == 1
    return roots, runs[0] / "fold_0"


def test_train_writes_the_run_folder(trained: tuple[Roots, Path]) -> None:
    roots, fold = trained
    assert fold.parent.name.startswith("default-")  # non-default epochs -> hashed name
    assert {"plans.json", "dataset.json", "fold_0"} <= {p.name for p in fold.parent.iterdir()}
    names = {p.name for p in fold.iterdir()}
    assert {
        "checkpoint_latest.pt",
        "checkpoint_best.pt",
        "checkpoint_final.pt",
        "train_config.json",
        "log.txt",
        "progress.png",
        "validation",
    } <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary files left behind
    config = json.loads((fold / "train_config.json").read_text())
    assert set(config) == {
        "dataset_name",
        "plans_name",
        "configuration",
        "fold",
        "trainer",
        "trainer_settings",
        "loop",
        "channels",
        "output_activation",
        "output_names",
        "network",
        "tumorseg_version",
    }
    assert config["loop"]["epochs"] == 2
    assert config["loop"]["iterations_per_epoch"] == 2
    assert config["output_names"] == ["whole_tumor", "tumor_core", "enhancing_tumor"]
    validation = fold / "validation"
    summary = json.loads((validation / "summary.json").read_text())
    splits = json.loads((roots.preprocessed / DATASET / "splits_final.json").read_text())
    assert sorted(summary["cases"]) == sorted(splits[0]["val"])
    assert all(c["reference"] == "raw" for c in summary["cases"].values())
    assert set(summary["mean"]) == {"whole_tumor", "tumor_core", "enhancing_tumor"}
    case = splits[0]["val"][0]
    with np.load(validation / f"{case}.npz") as npz:
        assert npz["probabilities"].dtype.name == "float16"
        assert npz["probabilities"].shape == (3, 20, 24, 24)
        assert json.loads(str(npz["geometry_json"]))["shape"] == [20, 24, 24]
    assert (validation / f"{case}.nii.gz").is_file()
    assert "epoch 1:" in (fold / "log.txt").read_text()


def test_load_trained_model(trained: tuple[Roots, Path]) -> None:
    _, fold = trained
    trainer, network, config, plans = load_trained_model(fold, "final")
    assert config.name == "3d_fullres"
    assert plans.plans_name == "tumorsegPlans"
    with torch.no_grad():
        logits = trainer.predict_logits(network, torch.zeros(1, 4, 16, 16, 16))
    assert logits.shape == (1, 3, 16, 16, 16)
    final = torch.load(fold / "checkpoint_final.pt", weights_only=True)
    assert all(torch.equal(v, final["network"][k]) for k, v in network.state_dict().items())


def test_resume_of_a_finished_run_does_not_train_again(
    trained: tuple[Roots, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    roots, fold = trained
    before = torch.load(fold / "checkpoint_final.pt", weights_only=True)["network"]
    assert (
        _cli(roots, "train", "1", "3d_fullres", "0", *FAST, "--resume", monkeypatch=monkeypatch)
        == 0
    )
    after = torch.load(fold / "checkpoint_final.pt", weights_only=True)["network"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "resumed from checkpoint_final.pt at epoch 2" in (fold / "log.txt").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "1", "3d_fullres", "7"], "fold '7' is out of range; use 0, 1, 2, 3, 4 or all"),
        (
            ["train", "1", "3d_fullres", "0", "--trainer", "nope"],
            "unknown trainer 'nope'; valid: clfc, default",
        ),
        (["train", "1", "3d_fullres", "0", "--set", "nope=1"], "unknown setting(s) nope"),
        (["train", "1", "3d_fullres", "0", "--time-budget", "soon"], "not a duration"),
        (["train", "1", "4d", "0"], "no configuration '4d'"),
        (["train", "1", "3d_fullres", "first"], "fold 'first' is not a fold; use 0, 1, 2, 3, 4"),
        (
            ["train", "2", "3d_fullres", "0"],
            "no dataset '2' here; check the id or name, run `tumorseg plan` on it first, or set "
            "the preprocessed root with --preprocessed / TUMORSEG_PREPROCESSED",
        ),
    ],
)
def test_bad_input_is_one_line(
    trained: tuple[Roots, Path],
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    roots, _ = trained
    assert _cli(roots, *args, monkeypatch=monkeypatch) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert message in err
    assert "\n" not in err
    assert "Traceback" not in err


def test_unplanned_dataset(
    trained: tuple[Roots, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    roots, _ = trained
    folder = roots.preprocessed / "Dataset003_Unplanned"
    folder.mkdir()
    (folder / "dataset.json").write_text(
        (roots.preprocessed / DATASET / "dataset.json").read_text()
    )
    assert _cli(roots, "train", "3", "3d_fullres", "0", monkeypatch=monkeypatch) == 1
    err = capsys.readouterr().err
    assert "tumorsegPlans.json: plans not found" in err
    assert "tumorseg plan" in err


@pytest.mark.parametrize("flag", ["--resume", "--pretrained"])
def test_corrupt_checkpoint(
    trained: tuple[Roots, Path],
    flag: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    roots, _ = trained
    # A different run folder (other seed) so the shared run stays intact.
    other = Roots(roots.raw, roots.preprocessed, tmp_path / "results")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    extra = ["--pretrained", str(bad)] if flag == "--pretrained" else ["--resume"]
    target = "bad.pt: is not a readable checkpoint"
    if flag == "--resume":
        fold = prepare_run(other, "1", "3d_fullres", 0, loop_values=FAST_LOOP).fold_folder
        fold.mkdir(parents=True)
        (fold / "checkpoint_latest.pt").write_bytes(b"truncated")
        target = "checkpoint_latest.pt: is not a readable checkpoint"
    assert _cli(other, "train", "1", "3d_fullres", "0", *FAST, *extra, monkeypatch=monkeypatch) == 1
    err = capsys.readouterr().err
    assert target in err
    assert "Traceback" not in err


def test_train_precision_lookalikes_and_layout_reach_the_loop(
    roots: Roots, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tiny_preprocessed(roots)
    args = ["train", "1", "3d_fullres", "0", *FAST, "--epochs", "1", "--precision", "bf16",
            "--lookalikes", "0.5", "--channels-last"]  # fmt: skip
    assert _cli(roots, *args, "--device", "cpu", monkeypatch=monkeypatch) == 0
    (config,) = (roots.results / DATASET).glob("*/fold_0/train_config.json")
    loop = json.loads(config.read_text())["loop"]
    assert (loop["precision"], loop["oversample_lookalikes"]) == ("bf16", 0.5)
    assert loop["channels_last"] is True
    assert "device cpu (bf16)" in (config.parent / "log.txt").read_text()


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_train_precision_defaults_to_auto(
    roots: Roots,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    native: bool,
    expected: str,
) -> None:
    """Without --precision, train resolves auto: bf16 where the CPU has native bf16 (and the
    probe finds it faster), else fp32; the run records the resolved value, not "auto"."""
    from tumorseg.inference import precision

    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    monkeypatch.setattr(precision, "bf16_speedup", lambda: 2.0)
    write_tiny_preprocessed(roots)
    assert _cli(roots, "train", "1", "3d_fullres", "0", *FAST, "--epochs", "1", "--device",
                "cpu", monkeypatch=monkeypatch) == 0  # fmt: skip
    (config,) = (roots.results / DATASET).glob("*/fold_0/train_config.json")
    assert json.loads(config.read_text())["loop"]["precision"] == expected
    said = "native bf16 on this CPU, faster in a probe" if native else "no native bf16 on this CPU"
    assert f"precision: {expected} (auto: {said}" in capsys.readouterr().out


def test_resume_with_auto_precision_continues_an_fp32_run(
    roots: Roots, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run started in fp32 (the default before auto) is resumed as itself on a bf16 CPU, not
    restarted as a new bf16 run beside it."""
    from tumorseg.inference import precision

    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    monkeypatch.setattr(precision, "bf16_speedup", lambda: 2.0)
    write_tiny_preprocessed(roots)
    base = ["train", "1", "3d_fullres", "0", *FAST, "--epochs", "1", "--device", "cpu"]
    assert _cli(roots, *base, "--precision", "fp32", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    assert _cli(roots, *base, "--resume", monkeypatch=monkeypatch) == 0
    assert "precision: fp32 (resuming the fp32 run in" in capsys.readouterr().out
    (config,) = (roots.results / DATASET).glob("*/fold_0/train_config.json")
    assert json.loads(config.read_text())["loop"]["precision"] == "fp32"
    # Without --resume the default starts the bf16 run (a folder of its own).
    assert _cli(roots, *base, monkeypatch=monkeypatch) == 0
    found = sorted(
        json.loads(p.read_text())["loop"]["precision"]
        for p in (roots.results / DATASET).glob("*/fold_0/train_config.json")
    )
    assert found == ["bf16", "fp32"]
