"""Sharing trained models as zip files: ``export-model`` and ``install-model``.

A model zip holds one run folder, relative to the results root::

    tumorseg_model.json                       manifest (format, dataset, run, folds, checkpoints)
    <DatasetNNN_Name>/<run>/plans.json
    <DatasetNNN_Name>/<run>/dataset.json
    <DatasetNNN_Name>/<run>/fold_<k>/train_config.json
    <DatasetNNN_Name>/<run>/fold_<k>/checkpoint_<name>.pt
    <DatasetNNN_Name>/<run>/fold_<k>/normal_model.json  when present (clfc: which normal-
                                              appearance model the run used; its weights are
                                              inside the checkpoint)
    <DatasetNNN_Name>/<run>/fold_<k>/network_<name>.onnx    (``--format onnx`` only)

Installing never trusts the archive: absolute paths, ``..`` components, links and entries
outside the declared run folder are rejected before anything is written, the run folder
appears atomically, and every checkpoint must load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from tumorseg import __version__
from tumorseg.errors import bad_file
from tumorseg.utils.atomic import atomic_dir, atomic_path

MANIFEST = "tumorseg_model.json"
FORMAT_VERSION = 1
_RUN_FILES = ("plans.json", "dataset.json")
_FOLD_FILES = ("train_config.json",)
#: Records a fold may have; exported when present.
_OPTIONAL_FOLD_FILES = ("normal_model.json",)


def export_model(
    run_folder: Path,
    folds: Sequence[Path],
    output: Path,
    checkpoints: Sequence[str] = ("final",),
    *,
    extra_members: Sequence[tuple[str, bytes]] = (),
    manifest_extra: dict[str, Any] | None = None,
) -> Path:
    """Zip ``folds`` (fold folders of ``run_folder``) with the run's plans and dataset.json.

    Each fold must hold ``checkpoint_<name>.pt`` for every name in ``checkpoints``. The zip is
    written atomically to ``output``; returns ``output``. ``extra_members`` are
    ``(path relative to the run folder, content)`` pairs added to the run (e.g. ONNX graphs),
    ``manifest_extra`` more manifest entries (they cannot replace the ones above).
    """
    run_folder = Path(run_folder)
    dataset_name = run_folder.parent.name
    prefix = PurePosixPath(dataset_name, run_folder.name)
    members: list[tuple[Path, str]] = []
    for name in _RUN_FILES:
        path = run_folder / name
        if not path.is_file():
            raise bad_file(path, "not found", "export a run folder written by `tumorseg train`")
        members.append((path, str(prefix / name)))
    fold_names = []
    for fold in folds:
        fold = Path(fold)
        fold_names.append(fold.name)
        wanted = [*_FOLD_FILES, *(f"checkpoint_{c}.pt" for c in checkpoints)]
        for name in wanted:
            path = fold / name
            if not path.is_file():
                raise bad_file(path, "not found", "train this fold first or leave it out of -f")
            members.append((path, str(prefix / fold.name / name)))
        for name in _OPTIONAL_FOLD_FILES:
            if (fold / name).is_file():
                members.append((fold / name, str(prefix / fold.name / name)))
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "tumorseg_version": __version__,
        "dataset_name": dataset_name,
        "run": run_folder.name,
        "folds": fold_names,
        "checkpoints": list(checkpoints),
    }
    manifest = {**(manifest_extra or {}), **manifest}
    output = Path(output)
    with atomic_path(output) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        for path, arcname in members:
            archive.write(path, arcname)
        for relative, content in extra_members:
            archive.writestr(str(prefix / relative), content)
    return output


def _check_member(info: zipfile.ZipInfo, zip_path: Path, prefix: PurePosixPath) -> PurePosixPath:
    """The safe relative path of one archive entry, or a one-line error."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    unsafe = (
        path.is_absolute()
        or ".." in path.parts
        or (len(name) > 1 and name[1] == ":")  # a Windows drive letter
        or stat.S_ISLNK(info.external_attr >> 16)
    )
    if unsafe:
        raise bad_file(
            zip_path,
            f"unsafe entry {name!r} (absolute path, '..' or link)",
            "install only model zips written by `tumorseg export-model`",
        )
    if path != PurePosixPath(MANIFEST) and path.parts[: len(prefix.parts)] != prefix.parts:
        raise bad_file(
            zip_path,
            f"entry {name!r} lies outside the declared run {prefix}",
            "install only model zips written by `tumorseg export-model`",
        )
    return path


def read_manifest(archive: zipfile.ZipFile, zip_path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except KeyError:
        raise bad_file(
            zip_path, f"has no {MANIFEST}", "export the model with `tumorseg export-model`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_file(zip_path, f"{MANIFEST} is not valid JSON", "re-export the model") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise bad_file(
            zip_path,
            f"model format {manifest.get('format_version')!r}, "
            f"this tumorseg reads {FORMAT_VERSION}",
            "re-export it with this tumorseg version",
        )
    for key in ("dataset_name", "run"):
        value = manifest.get(key)
        if (
            not isinstance(value, str)
            or not value
            or "/" in value
            or "\\" in value
            or value in (".", "..")
        ):
            raise bad_file(zip_path, f"manifest {key!r} is {value!r}", "re-export the model")
    return manifest


def install_model(zip_path: Path, results: Path, *, overwrite: bool = False) -> Path:
    """Extract a model zip into ``results``; return the installed run folder.

    Raises a one-line ``TumorsegError`` for an unsafe or malformed archive, for a checkpoint that
    does not load with ``weights_only=True``, and when the run exists (unless ``overwrite``).
    """
    import shutil

    import torch

    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise bad_file(zip_path, "not found", "check the path of the model zip")
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise bad_file(
            zip_path, "is not a zip file", "download or export the model again"
        ) from None
    with archive:
        manifest = read_manifest(archive, zip_path)
        prefix = PurePosixPath(manifest["dataset_name"], manifest["run"])
        entries = [(info, _check_member(info, zip_path, prefix)) for info in archive.infolist()]
        target = Path(results) / prefix
        if target.exists() and not overwrite:
            raise bad_file(target, "this run is already installed", "remove it or pass --overwrite")
        with atomic_dir(target) as staging:
            for info, relative in entries:
                if info.is_dir() or relative == PurePosixPath(MANIFEST):
                    continue
                destination = staging.joinpath(*relative.parts[len(prefix.parts) :])
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
            for checkpoint in sorted(staging.glob("fold_*/checkpoint_*.pt")):
                try:
                    torch.load(checkpoint, map_location="cpu", weights_only=True)
                except Exception as exc:  # any failure means the file is not plain weights
                    raise bad_file(
                        zip_path,
                        f"{checkpoint.relative_to(staging)} does not load as plain weights "
                        f"({type(exc).__name__})",
                        "install only model zips written by `tumorseg export-model`",
                    ) from None
            if target.exists():
                # Replaced only once the new copy is complete and verified.
                shutil.rmtree(target)
    return target
