"""Folders a running winserve owns on disk, and sweeping those a killed winserve left (issue 28).

CSV scoring's uploads and results (``jobs``) and the private copies models load from
(``loaded``) live in folders under the per-user cache. winserve deletes its own when it stops,
but a winserve that was killed (Task Manager, ``kill -9``, a power cut) cannot::

    winserve A (running)                  parent folder                 winserve B (starting)
    ────────────────────                  ─────────────                 ─────────────────────
    claim(parent) ─► mkdtemp ─────────►   run-x1/.owner  (locked by A)
                     lock .owner, held    run-k7/.owner  (lock free:   ◄── sweep(parent): try to
                     until A ends                         its owner        lock each .owner; the
                                                          died)            free ones' folders go;
                                                                           A's lock is held: kept

The marker is a lock, not a pid: the operating system lets go of it when its process ends, however
it ends, and a pid can be reused by an unrelated process. ``flock`` (POSIX) and ``msvcrt.locking``
(Windows) both refuse a second holder even in the same process, so a winserve never sweeps its
own folders either. A folder without a marker (an older winserve's, or one being made this very
moment by another winserve) is left alone, or, for the jobs' folders (``run-…``, which older
versions touched on every upload), deleted once untouched for ``STALE_SECONDS``, as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

MARKER = ".owner"
STALE_SECONDS = 24 * 3600  # a folder with no marker: an older winserve's, touched on each upload


def _lock(handle: IO[bytes]) -> bool:
    """Take the marker's lock without waiting; False when another holder has it."""
    try:
        if sys.platform == "win32":  # (as IS_WINDOWS; spelled so for mypy's platform check)
            import msvcrt

            handle.seek(0)  # the lock is on the first byte, for owner and sweeper alike
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class Scratch:
    """A fresh folder under ``parent`` that this process owns until ``close``."""

    def __init__(self, parent: Path, prefix: str) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self._marker: IO[bytes] | None = (self.path / MARKER).open("w+b")
        if not _lock(self._marker):  # cannot happen on a fresh file
            self.close()
            raise OSError(f"cannot lock {self.path / MARKER}")
        # written once locked: an empty marker is one being made (``_abandoned``); the pid is
        # for a person looking at the folder, the lock is what counts
        self._marker.write(f"winserve pid {os.getpid()}\n".encode())
        self._marker.flush()

    def close(self) -> None:
        """Delete the folder and let go of it."""
        if self._marker is not None:
            self._marker.close()  # closing lets go of the lock (and, on Windows, of the file)
            self._marker = None
        shutil.rmtree(self.path, ignore_errors=True)


def sweep(parent: Path, prefix: str = "", unmarked_after: float | None = None) -> list[Path]:
    """Delete the folders named ``prefix…`` under ``parent`` whose owner has ended, and those
    with no marker untouched for ``unmarked_after`` seconds (None: never); the ones deleted.
    Only winserve's own names: ``parent`` may be a folder the operator chose (``jobs_path``)."""
    swept: list[Path] = []
    try:
        folders = [p for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    except OSError:
        return swept
    for folder in folders:
        if _abandoned(folder, unmarked_after):
            shutil.rmtree(folder, ignore_errors=True)
            swept.append(folder)
    return swept


def _abandoned(folder: Path, unmarked_after: float | None) -> bool:
    marker = folder / MARKER
    try:
        handle = marker.open("r+b")
    except FileNotFoundError:
        if unmarked_after is None:
            return False
        with contextlib.suppress(OSError):
            return time.time() - folder.stat().st_mtime > unmarked_after
        return False
    except OSError:  # Windows: the owner has it open; or not ours to judge
        return False
    with handle:
        if not _lock(handle):
            return False  # its owner runs
        # an empty marker is being made by its owner right now (created, not yet locked)
        return bool(handle.read(1)) or time.time() - os.fstat(handle.fileno()).st_mtime > 60
