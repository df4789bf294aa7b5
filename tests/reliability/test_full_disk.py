"""A full disk under every command that writes: one line, nothing incomplete, a correct rerun.

Each trial runs the command with its output on a tiny tmpfs (``sandbox.on_small_disk``), checks
the one-line error and that what the full disk holds afterwards is complete (no temporary,
empty or truncated file: before these checks ``predict`` exited 0 leaving 0-byte label maps and
a rerun skipped them), then frees space (grows the tmpfs) and reruns: the result must equal an
uninterrupted run on a healthy disk. Where no tmpfs can be mounted the trials skip, and the
``injected`` trials below make the writers fail with ``ENOSPC`` in-process instead.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.reliability import scenarios as sc
from tests.reliability.cli import assert_clean_error, assert_nothing_half_written, run_cli
from tests.reliability.conftest import Workspace
from tests.reliability.sandbox import Step, on_small_disk, sandbox_available

needs_tmpfs = pytest.mark.skipif(
    not sandbox_available(), reason="needs root and unshare to mount a small tmpfs"
)
NO_SPACE = ("cannot be written: no space left", "was not written completely", "write was cut short")


@dataclass(frozen=True)
class DiskTrial:
    """``prepare(ws, mount)`` returns the command's arguments with its output under ``mount``
    (and sets the roots it needs); ``expected(ws, mount)`` the healthy result to compare with;
    ``compare(found, expected)`` does the comparison."""

    name: str
    prepare: Callable[[Workspace, Path], list[str]]
    size: str
    expected: Callable[[Workspace, Path], Path]
    compare: Callable[[Path, Path], None] = sc.assert_same_files


def _under(mount: Path, snapshot: Path, path: Path) -> Path:
    return snapshot / path.relative_to(mount)


def _predict(*extra: str) -> Callable[[Workspace, Path], list[str]]:
    return lambda ws, mount: sc.predict_args(ws, mount / "out", *extra)


def _predict_reference(*extra: str) -> Callable[[Workspace, Path], Path]:
    return lambda ws, _: sc.reference(ws, "ref", sc.predict_args(ws, ws.tmp / "ref", *extra))


def _ensemble(ws: Workspace, mount: Path) -> list[str]:
    a, b = sc.probability_folders(ws)
    return ["ensemble", "-i", str(a), "-i", str(b), "-o", str(mount / "out"), "-d", "1"]


def _ensemble_reference(ws: Workspace, _: Path) -> Path:
    a, b = sc.probability_folders(ws)
    return sc.reference(ws, "ref", ["ensemble", "-i", str(a), "-i", str(b), "-o",
                                    str(ws.tmp / "ref"), "-d", "1"])  # fmt: skip


def _apply(output: Path, ws: Workspace) -> list[str]:
    return ["postprocess", "apply", "-i", str(ws.raw_dataset / "labelsTr"), "-o", str(output),
            "--preset", "pairing"]  # fmt: skip


def _evaluate(output: Path, ws: Workspace) -> list[str]:
    labels = ws.raw_dataset / "labelsTr"
    return ["evaluate", str(labels), str(labels), "-o", str(output / "summary.json")]


def _evaluate_compare(found: Path, expected: Path) -> None:
    """Same scores (the summary also records its own file names, which differ)."""
    import json

    a = json.loads((found / "summary.json").read_text())
    b = json.loads((expected / "summary.json").read_text())
    assert a["cases"].keys() == b["cases"].keys()
    for case in a["cases"]:
        assert a["cases"][case]["metrics"] == b["cases"][case]["metrics"], case
    assert (found / "summary.csv").is_file()


def _plan(ws: Workspace, mount: Path) -> list[str]:
    os.environ["TUMORSEG_PREPROCESSED"] = str(mount / "pre")
    return sc.PLAN


def _plan_reference(ws: Workspace, _: Path) -> Path:
    assert run_cli([*sc.PLAN, "--preprocessed", str(ws.tmp / "ref")]).exit_code == 0
    return ws.tmp / "ref"


def _train(ws: Workspace, mount: Path) -> list[str]:
    sc.preprocessed(ws)
    return [*sc.TRAIN, "--results", str(mount / "results")]


def _train_reference(ws: Workspace, _: Path) -> Path:
    sc.preprocessed(ws)
    assert run_cli([*sc.TRAIN, "--results", str(ws.tmp / "ref")]).exit_code == 0
    return ws.tmp / "ref"


def _same_final_weights(found: Path, expected: Path) -> None:
    """The rerun trains the same network (CPU, same seed) and writes a complete run folder."""
    (a,) = found.rglob("checkpoint_final.pt")
    (b,) = expected.rglob("checkpoint_final.pt")
    x, y = (torch.load(p, weights_only=True)["network"] for p in (a, b))
    assert x.keys() == y.keys()
    for key in x:
        torch.testing.assert_close(x[key], y[key], rtol=0, atol=1e-6, msg=key)
    assert (a.parent / "validation" / "summary.json").is_file()


def _convert(ws: Workspace, mount: Path) -> list[str]:
    return ["convert", "brats", str(sc.brats_source(ws)), "--id", "7", "--name", "Full",
            "--raw", str(mount / "raw")]  # fmt: skip


def _convert_reference(ws: Workspace, _: Path) -> Path:
    args = ["convert", "brats", str(sc.brats_source(ws)), "--id", "7", "--name", "Full",
            "--raw", str(ws.tmp / "ref")]  # fmt: skip
    assert run_cli(args).exit_code == 0
    return ws.tmp / "ref"


DISK_TRIALS = [
    DiskTrial("predict", _predict(), "8k", _predict_reference()),
    DiskTrial("predict-save-probabilities", _predict("--save-probabilities"), "40k",
              _predict_reference("--save-probabilities")),
    DiskTrial("ensemble", _ensemble, "8k", _ensemble_reference),
    DiskTrial("postprocess-apply", lambda ws, m: _apply(m / "out", ws), "8k",
              lambda ws, _: sc.reference(ws, "ref", _apply(ws.tmp / "ref", ws))),
    DiskTrial("evaluate", lambda ws, m: _evaluate(m / "out", ws), "4k",
              lambda ws, _: sc.reference(ws, "ref", _evaluate(ws.tmp / "ref", ws)),
              _evaluate_compare),
    DiskTrial("plan", _plan, "40k", _plan_reference),
    DiskTrial("train", _train, "40k", _train_reference, _same_final_weights),
    DiskTrial("convert", _convert, "40k", _convert_reference),
]  # fmt: skip


#: Trials whose command imports torch in its subprocess (10-40 s each on a loaded 2-core
#: machine): in the slow suite; their injected twins below run in the default one.
SLOW = {"predict", "predict-save-probabilities", "ensemble", "train"}


@needs_tmpfs
@pytest.mark.parametrize(
    "trial",
    [pytest.param(t, marks=[pytest.mark.slow] if t.name in SLOW else []) for t in DISK_TRIALS],
    ids=[t.name for t in DISK_TRIALS],
)
def test_full_disk_is_one_line_and_the_rerun_is_right(
    workspace: Workspace, trial: DiskTrial, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount = workspace.tmp / "disk"
    monkeypatch.setenv("TUMORSEG_PREPROCESSED", str(workspace.roots.preprocessed))
    expected = trial.expected(workspace, mount)
    args = trial.prepare(workspace, mount)
    full, freed = on_small_disk(
        mount, [Step(args, trial.size), Step(args, "64m")], workspace.tmp / "sandbox"
    )
    line = assert_clean_error(full.outcome, str(mount))
    assert any(fragment in line for fragment in NO_SPACE), line
    sc.assert_complete(full.snapshot)
    assert freed.outcome.exit_code == 0, freed.outcome.describe()
    sc.assert_complete(freed.snapshot)
    output = next(p for p in freed.snapshot.iterdir())
    trial.compare(output, expected)


# ---- the same faults injected in-process (run everywhere, no tmpfs needed) -------------------


def _no_space(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _short_itk_writes_after(count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """ITK writes the first ``count`` label maps, then cuts every file short (a full disk)."""
    import SimpleITK as sitk

    real, written = sitk.WriteImage, []

    def write(image: Any, name: str, *args: Any, **kwargs: Any) -> None:
        real(image, name, *args, **kwargs)
        written.append(name)
        if len(written) > count:
            Path(name).write_bytes(b"")

    monkeypatch.setattr(sitk, "WriteImage", write)


@pytest.mark.parametrize("probabilities", [False, True], ids=["labels", "probabilities"])
def test_injected_full_disk_in_predict(workspace: Workspace, probabilities: bool) -> None:
    extra = ("--save-probabilities",) if probabilities else ()
    expected = sc.reference(workspace, "ref", sc.predict_args(workspace, workspace.tmp / "ref",
                                                                 *extra))  # fmt: skip
    out = workspace.tmp / "out"
    with pytest.MonkeyPatch.context() as fault:
        if probabilities:
            fault.setattr(np, "savez_compressed", _no_space)
        else:
            _short_itk_writes_after(1, fault)
        line = assert_clean_error(run_cli(sc.predict_args(workspace, out, *extra)), str(out))
    assert any(fragment in line for fragment in NO_SPACE), line
    sc.assert_complete(out)
    assert len(list(out.glob("*.nii.gz"))) == (0 if probabilities else 1)
    outcome = run_cli(sc.predict_args(workspace, out, *extra))
    assert outcome.exit_code == 0, outcome.describe()
    sc.assert_same_files(out, expected)


def test_injected_full_disk_in_ensemble_and_apply(workspace: Workspace) -> None:
    a, b = sc.probability_folders(workspace)
    ensemble = ["ensemble", "-i", str(a), "-i", str(b), "-d", "1", "-o"]
    expected = sc.reference(workspace, "ref", [*ensemble, str(workspace.tmp / "ref")])
    out = workspace.tmp / "out"
    with pytest.MonkeyPatch.context() as fault:
        _short_itk_writes_after(0, fault)
        line = assert_clean_error(run_cli([*ensemble, str(out)]), f"{out}/a.nii.gz")
        assert "was not written completely" in line
        apply = run_cli(_apply(workspace.tmp / "pp", workspace))
        line = assert_clean_error(apply, "pp/tiny_000.nii.gz: was not written completely")
    assert_nothing_half_written(workspace.tmp)
    assert not list(out.glob("*.nii.gz"))
    assert run_cli([*ensemble, str(out)]).exit_code == 0
    sc.assert_same_files(out, expected)


def test_injected_full_disk_in_train_keeps_no_broken_checkpoint(workspace: Workspace) -> None:
    from tumorseg.runs import checkpoint as checkpoint_files

    sc.preprocessed(workspace)

    def full(state: Any, handle: Any) -> None:
        handle.write(b"PK\x03\x04 first bytes of a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as fault:
        fault.setattr(checkpoint_files.torch, "save", full)
        line = assert_clean_error(run_cli(sc.TRAIN), "checkpoint_latest.pt: cannot be written")
    assert "no space left on the device" in line
    assert_nothing_half_written(workspace.roots.results)
    assert not list(workspace.roots.results.rglob("*.pt"))
    outcome = run_cli(sc.TRAIN)
    assert outcome.exit_code == 0, outcome.describe()
    assert len(list(workspace.roots.results.rglob("checkpoint_final.pt"))) == 1
