"""New versions the checked swap refused, kept ready for the owner's force (issue 26), until a
newer file, the serving file back, an unload, KEEP_REFUSED_SECONDS or winserve's stop.

::

    Swap._checked (the name's lock held): refused ─► keep(entry, loaded, path, why)
        under the registry's lock: by name in a dict, entry.reason = why; a Timer started
        (stopping already: closed at once, never kept after close() looked)
              │
              ├─► waiting(name)      Swap.load(force): the refused file itself? no second load
              ├─► take(entry)        the owner's force: handed back, its check marked forced;
              │                      Swap._swap serves it
              ├─► discard(entry, why) a newer file loaded, the serving file back, an unload,
              │                      the file gone: its replicas stop, its copy is dropped
              ├─► (the Timer)        nobody forced it within KEEP_REFUSED_SECONDS: same
              └─► close()            winserve stops: handed back for the registry to close
                                     with the other backends, at once

Every change of the dict is under the registry's lock (the one ``Swap`` holds for a swap);
backends are closed outside it, as a close can take seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from winserve.models.loader import Loaded
from winserve.models.slots import Entry

log = logging.getLogger("winserve")

# a refused version's replicas wait this long for the owner's force, then stop (issue 26):
# long enough to look at the disagreeing rows, short enough not to hold its memory all day
KEEP_REFUSED_SECONDS = 3600.0


@dataclass
class Refused:
    """A new version the checked swap refused, kept ready for the owner's force."""

    loaded: Loaded
    path: Path | None
    timer: threading.Timer | None = None


class RefusedVersions:
    """The refused new versions by name, each kept until forced, replaced, unloaded, expired
    or winserve stops (see the module docstring)."""

    def __init__(
        self,
        lock: threading.RLock,
        stop: threading.Event,
        drop_copy: Callable[[Path | None], None],
    ) -> None:
        self._lock = lock  # the registry's
        self._stop = stop
        self._drop_copy = drop_copy  # Loader.drop_copy: a version's private copy goes too
        self._kept: dict[str, Refused] = {}  # by name, under the lock

    def waiting(self, name: str) -> Refused | None:
        """The refused version of ``name`` kept for a force, if any."""
        with self._lock:
            return self._kept.get(name)

    def keep(self, entry: Entry, loaded: Loaded, path: Path | None, why: str) -> bool:
        """Keep ``loaded`` for a force (``why``: the entry's reason, the check's sentence);
        False, and ``loaded`` closed, when winserve is stopping."""
        kept = Refused(loaded, path)
        kept.timer = threading.Timer(KEEP_REFUSED_SECONDS, self._expire, args=(entry, kept))
        kept.timer.daemon = True
        with self._lock:
            # under the lock: close() (after the stop is set) takes what is kept, or it is
            # closed here; never kept after close() looked (its processes would outlive it)
            stopping = self._stop.is_set()
            if not stopping:
                self._kept[entry.name] = kept
                entry.reason = why
        if stopping:
            self._close(kept)
            return False
        kept.timer.start()  # cancelled meanwhile (close, force): it returns at once
        return True

    def take(self, entry: Entry) -> Refused | None:
        """The refused version of ``entry``, no longer kept, its check marked as forced by
        the owner (the caller swaps it in); None when none waits."""
        with self._lock:
            kept = self._kept.pop(entry.name, None)
            if kept is not None and entry.check is not None:
                entry.check = dataclasses.replace(
                    entry.check, swapped=True, forced=True, waiting=False
                )
        if kept is not None and kept.timer is not None:
            kept.timer.cancel()
        return kept

    def discard(self, entry: Entry, why: str) -> None:
        """The refused version of ``entry`` kept for a force, if any, stops (``why``: for
        the console): a newer file, the serving one back, an unload, the file gone."""
        with self._lock:
            kept = self._kept.pop(entry.name, None)
            if kept is not None and entry.check is not None:
                entry.check = dataclasses.replace(entry.check, waiting=False)
        if kept is not None:
            log.info("%s: the refused version stops (%s)", entry.name, why)
            self._close(kept)

    def _expire(self, entry: Entry, kept: Refused) -> None:
        """The owner did not force the refused version in time: its replicas stop."""
        with self._lock:
            if self._kept.get(entry.name) is not kept:
                return
            del self._kept[entry.name]
            if entry.check is not None:
                entry.check = dataclasses.replace(entry.check, waiting=False)
        log.info(
            "%s: the refused version stops (not swapped in within %.0f minutes; a load through "
            "POST /v2/repository/models/%s/load loads and serves the file)",
            entry.name,
            KEEP_REFUSED_SECONDS / 60,
            entry.name,
        )
        self._close(kept)

    def _close(self, kept: Refused) -> None:
        if kept.timer is not None:
            kept.timer.cancel()
        kept.loaded.backend.close()
        self._drop_copy(kept.loaded.folder)

    def close(self) -> list[Loaded]:
        """At winserve's stop: the refused versions kept, for the caller to close (with the
        other backends, at once) and drop their copies."""
        with self._lock:
            kept, self._kept = list(self._kept.values()), {}
        for one in kept:
            if one.timer is not None:
                one.timer.cancel()
        return [one.loaded for one in kept]
