"""``--help`` of every command reads as written: no text lost to the renderer's markup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

from tumorseg.cli import app
from tumorseg.data.io import Geometry, read_geometry, write_image

runner = CliRunner()
# Wide enough that no help line is wrapped, so each option's text is on one line.
WIDE = {"COLUMNS": "400"}


def _command_paths(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths(typer.main.get_command(app)))


def _help(*path: str) -> str:
    result = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def _option_line(output: str, option: str) -> str:
    return next(line for line in output.splitlines() if f" {option} " in line)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "tumorseg")
def test_no_help_text_is_swallowed(path: tuple[str, ...]) -> None:
    # "[env TUMORSEG_RAW]" or "[final]" in a help text is read as markup and removed, leaving
    # "Raw datasets root ." behind: a space before a full stop is the trace of such a loss.
    for line in _help(*path).splitlines():
        assert not re.search(r"\S \.(\s|$)", line.replace("│", " ")), line


def test_roots_name_their_environment_variables() -> None:
    output = _help("train")
    for option, variable, text in (
        ("--raw", "TUMORSEG_RAW", "Raw datasets root."),
        ("--preprocessed", "TUMORSEG_PREPROCESSED", "Preprocessed data root."),
        ("--results", "TUMORSEG_RESULTS", "Results root."),
    ):
        line = _option_line(output, option)
        assert f"{text} [env var: {variable}]" in line


def test_defaults_written_in_help_texts_are_shown() -> None:
    train = _help("train")
    assert "Validation batches per epoch (default: steps / 5)." in _option_line(
        train, "--val-iterations"
    )
    assert "(default: 1000)" in _option_line(train, "--epochs")
    assert "(repeatable; default: final)" in _option_line(_help("export-model"), "--checkpoint")
    assert "(default: PRED/summary.json)" in _option_line(_help("evaluate"), "--output")


def test_spacing_help_shows_the_form_the_option_takes(tmp_path: Path) -> None:
    line = _option_line(_help("convert", "longitudinal"), "--spacing")
    assert " Z Y X " in line
    assert "float,float,float" not in line  # looked like a comma form, which fails
    # The form shown works: three values, Z first.
    geometry = Geometry((4, 6, 6), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    mask = np.zeros(geometry.shape, np.uint8)
    mask[1:3, 2:4, 2:4] = 1
    case = tmp_path / "01"
    write_image(case / "Pre_Scan_T1.nii.gz", np.ones(geometry.shape, np.float32), geometry)
    write_image(case / "Pre_Mask.nii.gz", mask, geometry)
    write_image(case / "Post_Mask.nii.gz", mask, geometry)
    args = ["convert", "longitudinal", str(case), "--id", "5", "--name", "S"]
    result = runner.invoke(
        app, [*args, "--raw", str(tmp_path / "raw"), "--spacing", "6", "0.9", "0.8"]
    )
    assert result.exit_code == 0, result.output
    written = read_geometry(tmp_path / "raw" / "Dataset005_S" / "imagesTr" / "01_0000.nii.gz")
    np.testing.assert_allclose(written.spacing, (6.0, 0.9, 0.8), rtol=1e-6)
