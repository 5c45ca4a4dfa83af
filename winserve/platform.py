"""Operating-system specifics, each behind a small function (a no-op where it does not apply)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

IS_WINDOWS = sys.platform == "win32"


def cache_dir() -> Path:
    """The per-user cache folder (demo model, scored files): never needs admin rights."""
    if IS_WINDOWS:
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "winserve" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "winserve"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "winserve"


def data_dir() -> Path:
    """The per-user data folder (the prediction log, issue 26): kept, unlike the cache, which
    a disk cleaner may empty; never needs admin rights."""
    if IS_WINDOWS:
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "winserve" / "Data"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "winserve"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "winserve"


def adopt_child(pid: int) -> None:
    """Tie a model host's life to ours where the OS can (Windows: a kill-on-close Job Object).

    The host also arranges its own death below Python where it can (``die_with_parent``, and
    ``winserve.host.watchdog``); on Windows the job is what kills a host that holds the GIL
    (issue 13) when the web process is killed from Task Manager or ``taskkill /F``.
    """
    if IS_WINDOWS:
        from winserve import winjob

        winjob.assign(pid)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
F_SETSIG = 10  # <fcntl.h>, the same on every Linux architecture


def die_with_parent(sentinel: int) -> list[str]:
    """Have the kernel SIGKILL this process when its parent dies (Linux); the mechanisms armed.

    Both need no Python code to run at the parent's death, so they work while the model holds
    the GIL or the process is stopped (SIGSTOP), where a watchdog thread cannot (issue 13):

    - ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. It fires when the *thread* that spawned this process
      ends, not only the process: a replica's host is spawned by its dispatcher thread, which
      lives as long as the replica.
    - ``sentinel`` (the read end of a pipe whose write end only the parent holds, open until it
      dies) set to raise SIGKILL instead of SIGIO on I/O (``O_ASYNC`` + ``F_SETSIG``): the
      kernel signals when the last writer closes. Independent of threads, and a second way
      where a sandbox ignores the death signal (``shared/reference/platform-notes.md`` §2.2).

    Either arms only for a death still to come; the caller checks that the parent is still
    there afterwards.
    """
    if not sys.platform.startswith("linux"):
        return []
    import ctypes
    import fcntl
    import signal

    armed = []
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            armed.append("pdeathsig")
    except (OSError, AttributeError):
        pass
    try:
        fcntl.fcntl(sentinel, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(sentinel, F_SETSIG, signal.SIGKILL)
        fcntl.fcntl(sentinel, fcntl.F_SETFL, fcntl.fcntl(sentinel, fcntl.F_GETFL) | os.O_ASYNC)
        armed.append("sentinel-sigkill")
    except OSError:
        pass
    return armed
