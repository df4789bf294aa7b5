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
    <DatasetNNN_Name>/<run>/postprocessing.json  the run's post-processing decided on its
                                              cross-validation, when it has an up-to-date one
                                              (manifest ``postprocessing_file``); an installed
                                              model predicts with it as the run itself would

Installing never trusts the archive: absolute paths, ``..`` components, links and entries
outside the declared run folder are rejected before anything is written; only the files the
manifest lists are installed (others are named and left out), each within a size limit; the
run folder appears atomically, and every checkpoint must load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from tumorseg import __version__
from tumorseg.errors import bad_file
from tumorseg.postprocessing.run_decision import RUN_DECISION_FILE, carried_decision
from tumorseg.utils.atomic import atomic_dir, atomic_path

MANIFEST = "tumorseg_model.json"
FORMAT_VERSION = 1
_RUN_FILES = ("plans.json", "dataset.json")
_FOLD_FILES = ("train_config.json",)
_FOLD_NAME = re.compile(r"fold_(\d+|all)")
_CHECKPOINT_NAMES = ("final", "best", "latest")
# Largest file installed, by kind: far above what tumorseg writes (plans and settings are a few
# kB; a 3D nnU-Net-sized checkpoint with optimiser state is under 1 GB), so only a zip bomb or
# a foreign archive hits them.
_SIZE_LIMITS = {".json": 16 << 20, ".pt": 4 << 30, ".onnx": 4 << 30}
_UNTRUSTED = "install only model zips written by `tumorseg export-model`"
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
    decision = carried_decision(run_folder)
    if decision is not None:
        manifest["postprocessing_file"] = RUN_DECISION_FILE
    manifest = {**(manifest_extra or {}), **manifest}
    output = Path(output)
    with atomic_path(output) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        for path, arcname in members:
            archive.write(path, arcname)
        for relative, content in extra_members:
            archive.writestr(str(prefix / relative), content)
        if decision is not None:
            archive.writestr(str(prefix / RUN_DECISION_FILE), json.dumps(decision, indent=2))
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
            _UNTRUSTED,
        )
    if path != PurePosixPath(MANIFEST) and path.parts[: len(prefix.parts)] != prefix.parts:
        raise bad_file(
            zip_path,
            f"entry {name!r} lies outside the declared run {prefix}",
            _UNTRUSTED,
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


def _listed_files(manifest: dict[str, Any], zip_path: Path) -> set[PurePosixPath]:
    """The files the manifest lists, relative to the run folder."""
    folds, checkpoints = manifest.get("folds"), manifest.get("checkpoints")
    if not (
        isinstance(folds, list)
        and folds
        and all(isinstance(f, str) and _FOLD_NAME.fullmatch(f) for f in folds)
    ):
        raise bad_file(zip_path, f"manifest 'folds' is {folds!r}", "re-export the model")
    if not (
        isinstance(checkpoints, list)
        and checkpoints
        and all(c in _CHECKPOINT_NAMES for c in checkpoints)
    ):
        raise bad_file(
            zip_path, f"manifest 'checkpoints' is {checkpoints!r}", "re-export the model"
        )
    listed = {PurePosixPath(name) for name in _RUN_FILES}
    for fold in folds:
        names = [*_FOLD_FILES, *(f"checkpoint_{c}.pt" for c in checkpoints)]
        listed.update(PurePosixPath(fold, name) for name in names)
    # an ONNX export (``--format onnx``) lists its graphs: one per listed fold and checkpoint
    graphs = {PurePosixPath(f, f"network_{c}.onnx") for f in folds for c in checkpoints}
    onnx_files = manifest.get("onnx_files", [])
    if (
        not isinstance(onnx_files, list)
        or not {PurePosixPath(str(n)) for n in onnx_files} <= graphs
    ):
        raise bad_file(zip_path, f"manifest 'onnx_files' is {onnx_files!r}", "re-export the model")
    listed.update(PurePosixPath(str(name)) for name in onnx_files)
    decision_file = manifest.get("postprocessing_file")
    if decision_file is not None:
        if decision_file != RUN_DECISION_FILE:
            raise bad_file(
                zip_path,
                f"manifest 'postprocessing_file' is {decision_file!r}",
                "re-export the model",
            )
        listed.add(PurePosixPath(RUN_DECISION_FILE))
    return listed


def _chosen_entries(
    archive: zipfile.ZipFile, zip_path: Path, prefix: PurePosixPath, listed: set[PurePosixPath]
) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]], list[str]]:
    """``([(entry, path in the run folder)] of the listed files and the listed folds' optional
    records, names left out)``; every entry is checked to be safe first, each listed file must
    be there once and within its limit."""
    chosen: dict[PurePosixPath, zipfile.ZipInfo] = {}
    left_out = []
    # the listed folds' optional records (e.g. a clfc fold's normal_model.json) are kept too
    folds = {PurePosixPath(path.parts[0]) for path in listed if len(path.parts) == 2}
    for info in archive.infolist():
        relative = _check_member(info, zip_path, prefix)
        if info.is_dir() or relative == PurePosixPath(MANIFEST):
            continue
        inner = PurePosixPath(*relative.parts[len(prefix.parts) :])
        optional = len(inner.parts) == 2 and inner.name in _OPTIONAL_FOLD_FILES
        if inner not in listed and not (optional and PurePosixPath(inner.parts[0]) in folds):
            left_out.append(info.filename)
            continue
        if inner in chosen:
            raise bad_file(zip_path, f"holds {info.filename!r} twice", _UNTRUSTED)
        limit = _SIZE_LIMITS[inner.suffix]
        if info.file_size > limit:
            raise bad_file(
                zip_path,
                f"{info.filename!r} is {_size(info.file_size)}, over the "
                f"{_size(limit)} limit for {inner.suffix} files",
                _UNTRUSTED,
            )
        chosen[inner] = info
    missing = sorted(str(p) for p in listed - set(chosen))
    if missing:
        raise bad_file(
            zip_path,
            f"lacks {', '.join(missing)}, which its manifest lists",
            "export the model again with `tumorseg export-model`",
        )
    return [(chosen[p], p) for p in sorted(chosen)], left_out


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes} bytes"


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path) -> None:
    """Copy one entry, stopping at its declared size (a lying header cannot inflate more)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(destination, "wb") as sink:
        shutil.copyfileobj(source, sink)


def install_model(
    zip_path: Path,
    results: Path,
    *,
    overwrite: bool = False,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Extract a model zip into ``results``; return the installed run folder.

    Only the files the manifest lists are installed; ``note`` receives the names of any others.
    Raises a one-line ``TumorsegError`` for an unsafe or malformed archive, a listed file that
    is missing or over its size limit, a checkpoint that does not load with
    ``weights_only=True``, and when the run exists (unless ``overwrite``). Staging folders of
    killed installs are removed first.
    """
    from tumorseg.runs.checkpoint import load_plain, refusal_reason
    from tumorseg.utils.temporaries import remove_stale_temporaries

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
        chosen, left_out = _chosen_entries(
            archive, zip_path, prefix, _listed_files(manifest, zip_path)
        )
        target = Path(results) / prefix
        if target.exists() and not overwrite:
            raise bad_file(target, "this run is already installed", "remove it or pass --overwrite")
        remove_stale_temporaries(target.parent)
        with atomic_dir(target) as staging:
            for info, inner in chosen:
                _extract(archive, info, staging.joinpath(*inner.parts))
            for checkpoint in sorted(staging.glob("fold_*/checkpoint_*.pt")):
                try:
                    load_plain(checkpoint)
                except Exception as exc:  # any failure means the file is not plain weights
                    raise bad_file(
                        zip_path,
                        f"{checkpoint.relative_to(staging)} does not load as plain weights "
                        f"({refusal_reason(exc)})",
                        _UNTRUSTED,
                    ) from None
            if target.exists():
                # Replaced only once the new copy is complete and verified.
                shutil.rmtree(target)
    if left_out and note is not None:
        note(f"not installed (not listed in the manifest): {', '.join(left_out)}")
    return target
