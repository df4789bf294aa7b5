from __future__ import annotations

import io
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
from tumorseg.inference import model_sharing
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


LISTED = ("plans.json", "dataset.json", "fold_0/train_config.json", "fold_0/checkpoint_final.pt")


def _zip_with(path: Path, name: str, data: bytes = b"x", symlink: bool = False) -> Path:
    """A zip of the listed files (plain weights) plus the entry ``name``, which replaces a
    listed file of the same name."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST, _manifest())
        for listed in LISTED:
            if f"{DATASET}/{RUN}/{listed}" == name:
                continue
            if listed.endswith(".pt"):
                buffer = io.BytesIO()
                torch.save({"network": {"w": torch.zeros(2)}}, buffer)
                zf.writestr(f"{DATASET}/{RUN}/{listed}", buffer.getvalue())
            else:
                zf.writestr(f"{DATASET}/{RUN}/{listed}", "{}")
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


def test_only_files_the_manifest_lists_are_installed(tmp_path: Path) -> None:
    """An extra file (a pickle under another name) is named and left out; the rest installs."""
    archive = _zip_with(
        tmp_path / "extra.zip", f"{DATASET}/{RUN}/fold_0/helper.pkl", pickle.dumps(_Payload())
    )
    notes: list[str] = []
    target = install_model(archive, tmp_path / "results", note=notes.append)
    installed = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert installed == sorted(LISTED)
    assert notes == [
        f"not installed (not listed in the manifest): {DATASET}/{RUN}/fold_0/helper.pkl"
    ]


def test_a_listed_folds_optional_record_is_installed(tmp_path: Path) -> None:
    """A clfc fold's normal_model.json travels with it; the same name under another fold not."""
    archive = _zip_with(tmp_path / "rec.zip", f"{DATASET}/{RUN}/fold_0/normal_model.json", b"{}")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(f"{DATASET}/{RUN}/fold_3/normal_model.json", b"{}")
    notes: list[str] = []
    target = install_model(archive, tmp_path / "results", note=notes.append)
    installed = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert installed == sorted([*LISTED, "fold_0/normal_model.json"])
    assert notes == [
        f"not installed (not listed in the manifest): {DATASET}/{RUN}/fold_3/normal_model.json"
    ]


def test_a_listed_file_missing_or_over_its_limit_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "short.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(MANIFEST, _manifest())
        zf.writestr(f"{DATASET}/{RUN}/plans.json", "{}")
    with pytest.raises(
        TumorsegError,
        match=r"lacks dataset\.json, fold_0/checkpoint_final\.pt, fold_0/train_config\.json",
    ):
        install_model(archive, tmp_path / "results")
    big = _zip_with(tmp_path / "big.zip", f"{DATASET}/{RUN}/dataset.json", b"{}" + b" " * 4096)
    monkeypatch.setitem(model_sharing._SIZE_LIMITS, ".json", 1024)
    over = r"dataset\.json' is 4098 bytes, over the 1024 bytes limit for \.json files"
    with pytest.raises(TumorsegError, match=over):
        install_model(big, tmp_path / "results")
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("folds", ["../x"]),
        ("folds", []),
        ("checkpoints", ["evil"]),
        ("onnx_files", ["fold_0/helper.pkl"]),
        ("onnx_files", ["fold_1/network_final.onnx"]),  # a fold the manifest does not list
        ("onnx_files", "fold_0/network_final.onnx"),
    ],
)
def test_manifest_folds_and_checkpoints_are_checked(
    tmp_path: Path, key: str, value: object
) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(MANIFEST, _manifest(**{key: value}))
    with pytest.raises(TumorsegError, match=f"manifest '{key}' is"):
        install_model(archive, tmp_path / "results")


def _decided_run(tmp_path: Path) -> tuple[Path, dict]:
    """A tiny run with every fold's validation summary and an up-to-date CV decision."""
    from tumorseg.constants import NUM_FOLDS
    from tumorseg.postprocessing.rules import preset_decision
    from tumorseg.postprocessing.run_decision import (
        RUN_DECISION_FILE,
        validation_digest,
        validation_folders,
    )

    run = write_tiny_run(tmp_path / "results", folds=(0,))
    for fold in range(NUM_FOLDS):
        (run / f"fold_{fold}" / "validation").mkdir(parents=True)
        (run / f"fold_{fold}" / "validation" / "summary.json").write_text(f'{{"fold": {fold}}}')
    folders = validation_folders(run)
    assert folders is not None
    decision = {
        **preset_decision("pairing", et_threshold=77),
        "folds": sorted(folders),
        "validation_digest": validation_digest(folders),
    }
    (run / RUN_DECISION_FILE).write_text(json.dumps(decision))
    return run, decision


def test_an_exported_model_carries_its_cv_postprocessing(tmp_path: Path) -> None:
    from tumorseg.data.labels import LabelManager
    from tumorseg.postprocessing.run_decision import choose_postprocessing

    run, decision = _decided_run(tmp_path)
    archive = export_model(run, [run / "fold_0"], tmp_path / "model.zip")
    with zipfile.ZipFile(archive) as zf:
        assert json.loads(zf.read(MANIFEST))["postprocessing_file"] == "postprocessing.json"
    target = install_model(archive, tmp_path / "elsewhere")
    assert not list(target.glob("fold_*/validation"))  # nothing to check the digest against
    chosen = choose_postprocessing(
        target, LabelManager.internal(), preset=("pairing", {}), trainer="pairing"
    )
    assert chosen.origin == "cross-validation"
    assert chosen.decision is not None
    assert chosen.decision["steps"] == decision["steps"]  # the run's 77 voxels, not the preset's
    assert "exported with the model" in chosen.reason
    # the run folder itself still checks the digest: a retrained fold outdates the decision
    (run / "fold_3" / "validation" / "summary.json").write_text('{"fold": "again"}')
    assert choose_postprocessing(run, LabelManager.internal()).origin == "none"


def test_an_outdated_or_unmarked_decision_is_not_carried(tmp_path: Path) -> None:
    from tumorseg.data.labels import LabelManager
    from tumorseg.postprocessing.run_decision import choose_postprocessing

    run, _ = _decided_run(tmp_path)
    (run / "fold_2" / "validation" / "summary.json").write_text('{"fold": "retrained"}')
    archive = export_model(run, [run / "fold_0"], tmp_path / "model.zip")
    with zipfile.ZipFile(archive) as zf:
        assert "postprocessing_file" not in json.loads(zf.read(MANIFEST))
        assert not any(n.endswith("postprocessing.json") for n in zf.namelist())
    target = install_model(archive, tmp_path / "elsewhere")
    chosen = choose_postprocessing(target, LabelManager.internal(), preset=("pairing", {}))
    assert chosen.origin == "preset"
    # a decision copied into a run folder by hand (not marked) is not trusted without validation
    (target / "postprocessing.json").write_text((run / "postprocessing.json").read_text())
    assert choose_postprocessing(target, LabelManager.internal()).origin == "none"


def test_a_manifest_naming_another_postprocessing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST, _manifest(postprocessing_file="../evil.json"))
    with pytest.raises(TumorsegError, match="postprocessing_file"):
        install_model(path, tmp_path / "results")
