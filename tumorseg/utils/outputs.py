"""Checking a command's output path before the work starts.

A prediction of a hundred cases should not run for an hour and then fail on ``-o`` being a file,
lying under a file, under ``/proc`` or on a read-only filesystem. These checks fail at once with
one line naming the path, and create nothing: the folder itself appears only when the first
output is written. Writability is tested by creating (and removing) an empty temporary file
where the output will go, which is the only test that every filesystem answers truthfully
(``os.access`` says yes for root on a read-only bind mount's parent, and for ``/proc``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tumorseg.errors import bad_file, write_failure
from tumorseg.utils.temporaries import owner_tag


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing ancestor (the folder a new path would be created in)."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _probe(folder: Path, path: Path, *, is_folder: bool) -> None:
    """Create and remove an empty file in ``folder``; a refusal is the error for ``path``."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".probe.{owner_tag()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise write_failure(path, exc, folder=is_folder) from None
    os.close(fd)
    Path(name).unlink()


def _creatable_in(path: Path, option: str) -> Path:
    """The existing folder that ``path`` would be created in, checked to be a folder."""
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise bad_file(
            path,
            f"cannot be created: {anchor} is a file, not a folder",
            f"choose another path for {option}",
        )
    return anchor


def check_output_folder(path: Path | str, option: str = "-o") -> Path:
    """``path`` if it is (or can become) a folder this process may write to, else a one-line
    error naming it; nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise bad_file(
            path, f"is a file, but {option} must be a folder", "give a folder, or move the file"
        )
    where = path if path.is_dir() else _creatable_in(path, option)
    _probe(where, path, is_folder=not path.is_dir())
    return path


def check_output_file(path: Path | str, option: str = "-o") -> Path:
    """``path`` if a file may be written there (it is not a folder and its folder exists or can
    be created, writable), else a one-line error naming it; nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise bad_file(path, f"is a folder, but {option} must be a file", "give a file name")
    where = path.parent if path.parent.is_dir() else _creatable_in(path, option)
    _probe(where, path, is_folder=False)
    return path
