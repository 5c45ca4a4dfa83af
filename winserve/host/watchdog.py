"""Model-host process hygiene: exit when the parent dies, leave Ctrl+C to the parent.

Runs as the manager's ``initializer`` inside the spawned process. The parent's sentinel becomes
ready when the parent is gone, however it died (SIGKILL, Task Manager), so the host never
outlives the web process (issue 3: no orphans).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

ORPHAN_EXIT_CODE = 3


def _exit_when_parent_dies(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(ORPHAN_EXIT_CODE)


def start() -> None:
    """Initializer for a spawned model host."""
    # The manager already ignores SIGINT (bpo-36368); SIGTERM to the whole group must not
    # kill the host before the parent has finished its in-flight requests either.
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    threading.Thread(
        target=_exit_when_parent_dies, args=(parent,), name="parent-watchdog", daemon=True
    ).start()
