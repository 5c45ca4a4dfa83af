"""One name's next version: loaded by the Loader, swapped in once it answers, or the old one
kept and why said (issues 15, 22, 23).

::

    Registry.load(name, path) ─► (under the name's lock) Swap.load(entry, path)
      Loader.load(…) ─► Loaded    ─► _swap: under the registry's lock, a new Slot is the entry's
                                     current one (new requests go there at once); the old one
                                     is "draining" ─► drain(entry, old) (drain.py)
                     ─► NotLoaded ─► same file as served: nothing to do; written to while it
                                     was copied: tried again (FIRST_TRIES) for a name with no
                                     version yet; else entry.reason, the old version serving
      one model (not a folder): its first version is its current slot as soon as its backend
      starts (shown), so the bare routes and the page show that backend's own state while it
      loads, and why it failed (issue 22)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from winserve import card as cards
from winserve.backends.base import Backend
from winserve.models.loader import Loaded, Loader, NotLoaded
from winserve.models.slots import Entry, Slot, new_slot
from winserve.predlog import events
from winserve.settings import Settings

log = logging.getLogger("winserve")

FIRST_TRIES = 5  # copies of a file that keeps changing, before a name's first version gives up


class Swap:
    """Loads a name's next version and swaps it in (under the registry's lock); the version it
    replaces is handed to ``drain``."""

    def __init__(
        self,
        settings: Settings,
        loader: Loader,
        lock: threading.RLock,
        stop: threading.Event,
        *,
        many: bool,
        item: str,
        private: bool,
        drain: Callable[[Entry, Slot], None],
    ) -> None:
        self._settings = settings
        self._loader = loader
        self._lock = lock
        self._stop = stop
        self._many = many  # a folder of models (no version shown before it answers)
        self._item = item  # the factory's or the demo's name, for the log
        self._private = private  # each version loads from a private copy (registry.py)
        self._drain = drain

    def load(self, entry: Entry, path: Path | None) -> bool:
        """Load ``path`` as the next version of ``entry`` (the caller holds its name's lock):
        swapped in once its sample prediction passed, else the reason kept; False then."""
        serving = entry.current.sha256 if entry.current is not None else None

        def shown(backend: Backend, card: cards.ModelCard, folder: Path | None) -> bool:
            return self._first_shown(entry, path, backend, card, folder)

        for _ in range(FIRST_TRIES):
            outcome = self._loader.load(
                entry.name, path, private=self._private, serving=serving, shown=shown
            )
            # a file written to while it was copied is tried again once it stays the same:
            # by the watcher for a version that serves, here for a name that has none yet
            # (one file at start used to be loaded from itself then)
            if not isinstance(outcome, NotLoaded) or not outcome.changing or serving is not None:
                break
            if self._stop.wait(self._settings.watch_seconds):
                break
        entry.tried = outcome.tried
        if isinstance(outcome, Loaded):
            return self._swap(entry, path, outcome)
        if outcome.same:
            entry.reason = ""  # the file is the one serving (again)
            return True
        if outcome.changing and path is not None and entry.current is None:
            return self._failed(entry, f"{path.name} kept changing while it was read")
        if outcome.kept:  # one model's first version stays shown and says why itself
            entry.failed = outcome.reason
            return False
        if not outcome.reason:
            return False
        return self._failed(entry, outcome.reason)

    def _first_shown(
        self,
        entry: Entry,
        path: Path | None,
        backend: Backend,
        card: cards.ModelCard,
        folder: Path | None,
    ) -> bool:
        """One model (not a folder): its first version is its current slot at once, so that
        the bare routes and the page show its backend's own state while it loads, and why it
        failed, as they always have (see the module docstring)."""
        if self._many:
            return False
        with self._lock:
            if entry.current is not None:
                return False
            entry.current = self._new_slot(entry, path, backend, card, folder)
            return True

    def _new_slot(
        self,
        entry: Entry,
        path: Path | None,
        backend: Backend,
        card: cards.ModelCard,
        folder: Path | None,
    ) -> Slot:
        """The next version of ``entry`` (under the lock)."""
        entry.versions += 1
        return new_slot(
            self._settings,
            entry.name,
            entry.versions,
            source=path,
            backend=backend,
            card=card,
            copy=folder,
        )

    def _swap(self, entry: Entry, path: Path | None, new: Loaded) -> bool:
        """The new version serves from now on; the one it replaces drains. (One model's first
        version, shown while it loaded, is only marked loaded.)"""
        loaded_at = new.info.loaded_at or _now()
        with self._lock:
            old = entry.current
            if old is not None and old.backend is new.backend:  # shown already
                old.sha256, old.loaded_at = new.info.sha256, loaded_at
                _loaded(entry.name, old.version, new)
                return True
            stopping = self._stop.is_set()
            if not stopping:
                slot = self._new_slot(entry, path, new.backend, new.card, new.folder)
                slot.sha256, slot.loaded_at = new.info.sha256, loaded_at
                entry.current, entry.reason = slot, ""
                if old is not None:
                    old.state = "draining"
                    entry.older.append(old)
        if stopping:
            new.backend.close()
            self._loader.drop_copy(new.folder)
            return False
        shown = path.name if path is not None else self._item
        _loaded(entry.name, slot.version, new, shown)
        if old is None:
            log.info(
                "%s: version %d serving (%s, %.1f s)", entry.name, slot.version, shown, new.seconds
            )
            return True
        log.warning(
            "%s: version %d serving (%s changed; loaded in %.1f s); version %d drains",
            entry.name,
            slot.version,
            shown,
            new.seconds,
            old.version,
        )
        self._drain(entry, old)
        return True

    def _failed(self, entry: Entry, reason: str) -> bool:
        keeps = (
            f"; version {entry.current.version} keeps serving" if entry.current is not None else ""
        )
        entry.reason = reason
        log.error("%s: not loaded: %s%s", entry.name, reason, keeps)
        events.note("load_failed", entry.name, detail=reason + keeps)  # the timeline (issue 26)
        return False


def _loaded(name: str, version: int, new: Loaded, shown: str = "") -> None:
    """The monitor page's timeline: version N of ``name`` serves (issue 26)."""
    said = f"{shown}, " if shown else ""
    events.note(
        "loaded",
        name,
        version,
        sha256=new.info.sha256,
        detail=f"{said}loaded in {new.seconds:.1f} s",
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
