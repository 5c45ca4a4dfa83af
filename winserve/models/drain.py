"""A version's end: drained once nothing runs on it, then its replicas stop and its private
copy goes; every version at once when winserve stops (issues 15, 23).

::

    swap.Swap._swap / Registry.unload ─► old.state = "draining", entry.older += old
      drain thread: drain(entry, old, …) every DRAIN_CHECK, under the registry's lock:
        no request in flight and no CSV job running ─► old.state = "stopped"
        ─► old.backend.close(), its copy dropped; stopped versions beyond KEEP_OLD_VERSIONS
           forgotten, their CSV results with them (the newest stay for the jobs page)
    Registry.close ─► close_all(slots, starting, …): every backend closed at once (a thread
      each, up to 10 s), then each version's jobs and copy
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from winserve.backends.base import Backend
from winserve.models.slots import Entry, Slot

log = logging.getLogger("winserve")

KEEP_OLD_VERSIONS = 3  # drained versions kept for their CSV results (the jobs page, downloads)
DRAIN_CHECK = 0.05
CLOSE_SECONDS = 10  # each backend's close, all at once, before the jobs and copies go

DropCopy = Callable[[Path | None], None]


def drain(
    entry: Entry,
    old: Slot,
    lock: AbstractContextManager[Any],
    stop: threading.Event,
    drop_copy: DropCopy,
) -> None:
    """Once nothing runs on ``old`` (requests, CSV jobs), its replicas stop."""
    while not stop.is_set():
        with lock:
            idle = old.inflight <= 0 and not old.jobs.busy()
            if idle:
                old.state = "stopped"
                break
        time.sleep(DRAIN_CHECK)
    old.backend.close()
    drop_copy(old.copy)
    with lock:
        stopped = [s for s in entry.older if s.state == "stopped"]
        for extra in stopped[:-KEEP_OLD_VERSIONS]:
            entry.older.remove(extra)
            extra.jobs.close()
    log.info("%s: version %d stopped", entry.name, old.version)


def close_all(slots: list[Slot], starting: Iterable[Backend], drop_copy: DropCopy) -> None:
    """Every version's backend and the ones still starting closed at once, then each
    version's CSV jobs and private copy."""
    backends = {id(b): b for b in [*(s.backend for s in slots), *starting]}
    closers = [
        threading.Thread(target=b.close, name="winserve-close", daemon=True)
        for b in backends.values()
    ]
    for thread in closers:
        thread.start()
    for thread in closers:
        thread.join(timeout=CLOSE_SECONDS)
    for slot in slots:
        slot.jobs.close()
        drop_copy(slot.copy)
