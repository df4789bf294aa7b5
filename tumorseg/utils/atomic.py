"""Atomic writes: a file or folder appears complete under its final name, or not at all.

Every output of tumorseg goes through these helpers, so a killed process never leaves a
half-written case, checkpoint, plan or dataset behind, and concurrent jobs never see one. A write
that the environment refuses (full disk, quota, read-only or forbidden folder, a file where a
folder should be) is a one-line ``TumorsegError`` naming the final path, and nothing is renamed
into place. Temporary names carry their writer (``tumorseg.utils.temporaries``), so those of a
killed process can be told from those of a live one and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tumorseg.errors import is_write_failure, write_failure
from tumorseg.utils.temporaries import owner_tag


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual umask-based modes.
_UMASK = _current_umask()
_FILE_MODE = 0o666 & ~_UMASK
_DIR_MODE = 0o777 & ~_UMASK


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    # Same folder, so the final rename never crosses a filesystem; a dot-name so globbing
    # '*.nii.gz' or '*.npy' never picks up a file being written. Unique per process and call;
    # the owner tag lets a later run remove it if this process dies.
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.{owner_tag()}.", suffix=f".tmp{suffix}", dir=path.parent
    )
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def named_write_failures(path: Path) -> Iterator[None]:
    """Turn a refused write (full disk, read-only ...) in the block into the one-line error
    naming ``path`` (for writes that cannot be atomic, such as appending to a log)."""
    try:
        yield
    except OSError as exc:
        if not is_write_failure(exc):
            raise
        raise write_failure(path, exc) from None


def make_folder(path: Path | str) -> Path:
    """``mkdir -p path``, with a one-line error naming ``path`` when that is impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(path, exc, folder=True) from None
    return path


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffixes (so writers that pick a format by extension work)
    and is removed if the block raises.
    """
    path = Path(path)
    make_folder(path.parent)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        tmp = _tmp_sibling(path, suffix)
    except OSError as exc:
        raise write_failure(path, exc) from None
    try:
        with named_write_failures(path):
            yield tmp
            if tmp.exists():
                os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it to ``path`` when the block succeeds.

    Fails if ``path`` already exists (callers decide whether to overwrite before calling).
    On failure the temporary folder is removed, so nothing half-built is left behind.
    """
    path = Path(path)
    make_folder(path.parent)
    try:
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.{owner_tag()}.", suffix=".tmp", dir=path.parent)
        )
    except OSError as exc:
        raise write_failure(path, exc) from None
    try:
        with named_write_failures(path):
            yield tmp
            os.chmod(tmp, _DIR_MODE)
            os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
