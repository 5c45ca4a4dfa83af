"""Folders owned by a running process, marked by a held lock (winserve/scratch.py, issue 28):
a sweep deletes a dead owner's, never a live one's (another process's or its own)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, wait_until
from winserve import scratch

pytestmark = pytest.mark.timeout(60)

OWNER = """
import sys, time
from pathlib import Path
from winserve.scratch import Scratch
owned = Scratch(Path(sys.argv[1]), "run-")
print(owned.path, flush=True)
time.sleep(120)
"""


def test_a_live_owners_folder_is_kept_and_a_dead_ones_swept(tmp_path: Path) -> None:
    own = scratch.Scratch(tmp_path, "run-")
    other = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        theirs = Path(other.stdout.readline().strip())
        assert theirs.is_dir() and (theirs / scratch.MARKER).read_text().startswith("winserve pid")
        assert scratch.sweep(tmp_path, "run-") == []  # both owners run (one is this process)
        assert own.path.is_dir() and theirs.is_dir()
        other.kill()
        other.wait(10)
        assert scratch.sweep(tmp_path, "run-") == [theirs]
        assert not theirs.exists() and own.path.is_dir()
    finally:
        if other.poll() is None:
            other.kill()
            other.wait(10)
        if other.stdout is not None:
            other.stdout.close()
        own.close()
    assert not own.path.exists()


def test_folders_without_a_marker_and_markers_being_made(tmp_path: Path) -> None:
    old = time.time() - 2 * 86400
    unmarked = tmp_path / "run-old"
    unmarked.mkdir()
    os.utime(unmarked, (old, old))
    operators = tmp_path / "reports"  # not a name winserve makes: never touched
    operators.mkdir()
    os.utime(operators, (old, old))
    being_made = tmp_path / "run-new"
    being_made.mkdir()
    (being_made / scratch.MARKER).touch()  # created, not yet locked nor written by its owner
    assert scratch.sweep(tmp_path, "run-") == []  # unmarked folders: kept unless asked
    assert scratch.sweep(tmp_path, "run-", scratch.STALE_SECONDS) == [unmarked]
    assert operators.is_dir() and being_made.is_dir()
    os.utime(being_made / scratch.MARKER, (old, old))  # an empty marker left by a crash
    wait_until(lambda: scratch.sweep(tmp_path, "run-") == [being_made], 5)
