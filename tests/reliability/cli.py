"""Run the public command line as a user does and judge how it failed.

``run_cli`` calls the console-script entry point (``tumorseg.cli:main``) in-process, so an
exception that escapes it is exactly what a user would see as a Python traceback.
``assert_clean_error`` is the promise of the README: non-zero exit, one line ``error: ...`` that
holds the expected fragment, no traceback; ``assert_nothing_half_written`` that no temporary
file is left behind.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CliOutcome:
    """What one ``tumorseg ARGS`` run did."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    traceback: str | None  # an exception that escaped main(): the user saw a traceback

    def describe(self) -> str:
        return (
            f"tumorseg {' '.join(self.args)}\nexit {self.exit_code}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}\n{self.traceback or ''}"
        )


def run_cli(args: Sequence[str]) -> CliOutcome:
    """Run ``tumorseg ARGS`` through ``main()`` with captured output (roots come from the
    ``TUMORSEG_*`` environment variables, so commands run with their default options)."""
    from tumorseg.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    argv, code, escaped = sys.argv, 0, None
    sys.argv = ["tumorseg", *args]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:
        code, escaped = 1, traceback.format_exc()
    finally:
        sys.argv = argv
    return CliOutcome(tuple(args), code, stdout.getvalue(), stderr.getvalue(), escaped)


def assert_clean_error(outcome: CliOutcome, fragment: str) -> str:
    """Assert a clean user error holding ``fragment``; return its line (without ``error: ``)."""
    report = outcome.describe()
    assert outcome.traceback is None, report
    assert "Traceback" not in outcome.stdout + outcome.stderr, report
    assert outcome.exit_code != 0, report
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, report
    assert lines[0].startswith("error: "), report
    assert fragment in lines[0], report
    return lines[0].removeprefix("error: ")


def assert_nothing_half_written(*folders: Path) -> None:
    """No temporary file (``.NAME.*.tmp*``, as ``utils.atomic`` names them) under ``folders``."""
    left = [path for folder in folders if folder.exists() for path in folder.rglob(".*.tmp*")]
    assert not left, f"temporary files left behind: {left}"


@dataclass(frozen=True)
class Trial:
    """One row of a fault-injection table.

    ``prepare`` damages the workspace and returns the command's arguments; ``expected`` is a
    fragment of the one error line (the file at fault and the problem); ``unwritten`` lists
    outputs that must not exist afterwards.
    """

    name: str
    prepare: Callable[[Any], list[str]]
    expected: str
    unwritten: Callable[[Any], list[Path]] = lambda _: []

    def check(self, workspace: Any) -> str:
        """Run the trial in ``workspace``; return the error line."""
        line = assert_clean_error(run_cli(self.prepare(workspace)), self.expected)
        assert_nothing_half_written(workspace.tmp)
        written = [path for path in self.unwritten(workspace) if path.exists()]
        assert not written, f"written although the command failed: {written}"
        return line


def after(
    damage: Callable[[Any], object],
    args: Sequence[str],
    setup: Callable[[Any], object] | None = None,
) -> Callable[[Any], list[str]]:
    """A ``Trial.prepare``: ``setup`` the workspace (e.g. plan the good data), apply ``damage``,
    then run ``tumorseg ARGS``."""

    def prepare(workspace: Any) -> list[str]:
        if setup is not None:
            setup(workspace)
        damage(workspace)
        return list(args)

    return prepare
