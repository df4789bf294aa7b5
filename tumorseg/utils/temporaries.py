"""Temporary names that say who writes them, and the removal of those left by dead processes.

Every temporary file or folder that ``tumorseg.utils.atomic`` creates is named::

    .<final name>.<host>@<pid>@<start>.<random>.tmp[<suffix>]

``host`` is this machine's name, ``pid`` the writing process and ``start`` the process's start
time (clock ticks since boot, from ``/proc``; 0 where there is none), so a process id reused by
a later process is not mistaken for the writer. A process killed with ``kill -9`` (or by the
out-of-memory killer, or a node failure) cannot remove its temporaries;
``remove_stale_temporaries`` does it at the next start of a command that writes to the same
folder. It removes only what it can prove dead: entries of this host whose process is gone or
was restarted. A live process's temporaries (a concurrent fold, a second ``predict``) and those
of other hosts (shared storage on a cluster, where this host cannot see the other processes)
are left alone, as are temporary names without an owner (older versions).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
from pathlib import Path

_OWNER = re.compile(r"\.(?P<host>[A-Za-z0-9-]+)@(?P<pid>\d+)@(?P<start>\d+)\.[^.]+\.tmp")


def _start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command name) is in parentheses and may hold spaces; field 22 is the start.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


@functools.cache
def _owner_of(pid: int) -> str:
    return f"{_host()}@{pid}@{_start_ticks(pid) or 0}"


def owner_tag() -> str:
    """``host@pid@start`` of this process (recomputed in a forked child, whose pid differs)."""
    return _owner_of(os.getpid())


def _alive(pid: int, start: int) -> bool:
    """True unless process ``pid`` (started at ``start`` ticks) is known to be gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    if start == 0:
        return True  # no start time was recorded: trust the pid
    now = _start_ticks(pid)
    return now is None or now == start


def stale_owner(name: str) -> bool:
    """True when ``name`` is a temporary name of a dead process of this host."""
    match = _OWNER.search(name)
    if match is None or match["host"] != _host():
        return False
    return not _alive(int(match["pid"]), int(match["start"]))


def remove_stale_temporaries(folder: Path | str) -> list[Path]:
    """Remove the temporary files and folders of dead processes directly in ``folder``;
    return what was removed (nothing when ``folder`` does not exist)."""
    folder = Path(folder)
    try:
        entries = [p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
    except OSError:
        return []
    removed = []
    for path in entries:
        if not stale_owner(path.name):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue  # another command removed it first
        removed.append(path)
    return removed
