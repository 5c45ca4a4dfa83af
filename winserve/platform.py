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


def adopt_child(pid: int) -> None:
    """Tie a model host's life to ours where the OS can (Windows: a kill-on-close Job Object).

    Everywhere the host also watches its parent (``winserve.host.watchdog``); this is the belt
    to that pair of braces for parents killed from Task Manager or ``taskkill /F``.
    """
    if IS_WINDOWS:
        from winserve import winjob

        winjob.assign(pid)
