"""Finding the image files of a downloaded source dataset.

Source trees are walked following symbolic links: on clusters the case folders of a dataset are
often links into shared storage, and such a tree must convert exactly like a copy. Each real
folder is visited once, so a link pointing back up the tree cannot loop.

Two download artefacts are reported instead of being skipped without a word: a link whose target
is gone, and ``*.nii.gz.gz`` files (a browser or server that gzips a file a second time, or only
appends a second ``.gz`` to its name). Skipping them would make a case look as if it lacked a
modality, or the whole source look empty.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from tumorseg.data.io import image_ending
from tumorseg.errors import TumorsegError, bad_file

DOUBLE_GZIP_ENDING = ".nii.gz.gz"
_GZIP_MAGIC = b"\x1f\x8b"
#: ``sizeof_hdr`` of NIfTI-1 and NIfTI-2 headers, the first field of an uncompressed .nii.
_NIFTI_HEADER_SIZES = (348, 540)


def source_folder(src: Path) -> Path:
    """Check that ``src`` is an existing, non-empty folder; return it as an absolute path.

    Links are kept, not resolved: a single case folder that is a link to shared storage keeps
    its own name as the case id.
    """
    src = Path(src).expanduser()
    if not src.is_dir():
        raise bad_file(src, "source folder not found", "check the path to the downloaded dataset")
    if not any(p for p in src.iterdir() if not p.name.startswith(".")):
        raise bad_file(src, "source folder is empty", "point at the folder that holds the cases")
    return Path(os.path.abspath(src))


def walk_files(folder: Path) -> Iterator[Path]:
    """Every entry under ``folder`` that is not a folder, following links to folders.

    Paths keep the names under ``folder`` (links are not resolved), so case ids come from the
    names the user sees. Broken links are yielded too (the caller decides what they mean).
    """
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        stat = os.stat(root)
        if (stat.st_dev, stat.st_ino) in seen:
            dirs.clear()  # a link back to a folder already walked
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _double_gzip_fix(path: Path) -> str:
    """What a ``.nii.gz.gz`` file really is, and how to repair it."""
    try:
        with gzip.open(path, "rb") as stream:
            head = stream.read(4)
    except (OSError, EOFError, zlib.error):
        return "it is not a readable gzip file; download it again"
    if head[:2] == _GZIP_MAGIC:
        return (
            "it is gzipped twice: gunzip each such file once (gunzip X.nii.gz.gz leaves X.nii.gz)"
        )
    sizes = {int.from_bytes(head, "little"), int.from_bytes(head, "big")}
    if sizes & set(_NIFTI_HEADER_SIZES):
        return (
            "it is a valid .nii.gz under a doubled name: drop the last .gz of each such name "
            '(for f in *.nii.gz.gz; do mv "$f" "${f%.gz}"; done)'
        )
    return "its content is not NIfTI; download it again"


def _double_gzip_error(paths: list[Path]) -> TumorsegError:
    others = f" (and {len(paths) - 1} more *.nii.gz.gz files)" if len(paths) > 1 else ""
    return bad_file(
        paths[0],
        f"ends in .nii.gz.gz, which is no image format{others}",
        _double_gzip_fix(paths[0]),
    )


def image_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files (supported endings, hidden files skipped) in ``folder``, sorted.

    ``recursive`` walks sub-folders, following links. Raises a one-line ``TumorsegError`` for a
    broken link to an image or a ``*.nii.gz.gz`` file (see the module docstring).
    """
    found = walk_files(folder) if recursive else folder.iterdir()
    files, doubled = [], []
    for path in found:
        if path.name.startswith("."):
            continue
        if path.name.lower().endswith(DOUBLE_GZIP_ENDING):
            doubled.append(path)
        elif image_ending(path) and path.is_symlink() and not path.exists():
            raise bad_file(
                path, "is a broken symbolic link", "restore its target or remove the link"
            )
        elif image_ending(path) and path.is_file():
            files.append(path)
    if doubled:
        raise _double_gzip_error(sorted(doubled))
    return sorted(files)
