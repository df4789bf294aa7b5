"""``tumorseg report`` through the CLI, on what ``tumorseg predict`` wrote and on run folders."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tests.inference.tiny_run import GEOMETRY, write_raw_case
from tests.reporting.conftest import CASES, Predicted, write_reference
from tumorseg.cli import app
from tumorseg.data.io import read_image, write_image
from tumorseg.errors import TumorsegError

runner = CliRunner()
PANELS_PER_CASE = 3 * 2 * 4  # planes x (reference, prediction) x channels
IMAGE = "data:image/png;base64,"
T = "2024-05-01 14:03:07"


def _report(*args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, ["report", *args])
    return result.exit_code, result.output, result.exception


def _dice(pred: np.ndarray, ref: np.ndarray) -> float:
    total = pred.sum() + ref.sum()
    return 1.0 if total == 0 else float(2 * (pred & ref).sum() / total)


def _row(html: str, first_cell: str) -> list[str]:
    match = re.search(rf'<tr><td class="name">{re.escape(first_cell)}</td>(.*?)</tr>', html)
    assert match, f"no table row {first_cell!r}"
    return re.findall(r"<td>(.*?)</td>", match.group(1))


def test_predictions_with_a_reference_are_scored_outlined_and_their_model_named(
    predicted: Predicted,
) -> None:
    out = predicted.root / "page.html"
    code, output, _ = _report(str(predicted.predictions), "--reference",
                              str(predicted.references), "-o", str(out))  # fmt: skip
    assert code == 0, output
    assert output.strip() == f"report: {out}"
    html = out.read_text()
    # Scores: mean / sd / median over the cases, computed here from the files (ET is 4).
    for region, values in {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}.items():
        dice = []
        for case in CASES:
            pred = read_image(predicted.predictions / f"{case}.nii.gz")[0]
            ref = read_image(predicted.references / f"{case}.nii.gz")[0]
            dice.append(_dice(np.isin(pred, values), np.isin(ref, values)))
        expected = [f"{np.mean(dice):.3f}", f"{np.std(dice):.3f}", f"{np.median(dice):.3f}"]
        assert _row(html, region)[:3] == expected
    assert (predicted.predictions / "summary.json").is_file()  # kept, as evaluate writes it
    # The model, from prediction.json.
    assert _row(html, "folds (ensembled)") == ["0, 1"]
    assert _row(html, "test-time augmentation") == ["none"]
    assert _row(html, "post-processing") == ["none"]
    assert _row(html, "channels read") == ["T1, T1c, T2, FLAIR"]
    # Every case outlined on the four modalities, reference and prediction, three planes.
    for case in CASES:
        assert f"<h3>{case}</h3>" in html
    assert html.count(IMAGE) == len(CASES) * PANELS_PER_CASE
    # The tiny run has no training logs: the page says so for each fold.
    assert html.count("no training curves: <code>") == 2
    assert 'data-images-loaded="pending"' in html  # the page checks its images when loaded


def test_the_folders_summary_gives_scores_and_references_without_options(
    predicted: Predicted,
) -> None:
    evaluated = runner.invoke(
        app, ["evaluate", str(predicted.predictions), str(predicted.references)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    code, output, _ = _report(str(predicted.predictions))
    assert code == 0, output
    html = (predicted.predictions / "report.html").read_text()
    assert f"<code>{predicted.predictions / 'summary.json'}</code>" in html
    assert html.count(IMAGE) == len(CASES) * PANELS_PER_CASE  # references found from it


def test_a_reference_folder_of_other_cases_is_one_line(predicted: Predicted) -> None:
    others = predicted.root / "others"
    write_reference(others, "someone_else", seed=7)
    code, _, error = _report(str(predicted.predictions), "-r", str(others))
    assert code == 1
    assert isinstance(error, TumorsegError)
    assert str(error) == (
        f"{others}: holds none of the 3 predicted cases of {predicted.predictions} (case_a, "
        "case_b, case_c; it has someone_else); pass the folder with these cases' reference labels"
    )
    assert not (predicted.predictions / "report.html").exists()


def test_cases_without_a_reference_are_named_and_the_others_scored(
    predicted: Predicted,
) -> None:
    (predicted.references / "case_b.nii.gz").unlink()
    code, output, _ = _report(str(predicted.predictions), "-r", str(predicted.references))
    assert code == 0, output
    html = (predicted.predictions / "report.html").read_text()
    assert "1 predicted case(s) of predictions have no reference in" in html
    assert _row(html, "WT")[-1] == "2"  # cases scored
    assert html.count(IMAGE) == (len(CASES) - 1) * PANELS_PER_CASE + 3 * 4
    assert "case_b: no reference label map for this case in" in html


def test_uncertainty_maps_get_a_grid_and_asking_for_them_without_any_is_one_line(
    predicted: Predicted,
) -> None:
    code, _, error = _report(str(predicted.predictions), "--uncertainty")
    assert code == 1
    assert str(error) == (
        f"{predicted.predictions / 'uncertainty'}: no uncertainty maps (CASE_<REGION>.nii.gz); "
        "it holds no probabilities (CASE.npz) either; predict again with --uncertainty to "
        "write them, or leave out --uncertainty"
    )
    np.savez(predicted.predictions / "case_a.npz", probabilities=np.zeros((3, 2, 2, 2)))
    _, _, error = _report(str(predicted.predictions), "--uncertainty")
    assert "it holds probabilities (CASE.npz), which are the fold average and carry no " in str(
        error
    )
    folder = predicted.predictions / "uncertainty"
    folder.mkdir()
    for region in ("WT", "ET"):
        values = np.random.default_rng(0).random(GEOMETRY.shape).astype(np.float32)
        write_image(folder / f"case_a_{region}.nii.gz", values, GEOMETRY)
    code, output, _ = _report(str(predicted.predictions), "--uncertainty")
    assert code == 0, output
    html = (predicted.predictions / "report.html").read_text()
    assert "WT uncertainty" in html
    assert "ET uncertainty" in html
    assert "TC uncertainty" not in html
    # Without a reference: prediction rows only, plus three planes of two uncertainty maps.
    assert html.count(IMAGE) == len(CASES) * 3 * 4 + 3 * 2


def test_maps_written_by_predict_uncertainty_are_shown(predicted: Predicted) -> None:
    out = predicted.root / "with_maps"
    args = [
        "predict", "-i", str(predicted.images), "-o", str(out), "-d", "1", "-c", "3d_fullres",
        "--no-tta", "-q", "--results", str(predicted.results), "--uncertainty",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    code, output, _ = _report(str(out), "--uncertainty")
    assert code == 0, output
    html = (out / "report.html").read_text()
    for region in ("WT", "TC", "ET"):
        assert f"{region} uncertainty" in html
    assert html.count(IMAGE) == len(CASES) * 3 * 4 + len(CASES) * 3 * 3


def test_a_zero_filled_channel_is_marked_in_its_column(predicted: Predicted) -> None:
    inputs, out = predicted.root / "partial", predicted.root / "partial_out"
    write_raw_case(inputs, "case_z", seed=4)
    (inputs / "case_z_0002.nii.gz").unlink()
    args = [
        "predict", "-i", str(inputs), "-o", str(out), "-d", "1", "-c", "3d_fullres", "--no-tta",
        "-q", "--results", str(predicted.results), "--missing-modality", "zero",
    ]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    code, output, _ = _report(str(out), "-o", str(out / "page.html"))
    assert code == 0, output
    html = (out / "page.html").read_text()
    assert '<div class="head">T2 (absent: zero-filled)</div>' in html
    assert html.count('<div class="empty">absent</div>') == 3  # one per plane
    assert html.count(IMAGE) == 3 * 3
    assert _row(html, "missing channel") == ["zero-filled (no signal)"]


def _write_log(fold: Path, epochs: int) -> None:
    lines = [f"{T}: training default 3d_fullres fold 0: 2 train / 3 val cases"]
    lines += [
        f"{T}: epoch {e}: lr 0.01000, train loss {-0.1 * e:.4f}, val loss {-0.05 * e:.4f}, "
        f"pseudo Dice WT {0.1 * e:.4f} TC 0.1000 ET 0.0500, EMA {0.05 * e:.4f}, 1.0 s (0.10 s "
        "waiting for data), 5 epochs planned"
        for e in range(epochs)
    ]
    (fold / "log.txt").write_text("\n".join(lines) + "\n")


def test_a_run_folder_shows_its_folds_validation_and_curves(predicted: Predicted) -> None:
    validation = predicted.run / "fold_0" / "validation"
    shutil.copytree(predicted.predictions, validation)
    (validation / "prediction.json").unlink()  # fold validation writes none
    evaluated = runner.invoke(app, ["evaluate", str(validation), str(predicted.references)])
    assert evaluated.exit_code == 0, evaluated.output
    _write_log(predicted.run / "fold_0", epochs=5)
    code, output, _ = _report(str(predicted.run), "--images", str(predicted.images))
    assert code == 0, output
    html = (predicted.run / "report.html").read_text()
    assert _row(html, "folds") == ["0, 1"]
    assert _row(html, "post-processing") == [
        "none (fold validation is scored before post-processing)"
    ]
    assert "fold 0: 5 epochs, last pseudo Dice EMA 0.200" in html
    assert "fold 1: no training curves" in html
    assert "fold 1: no validation predictions in" in html
    assert "<h3>case_a (fold 0 validation)</h3>" in html
    assert html.count(IMAGE) == len(CASES) * PANELS_PER_CASE + 1


def test_markdown_writes_its_images_beside_it(predicted: Predicted) -> None:
    out = predicted.root / "md" / "report.md"
    code, output, _ = _report(str(predicted.predictions), "--format", "md", "-o", str(out),
                              "--max-cases", "1")  # fmt: skip
    assert code == 0, output
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 3 * 4  # one case, prediction rows only
    assert all((out.parent / link).is_file() for link in links)
    assert "3 cases: shown with images are the first 1 by case id" in text


def test_sources_without_what_a_page_needs_are_one_line(tmp_path: Path) -> None:
    code, _, error = _report(str(tmp_path / "nowhere"))
    assert code == 1
    assert str(error).startswith(f"{tmp_path / 'nowhere'}: not found; give a run folder")
    foreign = tmp_path / "foreign"
    write_reference(foreign, "x", seed=0)  # label maps from elsewhere: no labels.json
    code, _, error = _report(str(foreign))
    assert code == 1
    assert str(error) == (
        f"{foreign}: has no labels.json saying how its label maps are numbered, and no dataset "
        "is known for it; pass --dataset (-d) with the dataset id, name or folder"
    )


def test_an_unreadable_case_is_a_note_and_the_page_still_written(predicted: Predicted) -> None:
    path = predicted.predictions / "case_b.nii.gz"
    path.write_bytes(path.read_bytes()[:40])  # truncated, as by a full disk elsewhere
    code, output, _ = _report(str(predicted.predictions))
    assert code == 0, output
    html = (predicted.predictions / "report.html").read_text()
    assert re.search(r"case_b: not shown: .*case_b\.nii\.gz", html)
    assert html.count(IMAGE) == (len(CASES) - 1) * 3 * 4


def test_a_run_with_a_broken_train_config_is_one_line(predicted: Predicted) -> None:
    (predicted.run / "fold_1" / "train_config.json").write_text("{not json")
    code, _, error = _report(str(predicted.run))
    assert code == 1
    assert str(error).startswith(f"{predicted.run / 'fold_1' / 'train_config.json'}: missing or")
