"""Starting and following the models: what the registry is asked to load, and when (issue 23).

::

    server.serve ─► Registry.start() ─► start(registry, source, …)
                       source.open()  ─► {name: path}, files refused      (folder.py)
                       registry.listed(found, refused)  every name listed, awaited (readiness)
                       registry.load_later(name, path)  a load thread per name
                       one model: back once its first version is shown (copied, backend started)
    Registry.wait_loaded(timeout) ─► wait_loaded: until no load of any name runs
    Registry.watch() ─► watch: a thread running folder.follow(source, registry, …), which asks
                       registry.known()/found()/load_later()/unload() every watch_seconds

One mode: whatever the operator gave (a folder of models, one file, a factory, the built-in
demo) is a ``Source`` of names, and every name is loaded by ``Registry.load``. A single file is
the folder it lives in, watched with a name filter; a factory and the demo are one item without
a file (not watched). The registry (registry.py) holds the names and their versions; this
module only says when each name is loaded.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

from winserve.models.folder import Followed, Source, follow
from winserve.models.loader import LOAD_GRACE
from winserve.settings import Settings

SHOWN_CHECK = 0.01  # how often start() looks whether one model's first version is shown
LOADED_CHECK = 0.05  # how often wait_loaded() looks whether the loads have ended


class Started(Followed, Protocol):
    """What starting asks of the registry, besides what the watcher asks."""

    def listed(self, found: dict[str, Path | None], refused: dict[str, str]) -> None:
        """Every name found at start listed (and awaited until its first load ends)."""
        ...

    def shown(self) -> bool:
        """Whether every name has a version shown, or no load of it runs."""
        ...

    def busy(self) -> bool:
        """Whether a load of any name runs."""
        ...


def start(models: Started, source: Source, settings: Settings, stop: threading.Event) -> None:
    """Load every model of ``source``, each in a thread of its own, in the background."""
    found, refused = source.open(settings)
    models.listed(found, refused)
    for name, path in found.items():
        models.load_later(name, path)
    if source.many:
        return
    # one model: back once its first version is shown (copied, its backend started), so that
    # the page and /health say "loading" from the first request, as when the server built
    # that backend itself (issue 23)
    end = time.monotonic() + settings.load_timeout + LOAD_GRACE
    while time.monotonic() < end and not stop.is_set():
        if models.shown():
            return
        time.sleep(SHOWN_CHECK)


def wait_loaded(models: Started, timeout: float, stop: threading.Event) -> None:
    """Until every load begun so far has ended (or ``timeout``, or ``stop``)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not stop.is_set():
        if not models.busy():
            return
        time.sleep(LOADED_CHECK)


def watcher(
    models: Followed, source: Source, settings: Settings, stop: threading.Event
) -> threading.Thread | None:
    """The thread that follows ``source``'s files (not started); None when it has none (a
    factory, the demo)."""
    if not source.watched:
        return None
    return threading.Thread(
        target=follow,
        args=(source, models, settings.watch_seconds, stop),
        name="winserve-watch",
        daemon=True,
    )
