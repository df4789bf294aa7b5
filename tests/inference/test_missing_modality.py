"""``tumorseg predict`` on cases lacking channels, through the CLI.

A run reads only its channels (an msf run on ``modalities=t1c,flair`` reads T1c and FLAIR); a
case lacking one of those stops with one line, unless ``--missing-modality zero`` gives the
network 0 (no signal) for it; ``prediction.json`` records what each case had.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tests.inference.tiny_run import DATASET, GEOMETRY, write_raw_case, write_tiny_run
from tumorseg.cli import app
from tumorseg.data.io import read_image
from tumorseg.inference.export import load_probabilities, read_prediction_record

runner = CliRunner()
MSF_RUN = "msf-0123abcd__tumorsegPlans__2d"


def _predict(inputs: Path, out: Path, results: Path, *extra: str) -> list[str]:
    return [
        "predict", "-i", str(inputs), "-o", str(out), "-d", "1", "-c", extra[0],
        "--no-tta", "-q", "--results", str(results), *extra[1:],
    ]  # fmt: skip


def test_a_missing_channel_the_run_reads_is_one_line_naming_it_and_the_option(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    write_tiny_run(results)
    inputs = tmp_path / "in"
    write_raw_case(inputs, "case", seed=1)
    (inputs / "case_0002.nii.gz").unlink()
    result = runner.invoke(app, _predict(inputs, tmp_path / "out", results, "3d_fullres"))
    # Each failed case prints its one error line; the command then exits 1 without a second.
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert lines == [
        "error: case: missing channel(s) 0002 (T2), which the run reads; supply it (CASE_NNNN "
        "files or a file named by contrast), or predict with --missing-modality zero to give "
        "the network no signal in it"
    ]
    assert not (tmp_path / "out" / "case.nii.gz").exists()


def test_zero_gives_the_network_zeros_after_normalisation_and_records_it(tmp_path: Path) -> None:
    from tumorseg.inference.predictor import Predictor
    from tumorseg.preprocessing.pipeline import preprocess_case, revert_to_original

    results = tmp_path / "results"
    run = write_tiny_run(results)
    full, partial, out = tmp_path / "full", tmp_path / "partial", tmp_path / "out"
    write_raw_case(full, "case", seed=1)
    write_raw_case(partial, "case", seed=1)
    (partial / "case_0002.nii.gz").unlink()
    args = _predict(partial, out, results, "3d_fullres", "--missing-modality", "zero")
    # fp32 on both sides: this compares zero-filling, not bf16 rounding (which `auto` picks on
    # CPUs with native bf16).
    result = runner.invoke(app, [*args, "--save-probabilities", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    # Independently: the full case preprocessed, its T2 replaced by 0 in the network's input.
    predictor = Predictor([run / "fold_0"], tta=False)
    images = [read_image(full / f"case_{c:04d}.nii.gz")[0] for c in range(4)]
    data, _, properties = preprocess_case(images, GEOMETRY, predictor.plans, predictor.config)
    data[2] = 0.0
    expected = revert_to_original(
        predictor.predict_preprocessed(data), properties, predictor.plans, predictor.config
    )
    probabilities, _, _ = load_probabilities(out / "case.npz")
    np.testing.assert_allclose(probabilities, expected, atol=2e-3)  # stored as float16
    record = read_prediction_record(out)
    assert record is not None
    entry = record["cases"]["case"]
    assert entry["present"] == ["T1", "T1c", "FLAIR"]
    assert entry["zero_filled"] == ["T2"]
    assert entry["images"][2] is None
    assert entry["images"][0] == str((partial / "case_0000.nii.gz").resolve())
    settings = record["settings"][entry["settings"]]
    assert settings["missing_modality"] == "zero"
    assert (settings["folds"], settings["tta"], settings["postprocessing"]) == (["0"], False, None)
    assert settings["run"] == str(results / DATASET / "default__tumorsegPlans__3d_fullres")


def _msf_run(results: Path) -> Path:
    return write_tiny_run(
        results,
        run=MSF_RUN,
        trainer_name="msf",
        configuration="2d",
        settings={"modalities": "t1c,flair"},
    )


def test_an_msf_run_on_t1c_and_flair_takes_a_case_with_only_those(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _msf_run(results)
    full, partial = tmp_path / "full", tmp_path / "partial"
    write_raw_case(full, "case", seed=3)
    write_raw_case(partial, "case", seed=3)
    for channel in (0, 2):  # T1 and T2
        (partial / f"case_{channel:04d}.nii.gz").unlink()
    for inputs in (full, partial):
        args = [*_predict(inputs, inputs.with_name(inputs.name + "_out"), results, "2d"),
                "-tr", "msf"]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "1 predicted" in result.output
    # T1 and T2 are never read: the prediction is the same whether they are there or not.
    with_all, _ = read_image(tmp_path / "full_out" / "case.nii.gz")
    without, _ = read_image(tmp_path / "partial_out" / "case.nii.gz")
    np.testing.assert_array_equal(with_all, without)
    record = read_prediction_record(tmp_path / "partial_out")
    assert record is not None
    entry = record["cases"]["case"]
    assert (entry["present"], entry["zero_filled"]) == (["T1c", "FLAIR"], [])
    assert entry["not_read"] == ["T1", "T2"]
    assert record["settings"][entry["settings"]]["channels"] == ["T1c", "FLAIR"]


def test_an_msf_run_names_its_own_missing_channel(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _msf_run(results)
    inputs = tmp_path / "in"
    write_raw_case(inputs, "case", seed=3)
    for channel in (0, 3):  # T1 (not read) and FLAIR (read)
        (inputs / f"case_{channel:04d}.nii.gz").unlink()
    result = runner.invoke(app, [*_predict(inputs, tmp_path / "out", results, "2d"), "-tr", "msf"])
    assert result.exit_code == 1
    assert "error: case: missing channel(s) 0003 (FLAIR), which the run reads;" in result.output
    assert "0000 (T1)" not in result.output


def test_a_case_with_none_of_the_run_channels_is_one_line_even_with_zero(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _msf_run(results)
    inputs = tmp_path / "in"
    write_raw_case(inputs, "case", seed=3)
    for channel in (1, 3):
        (inputs / f"case_{channel:04d}.nii.gz").unlink()
    args = [*_predict(inputs, tmp_path / "out", results, "2d"), "-tr", "msf"]
    result = runner.invoke(app, [*args, "--missing-modality", "zero"])
    assert result.exit_code == 1
    assert (
        "error: case: none of the channels the run reads (0001 (T1c), 0003 (FLAIR)) is present; "
        "supply at least one"
    ) in result.output


def test_two_predictions_into_one_folder_say_which_made_which_case(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_tiny_run(results)
    inputs, out = tmp_path / "in", tmp_path / "out"
    write_raw_case(inputs, "a", seed=1)
    assert runner.invoke(app, _predict(inputs, out, results, "3d_fullres")).exit_code == 0
    write_raw_case(inputs, "b", seed=2)
    (inputs / "b_0001.nii.gz").unlink()
    args = _predict(inputs, out, results, "3d_fullres", "--missing-modality", "zero")
    assert runner.invoke(app, args).exit_code == 0
    record = json.loads((out / "prediction.json").read_text())
    a, b = record["cases"]["a"], record["cases"]["b"]
    assert a["settings"] != b["settings"]
    assert record["settings"][a["settings"]]["missing_modality"] == "error"
    assert record["settings"][b["settings"]]["missing_modality"] == "zero"
    assert b["zero_filled"] == ["T1c"]
