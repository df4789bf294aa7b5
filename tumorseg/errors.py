"""User-facing errors.

A ``TumorsegError`` carries one line that names the file (or thing) at fault and the fix. The CLI
prints it as ``error: <message>`` and exits with a non-zero code, without a traceback. Library
code raises it for every problem a user can cause; programming errors stay ordinary exceptions.
"""

from __future__ import annotations

from pathlib import Path


class TumorsegError(Exception):
    """An error caused by user input, reported as one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def bad_file(path: Path | str, problem: str, fix: str) -> TumorsegError:
    """Build the canonical one-line message: ``<path>: <problem>; <fix>``."""
    return TumorsegError(f"{path}: {problem}; {fix}")
