"""Refused and short writes, injected in the writers: one line naming the output, nothing left.

The same faults on a real full filesystem (a small tmpfs) run through the CLI in
``tests/reliability/test_full_disk.py`` where the machine allows mounting one.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from tests.inference.tiny_run import GEOMETRY
from tumorseg.data.io import read_image, write_image
from tumorseg.errors import OutputError, TumorsegError, write_failure
from tumorseg.inference.export import load_probabilities, write_probabilities
from tumorseg.runs import checkpoint as checkpoint_files
from tumorseg.utils import outputs
from tumorseg.utils.atomic import write_json
from tumorseg.utils.outputs import check_output_file, check_output_folder

FULL = OSError(errno.ENOSPC, "No space left on device")


def test_a_short_nifti_write_is_an_error_not_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ITK cut short by a full disk writes half a file and returns (seen on a 40 kB tmpfs)."""
    real_write = sitk.WriteImage

    def half_write(image: Any, name: str, *args: Any, **kwargs: Any) -> None:
        real_write(image, name, *args, **kwargs)
        Path(name).write_bytes(Path(name).read_bytes()[: Path(name).stat().st_size // 2])

    monkeypatch.setattr(sitk, "WriteImage", half_write)
    path = tmp_path / "case.nii.gz"
    labels = np.random.default_rng(0).integers(0, 4, GEOMETRY.shape).astype(np.uint8)
    for check in (False, True):
        with pytest.raises(OutputError, match=rf"{path}: was not written completely \("):
            write_image(path, labels, GEOMETRY, check=check)
        assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_image(path, labels, GEOMETRY, check=True)
    np.testing.assert_array_equal(read_image(path)[0], labels)


def test_probabilities_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args: Any, **kwargs: Any) -> None:
        raise FULL

    path = tmp_path / "case.npz"
    probabilities = np.random.default_rng(1).random((3, *GEOMETRY.shape)).astype(np.float32)
    monkeypatch.setattr(np, "savez_compressed", no_space)
    with pytest.raises(OutputError, match=rf"{path}: cannot be written: no space left"):
        write_probabilities(path, probabilities, GEOMETRY, "sigmoid")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_probabilities(path, probabilities, GEOMETRY, "sigmoid")
    stored, geometry, activation = load_probabilities(path)
    np.testing.assert_allclose(stored, probabilities, atol=1e-3)  # stored as float16
    assert (geometry, activation) == (GEOMETRY, "sigmoid")


class _DiskFillsAfter(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, path: Path, room: int) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise FULL
        self.room -= len(data)
        return self.handle.write(data)

    def close(self) -> None:
        self.handle.close()
        super().close()


def test_a_checkpoint_on_a_full_disk_keeps_the_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.save reports a full disk as "unexpected pos" without an errno; the one line says
    what happened, and the previous checkpoint stays."""
    path = tmp_path / "checkpoint_latest.pt"
    checkpoint_files.save_checkpoint(path, {"network": {"w": torch.ones(3)}})
    monkeypatch.setattr(
        checkpoint_files, "open", lambda p, mode: _DiskFillsAfter(Path(p), 300), raising=False
    )
    with pytest.raises(OutputError, match=rf"{path}: cannot be written: no space left"):
        checkpoint_files.save_checkpoint(path, {"network": {"w": torch.zeros(1000)}})
    monkeypatch.undo()
    assert torch.equal(checkpoint_files.load_checkpoint(path)["network"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_latest.pt"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, "cannot be written: no space left on the device; free disk space"),
        (errno.EDQUOT, "cannot be written: the disk quota is exceeded"),
        (errno.EROFS, "cannot be written: the filesystem is read-only; choose a writable folder"),
        (errno.EACCES, "cannot be written: permission denied"),
        (None, "cannot be written: the write was cut short (disk full?) (64 requested"),
    ],
)
def test_write_failure_lines(code: int | None, expected: str) -> None:
    exc = OSError(code, "x") if code is not None else OSError("64 requested and 10 written")
    line = str(write_failure("/data/out/case.nii.gz", exc))
    assert line.startswith(f"/data/out/case.nii.gz: {expected}")
    assert line.endswith(", then re-run")


def test_json_into_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(OutputError, match=r"summary\.json: cannot be written: the filesystem is"):
        write_json(tmp_path / "summary.json", {"a": 1})


def test_output_checks_name_the_path_and_create_nothing(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(TumorsegError, match="is a file, but -o must be"):
        check_output_folder(a_file)
    with pytest.raises(TumorsegError, match=rf"{a_file / 'out'}: cannot be created: {a_file} is a"):
        check_output_folder(a_file / "out")
    with pytest.raises(
        TumorsegError, match=rf"{a_file / 'x' / 'm.zip'}: cannot be created: {a_file}"
    ):
        check_output_file(a_file / "x" / "m.zip")
    with pytest.raises(TumorsegError, match=rf"{tmp_path}: is a folder, but -o must be a file"):
        check_output_file(tmp_path)
    with pytest.raises(OutputError, match="/proc/predictions: cannot be created as a folder"):
        check_output_folder(Path("/proc/predictions"))
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_output_file(tmp_path / "new" / "model.zip") == tmp_path / "new" / "model.zip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_output_check_on_a_read_only_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match=rf"{tmp_path / 'out'}: cannot be created as a folder: "):
        check_output_folder(tmp_path / "out")
