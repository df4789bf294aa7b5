"""Stale temporaries: those of dead processes go, those of live ones (and other hosts) stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.utils.owners import dead_owner_tag
from tumorseg.utils.atomic import atomic_path
from tumorseg.utils.temporaries import owner_tag, remove_stale_temporaries, stale_owner


def _temporary(folder: Path, owner: str, name: str = "case.nii.gz") -> Path:
    path = folder / f".{name}.{owner}.k2j4h5l1.tmp.nii.gz"
    path.write_bytes(b"partial")
    return path


def test_atomic_temporaries_carry_this_process(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "case.nii.gz") as tmp:
        assert f".case.nii.gz.{owner_tag()}." in tmp.name
        assert tmp.name.endswith(".tmp.nii.gz")
        assert not stale_owner(tmp.name)  # this process is alive
        assert remove_stale_temporaries(tmp_path) == []
        tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["case.nii.gz"]


def test_dead_process_temporaries_are_removed_others_kept(tmp_path: Path) -> None:
    host, pid, start = owner_tag().split("@")
    dead = _temporary(tmp_path, dead_owner_tag())
    folder = tmp_path / f".Dataset001_X.{dead_owner_tag()}.abcdefgh.tmp"  # a staging folder
    (folder / "fold_0").mkdir(parents=True)
    (folder / "fold_0" / "checkpoint_final.pt").write_bytes(b"x" * 1000)
    # This process's pid with another start time: the pid was reused, the writer is dead.
    reused = _temporary(tmp_path, f"{host}@{pid}@{int(start) + 1}", "b.nii.gz")
    other_host = _temporary(tmp_path, f"othernode@{pid}@1", "c.nii.gz")
    mine = _temporary(tmp_path, owner_tag(), "d.nii.gz")
    unowned = tmp_path / ".e.nii.gz.abcdefgh.tmp.nii.gz"  # older versions' names
    unowned.write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead, folder] + ([reused] if int(start) else []))
    assert other_host.exists()
    assert mine.exists()
    assert unowned.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_a_live_writer_keeps_its_file_until_killed(tmp_path: Path) -> None:
    """A concurrent process in the middle of a write: its temporary survives a cleanup; after
    ``kill -9`` the next cleanup removes it."""
    script = textwrap.dedent(
        f"""
        import time
        from tumorseg.utils.atomic import atomic_path
        with atomic_path({str(tmp_path / "out.json")!r}) as tmp:
            tmp.write_text("half")
            print("writing", flush=True)
            time.sleep(600)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        (temporary,) = tmp_path.glob(".out.json.*.tmp.json")
        assert remove_stale_temporaries(tmp_path) == []
        assert temporary.exists()
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert remove_stale_temporaries(tmp_path) == [temporary]
    assert list(tmp_path.iterdir()) == []
