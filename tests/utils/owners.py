"""The owner tag of a finished process, for the stale-temporary tests."""

from __future__ import annotations

import subprocess
import sys

_PRINT_TAG = "from tumorseg.utils.temporaries import owner_tag; print(owner_tag(), flush=True)"


def dead_owner_tag() -> str:
    """The owner tag of a process that has exited (as a ``kill -9`` leaves it)."""
    done = subprocess.run(
        [sys.executable, "-c", _PRINT_TAG], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()
