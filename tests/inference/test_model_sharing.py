from __future__ import annotations

import json
import os
import pickle
import stat
import zipfile
from pathlib import Path

import pytest
import torch

from tests.inference.tiny_run import DATASET, RUN, write_tiny_run
from tumorseg.errors import TumorsegError
from tumorseg.inference.model_sharing import MANIFEST, export_model, install_model


def _manifest(**overrides: object) -> str:
    data = {
        "format_version": 1,
        "tumorseg_version": "x",
        "dataset_name": DATASET,
        "run": RUN,
        "folds": ["fold_0"],
        "checkpoints": ["final"],
    }
    data.update(overrides)
    return json.dumps(data)


def test_export_then_install_round_trip(tmp_path: Path) -> None:
    run = write_tiny_run(tmp_path / "results", folds=(0, 1))
    (run / "fold_1" / "log.txt").write_text("not exported")
    archive = export_model(run, [run / "fold_1"], tmp_path / "model.zip")
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
    assert f"{DATASET}/{RUN}/fold_1/checkpoint_final.pt" in names
    assert f"{DATASET}/{RUN}/plans.json" in names
    assert not any("fold_0" in n or "log.txt" in n for n in names)
    target = install_model(archive, tmp_path / "elsewhere")
    assert target == tmp_path / "elsewhere" / DATASET / RUN
    installed = torch.load(target / "fold_1" / "checkpoint_final.pt", weights_only=True)
    assert "network" in installed
    with pytest.raises(TumorsegError, match="already installed"):
        install_model(archive, tmp_path / "elsewhere")
    assert install_model(archive, tmp_path / "elsewhere", overwrite=True) == target


def _zip_with(path: Path, name: str, data: bytes = b"x", symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST, _manifest())
        zf.writestr(f"{DATASET}/{RUN}/plans.json", "{}")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("entry", "symlink"),
    [
        (f"{DATASET}/{RUN}/../../../evil.txt", False),
        ("/etc/evil.txt", False),
        (f"{DATASET}/{RUN}/fold_0/link", True),
        ("OtherDataset/run/evil.txt", False),
    ],
)
def test_malicious_zip_is_rejected_before_writing(
    tmp_path: Path, entry: str, symlink: bool
) -> None:
    archive = _zip_with(tmp_path / "bad.zip", entry, b"/etc/passwd", symlink)
    results = tmp_path / "results"
    with pytest.raises(TumorsegError, match=r"bad\.zip: .*(unsafe entry|outside the declared run)"):
        install_model(archive, results)
    assert not (tmp_path / "evil.txt").exists()
    assert not results.exists() or not any(results.rglob("*"))


def test_manifest_cannot_point_outside_the_results_root(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(MANIFEST, _manifest(dataset_name=".."))
    with pytest.raises(TumorsegError, match="manifest 'dataset_name'"):
        install_model(archive, tmp_path / "results")


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.getcwd, ())


def test_pickled_code_in_a_checkpoint_is_rejected(tmp_path: Path) -> None:
    archive = _zip_with(
        tmp_path / "pickle.zip",
        f"{DATASET}/{RUN}/fold_0/checkpoint_final.pt",
        pickle.dumps({"network": _Payload()}, protocol=2),
    )
    results = tmp_path / "results"
    with pytest.raises(TumorsegError, match="does not load as plain weights"):
        install_model(archive, results)
    assert not (results / DATASET / RUN).exists()


def test_not_a_zip_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_text("hello")
    with pytest.raises(TumorsegError, match="is not a zip file"):
        install_model(path, tmp_path)
