"""Model-host process hygiene: die with the parent, leave Ctrl+C to the parent.

Runs as the manager's ``initializer`` inside the spawned process. The host must never outlive
the web process (issue 3), however the web process died (SIGKILL, Task Manager) and whatever
the model is doing: a model can hold the GIL for hours (a C loop, a regular expression
backtracking) or the host can be frozen (SIGSTOP), and then no Python code of the host runs
(issue 13). So the death is arranged below Python first:

- Linux: the kernel SIGKILLs the host when the parent dies (``platform.die_with_parent``:
  ``PR_SET_PDEATHSIG`` and a SIGKILL raised by the parent's sentinel pipe closing);
- Windows: the web process puts the host in its kill-on-close Job Object (``winserve.winjob``).

A thread waiting on the parent's sentinel stays as the portable fallback (macOS; on Windows
the moment between the spawn and the job assignment).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import sys
import threading

from winserve import platform

ORPHAN_EXIT_CODE = 3


def _exit_when_parent_dies(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(ORPHAN_EXIT_CODE)


def _parent_gone(parent: multiprocessing.process.BaseProcess) -> bool:
    if sys.platform == "win32":
        return False  # the thread below and the Job Object cover Windows
    # The sentinel reads as ready once the parent is gone; a death before the kernel
    # mechanisms were armed would otherwise go unnoticed by them.
    return os.getppid() != parent.pid or bool(select.select([parent.sentinel], [], [], 0)[0])


def start() -> None:
    """Initializer for a spawned model host."""
    # The manager already ignores SIGINT (bpo-36368); SIGTERM to the whole group must not
    # kill the host before the parent has finished its in-flight requests either.
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    platform.die_with_parent(parent.sentinel)
    if _parent_gone(parent):
        os._exit(ORPHAN_EXIT_CODE)
    threading.Thread(
        target=_exit_when_parent_dies, args=(parent,), name="parent-watchdog", daemon=True
    ).start()
