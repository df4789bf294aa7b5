"""Set-ups the fault trials share, and the checks of "a correct result after the rerun".

Every set-up goes through the public CLI or the test helpers that build a trained run
(``tests.inference.tiny_run``: untrained weights, which predict deterministically), so a rerun
can be compared against an uninterrupted run of the same command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from tests.data.test_convert import _brats2021_case
from tests.inference.tiny_run import write_raw_case, write_tiny_run
from tests.reliability.cli import assert_nothing_half_written, run_cli
from tests.reliability.conftest import Workspace
from tests.training.tiny_preprocessed import write_tiny_preprocessed
from tumorseg.data.io import image_is_complete, read_geometry, read_image

CASES = ("a", "b", "c")
TRAIN = ["train", "1", "3d_fullres", "0", "--epochs", "1", "--iterations-per-epoch", "1",
         "--val-iterations", "1", "-np", "0", "--device", "cpu"]  # fmt: skip
PLAN = ["plan", "1", "--device", "cpu", "-np", "1"]


def trained(ws: Workspace) -> Path:
    """A trained run of the tiny dataset (fold 0), once per workspace."""
    run = ws.roots.results / "Dataset001_Tiny" / "default__tumorsegPlans__3d_fullres"
    return run if run.is_dir() else write_tiny_run(ws.roots.results)


def input_folder(ws: Workspace, cases: tuple[str, ...] = CASES) -> Path:
    """Raw-convention input cases (``a_0000.nii.gz`` ...) under ``ws.tmp/input``."""
    folder = ws.tmp / "input"
    for seed, case in enumerate(cases):
        if not (folder / f"{case}_0000.nii.gz").is_file():
            write_raw_case(folder, case, seed=seed)
    return folder


def predict_args(ws: Workspace, output: Path, *extra: str) -> list[str]:
    trained(ws)
    return ["predict", "-i", str(input_folder(ws)), "-o", str(output), "-d", "1", "-c",
            "3d_fullres", "--no-tta", "-q", "--device", "cpu", *extra]  # fmt: skip


def reference(ws: Workspace, name: str, args: list[str]) -> Path:
    """``ws.tmp/name``: what ``args`` (a command writing to ``-o ws.tmp/name``) writes on a
    healthy disk without interruption."""
    outcome = run_cli(args)
    assert outcome.exit_code == 0, outcome.describe()
    return ws.tmp / name


def probability_folders(ws: Workspace) -> tuple[Path, Path]:
    """Two prediction folders with ``CASE.npz`` (the second from another fold's weights)."""
    first = reference(ws, "probs_a", predict_args(ws, ws.tmp / "probs_a", "--save-probabilities"))
    run = trained(ws)
    if not (run / "fold_1").is_dir():
        shutil.rmtree(run)
        write_tiny_run(ws.roots.results, folds=(0, 1))
    args = predict_args(ws, ws.tmp / "probs_b", "--save-probabilities", "-f", "1")
    return first, reference(ws, "probs_b", args)


def assert_complete(folder: Path) -> None:
    """Everything in ``folder`` is whole: no temporary files, no empty files, every label map
    decodes in full, every ``.npz`` loads, every JSON parses."""
    assert_nothing_half_written(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        assert path.stat().st_size > 0, f"empty file left: {path}"
        if path.name.endswith(".nii.gz"):
            assert image_is_complete(path, read_geometry(path).shape), path
        elif path.suffix == ".npz":
            with np.load(path) as npz:
                assert all(npz[k].size for k in npz.files), path
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npy":
            np.load(path)


def assert_same_files(folder: Path, expected: Path, pattern: str = "*") -> None:
    """``folder`` holds the files of ``expected`` with the same content (images and arrays by
    value, JSON by content, others byte for byte)."""
    names = sorted(str(p.relative_to(expected)) for p in expected.rglob(pattern) if p.is_file())
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob(pattern) if p.is_file())
    assert found == names
    for name in names:
        a, b = folder / name, expected / name
        if name.endswith(".nii.gz"):
            (x, gx), (y, gy) = read_image(a), read_image(b)
            np.testing.assert_array_equal(x, y, err_msg=name)
            assert gx == gy, name
        elif name.endswith(".npz"):
            with np.load(a) as x, np.load(b) as y:
                assert x.files == y.files, name
                for key in x.files:
                    np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}:{key}")
        elif name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(a), np.load(b), err_msg=name)
        elif name.endswith(".json"):
            assert json.loads(a.read_text()) == json.loads(b.read_text()), name
        else:
            assert a.read_bytes() == b.read_bytes(), name


def preprocessed(ws: Workspace) -> None:
    """The tiny preprocessed dataset (identity preprocessing) that `train` trials start from."""
    if not (ws.preprocessed_dataset / "tumorsegPlans.json").is_file():
        write_tiny_preprocessed(ws.roots, with_raw=False)


def brats_source(ws: Workspace, cases: int = 3) -> Path:
    """A BraTS 2021-style source folder (``CASE/CASE_flair.nii.gz`` ...) for `convert brats`."""
    source = ws.tmp / "brats_source"
    for i in range(cases):
        _brats2021_case(source, f"BraTS2021_{i:05d}")
    return source
