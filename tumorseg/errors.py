"""User-facing errors.

A ``TumorsegError`` carries one line that names the file (or thing) at fault and the fix. The CLI
prints it as ``error: <message>`` and exits with a non-zero code, without a traceback. Library
code raises it for every problem a user can cause; programming errors stay ordinary exceptions.
"""

from __future__ import annotations

import errno
from pathlib import Path


class TumorsegError(Exception):
    """An error caused by user input, reported as one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class OutputError(TumorsegError):
    """An output that could not be written (full disk, read-only or forbidden folder ...).

    Commands that go on after a bad input case stop on this one: every later output would fail
    the same way.
    """


def bad_file(path: Path | str, problem: str, fix: str) -> TumorsegError:
    """Build the canonical one-line message: ``<path>: <problem>; <fix>``."""
    return TumorsegError(f"{path}: {problem}; {fix}")


# Why an output could not be written, and what the user can do about it, by errno. A short write
# reported without an errno (numpy's "N requested and M written") is a full disk too.
_WRITE_PROBLEMS: dict[int | None, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free disk space or choose another folder"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space or choose another folder"),
    errno.EFBIG: ("the file is larger than this filesystem allows", "choose another folder"),
    errno.EROFS: ("the filesystem is read-only", "choose a writable folder"),
    errno.EACCES: ("permission denied", "choose a folder you may write to"),
    errno.EPERM: ("the operation is not permitted", "choose a folder you may write to"),
    errno.ENOTDIR: ("a parent of it is a file, not a folder", "choose another path"),
    errno.EISDIR: ("it is a folder, not a file", "give a file name"),
    errno.EEXIST: ("a file of that name is in the way", "remove it or choose another path"),
    errno.ENOENT: ("this location accepts no new files", "choose a folder on a writable disk"),
    errno.EIO: ("an input/output error occurred on the device", "check the disk"),
    None: ("the write was cut short (disk full?)", "free disk space or choose another folder"),
}

#: Errnos that mean "this output cannot be written" wherever they come from.
WRITE_ERRNOS = frozenset(k for k in _WRITE_PROBLEMS if k is not None and k != errno.ENOENT)


def write_failure(path: Path | str, exc: OSError, *, folder: bool = False) -> OutputError:
    """The one-line error for an output ``path`` (a file, or a ``folder`` to create) that ``exc``
    kept from being written."""
    problem, fix = _WRITE_PROBLEMS.get(exc.errno, (exc.strerror or str(exc), "check the folder"))
    detail = "" if exc.errno is not None else f" ({exc})"
    what = "cannot be created as a folder" if folder else "cannot be written"
    return OutputError(f"{path}: {what}: {problem}{detail}; {fix}, then re-run")


def incomplete_write(path: Path | str, problem: str) -> OutputError:
    """The error for an output ``path`` whose written file did not read back complete."""
    return OutputError(
        f"{path}: was not written completely ({problem}); check the free disk space and "
        "permissions of the folder, then re-run"
    )


def is_write_failure(exc: OSError) -> bool:
    """True for the errors of a write that the user's environment refused (full disk, quota,
    read-only or forbidden folder) or cut short without an errno."""
    return exc.errno is None or exc.errno in WRITE_ERRNOS
