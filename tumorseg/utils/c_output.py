"""Holding back what C libraries print on file descriptor 2.

ITK's NIfTI writer reports a short write (``** ERROR: NWAD: wrote only 0 of 256000 bytes``) on
the C stderr and returns as if it had succeeded. tumorseg detects the short write itself and
reports it as one line; the library's message would be a second, unexplained one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class HeldOutput:
    """What the block printed stays held unless ``release()`` is called before it ends."""

    def __init__(self) -> None:
        self.released = False

    def release(self) -> None:
        self.released = True


@contextlib.contextmanager
def held_c_stderr() -> Iterator[HeldOutput]:
    """Redirect file descriptor 2 during the block; afterwards pass the text on to stderr only
    if ``release()`` was called (a successful call's warnings are kept, a failed one's messages
    are replaced by its one-line error)."""
    held = HeldOutput()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (an embedded interpreter): nothing to hold
        yield held
        return
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            if held.released and text:
                sys.stderr.write(text)
