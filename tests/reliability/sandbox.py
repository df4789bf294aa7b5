"""Commands on a real small or read-only filesystem: a tmpfs in a private mount namespace.

``on_small_disk`` runs ``tumorseg`` commands one after another as subprocesses inside
``unshare -m`` with a tmpfs mounted on a folder of the test; before each command the tmpfs is
(re)mounted with that step's size (growing it is how a user frees space), or read-only. After
each command the tmpfs's content is copied to ``snapshot_<i>/`` on the real disk, because the
mount vanishes with the namespace. This needs root (or CAP_SYS_ADMIN) and ``unshare``;
``sandbox_available`` says whether this machine has them, and the trials that need it skip
cleanly where not.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.reliability.cli import CliOutcome

_REPOSITORY = Path(__file__).resolve().parents[2]


@functools.cache
def sandbox_available() -> bool:
    """True when a tmpfs can be mounted in a private mount namespace here."""
    if shutil.which("unshare") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=4k tmpfs {folder}"],
            capture_output=True,
            timeout=30,
        )
    return probe.returncode == 0


@dataclass(frozen=True)
class Step:
    """One command on the tmpfs: its arguments and the filesystem it finds."""

    args: Sequence[str]
    size: str = "64m"  # tmpfs size for this command (k, m suffixes)
    read_only: bool = False


@dataclass(frozen=True)
class SandboxOutcome:
    """What one step did, and a copy of the tmpfs afterwards."""

    outcome: CliOutcome
    snapshot: Path


_SCRIPT = """
mnt="$1"; logs="$2"; n="$3"
i=0
while [ "$i" -lt "$n" ]; do
  size=$(cat "$logs/size_$i"); mode=$(cat "$logs/mode_$i")
  if [ "$i" -eq 0 ]; then mount -t tmpfs -o "size=$size" tmpfs "$mnt" || exit 97
  else mount -o "remount,rw,size=$size" "$mnt" || exit 98; fi
  if [ "$mode" = ro ]; then mount -o remount,ro "$mnt" || exit 99; fi
  "$PYTHON" -m tests.reliability.sandbox "$logs/args_$i.json" > "$logs/out_$i" 2> "$logs/err_$i"
  echo $? > "$logs/rc_$i"
  mkdir -p "$logs/snapshot_$i"
  cp -a "$mnt/." "$logs/snapshot_$i/"
  i=$((i+1))
done
"""


def on_small_disk(mount: Path, steps: Sequence[Step], logs: Path) -> list[SandboxOutcome]:
    """Run ``steps`` in order with a tmpfs on ``mount`` (an empty folder); return each step's
    outcome and the snapshot of the tmpfs after it. The environment (``TUMORSEG_*`` roots) is
    the test's."""
    mount.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    for i, step in enumerate(steps):
        (logs / f"size_{i}").write_text(step.size)
        (logs / f"mode_{i}").write_text("ro" if step.read_only else "rw")
        (logs / f"args_{i}.json").write_text(json.dumps(list(step.args)))
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(_REPOSITORY)}
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", _SCRIPT, "sh", str(mount), str(logs), str(len(steps))],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"sandbox failed ({done.returncode}): {done.stderr[-2000:]}"
    results = []
    for i, step in enumerate(steps):
        stderr = (logs / f"err_{i}").read_text()
        outcome = CliOutcome(
            tuple(step.args),
            int((logs / f"rc_{i}").read_text()),
            (logs / f"out_{i}").read_text(),
            stderr,
            stderr if "Traceback" in stderr else None,
        )
        results.append(SandboxOutcome(outcome, logs / f"snapshot_{i}"))
    return results


if __name__ == "__main__":  # one step inside the namespace: tumorseg ARGS from a JSON list
    from tumorseg.cli import main

    sys.argv = ["tumorseg", *json.loads(Path(sys.argv[1]).read_text())]
    main()
