"""The models served, by name: a registry of slots, each slot one loaded version (issues 15, 23).

::

    request thread                    Registry                         startup.py / folder.py
    ──────────────                    ────────                         ──────────────────────
    acquire(name) ─► the entry's current Slot, in-flight +1     at start, and every watch_seconds
      (one snapshot per request:        (under the lock)          after: a file unchanged for one
       ModelInfo, backend, card, jobs)                            interval and different from the
    release(slot) at the request's end ─► in-flight -1            version served ─► load_later()
                                                                           │
    load(name, path), one at a time per name: swap.py has the Loader (loader.py) copy the file
      to a private folder and start a new backend on the copy; once its sample prediction
      passed, under the lock, the entry's current slot is the new one (new requests go there
      at once) and the old one drains (drain.py): once its in-flight requests and CSV jobs are
      done, its replicas stop. A load that fails keeps the old one.

When each name is loaded (at start, when its file changes) is ``startup.py``'s and
``folder.py``'s; ``start``, ``wait_loaded`` and ``watch`` here hand over to them. What differs
between one model and a folder is shown, not loaded (swap.py): with one model, its first
version is its current slot from the moment its backend starts, so the bare routes and the
page show that backend's own state while it loads; in a folder, a name without a version
answers 503 and the list says why.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from winserve import card as cards
from winserve.backends.base import Backend
from winserve.errors import ModelUnavailable, NotFound
from winserve.load_progress import LoadProgress
from winserve.model_file import Stamp
from winserve.models import drain, startup
from winserve.models.drain import KEEP_OLD_VERSIONS
from winserve.models.folder import Source, discover
from winserve.models.loader import Loader, MakeBackend
from winserve.models.slots import Entry, Slot, new_slot
from winserve.models.status import ModelStatus, RegistrySnapshot, model_status
from winserve.models.swap import Swap
from winserve.predlog import events
from winserve.service import failed_error
from winserve.settings import Settings

__all__ = ["KEEP_OLD_VERSIONS", "Entry", "MakeBackend", "Registry", "Slot", "discover"]

log = logging.getLogger("winserve")

FIRST_TRIES = 5  # copies of a file that keeps changing, before a name's first version gives up


class Registry:
    """The names served and their versions: ``acquire``/``release`` for requests, ``load`` (a
    new version, swapped in once it answers), drain, ``unload``, ``close``; ``status`` for the
    pages. Thread-safe: one lock for the entries, one more per name for its loads."""

    def __init__(self, settings: Settings, make_backend: MakeBackend) -> None:
        self._settings = settings
        self._source = Source.of(settings)
        self._loader = Loader(settings, make_backend)
        self._lock = threading.RLock()  # re-entered: a 404's message lists the names
        self._entries: dict[str, Entry] = {}
        self._refused: dict[str, str] = {}  # files in the folder served under no name
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.copies = self._loader.copies
        # one lock per name: a load, a reload and an unload of one model run one at a time, so
        # that none starts a model process that another makes unlisted (issue 28 item 8)
        self._name_locks: dict[str, threading.Lock] = {}
        # read once: a request's default name must not ask the source again (issue 23: a
        # POST /predict went through folder.py for it)
        self._many = self._source.many
        self.folder = self._source.folder if self._many else None
        # Each version loads from a private copy (loader.py), but for one file with --no-watch:
        # its hosts load the operator's file itself, so a host restarted after the file
        # changed refuses the new one and says so (tests/test_chaos.py), as it always did
        self._private = settings.watch or self._many
        # the models found at start whose first load has not ended yet: until it is empty the
        # server is not ready (issue 23: strict readiness, as Triton's and MLServer's)
        self._awaiting: set[str] = set()
        self._swap = Swap(
            settings,
            self._loader,
            self._lock,
            self._stop,
            many=self._many,
            item=self._source.item,
            private=self._private,
            drain=self._drain_in_background,
        )

    def sweep(self) -> None:
        """At start: delete what a killed winserve left (``Loader.sweep``)."""
        self._loader.sweep()

    def _name_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    # -- what the web side asks ---------------------------------------------------------------

    @property
    def is_folder(self) -> bool:
        """A folder of models (each at /models/<name>/…), not one model."""
        return self._many

    def names(self) -> list[str]:
        with self._lock:
            return sorted(n for n, e in self._entries.items() if not e.removed)

    def entries(self) -> list[Entry]:
        with self._lock:
            return [e for _, e in sorted(self._entries.items()) if not e.removed]

    @property
    def starting(self) -> bool:
        """True until every model found at start has loaded or failed once."""
        with self._lock:
            return bool(self._awaiting)

    def refused(self) -> dict[str, str]:
        with self._lock:
            return dict(self._refused)

    def status(self) -> tuple[ModelStatus, ...]:
        """Every model served, by name, as frozen snapshots (``winserve.models.status``): what
        the pages and health answers render instead of the live entries (issue 23)."""
        with self._lock:
            held = [(e, e.slots()) for e in self.entries()]
            counts = {id(s): s.inflight for _, slots in held for s in slots}
        return tuple(model_status(entry, slots, counts) for entry, slots in held)

    def progress(self, name: str) -> LoadProgress | None:
        """How far the load of ``name`` running now has gone (None: none runs; issue 24)."""
        return self._loader.progress(name)

    def snapshot(self) -> RegistrySnapshot:
        """The models' status, whether the server is still starting, the files refused, and
        the default model, taken together."""
        starting = self.starting
        return RegistrySnapshot(
            models=self.status(),
            starting=starting,
            refused=tuple(sorted(self.refused().items())),
            default_name=self.default_name(),
        )

    def entry(self, name: str) -> Entry:
        with self._lock:
            found = self._entries.get(name)
        if found is None or found.removed:
            raise NotFound(self._no_such(name))
        return found

    def default_name(self) -> str | None:
        """The model the bare routes answer for: the only one, or the setting default_model."""
        if not self.is_folder:
            return next(iter(self._entries), None)
        if self._settings.default_model:
            return self._settings.default_model
        names = self.names()
        return names[0] if len(names) == 1 else None

    def _no_such(self, name: str | None) -> str:
        names = ", ".join(self.names()) or "none yet"
        if name is None:
            return (
                f"this folder serves several models ({names}): use /models/<name>/…, or name "
                "the one these routes answer for (setting: default_model)"
            )
        return f"no model named {name!r} is served here (models: {names})"

    def acquire(self, name: str | None = None) -> Slot:
        """The version serving ``name`` (None: the default model), counted in flight until
        ``release``: it is not stopped under the request."""
        with self._lock:
            if name is None and not self._many:
                # one model file: its only entry, found without asking default_name (issue 29:
                # the bare routes' every request made two calls for it)
                entry = next(iter(self._entries.values()), None)
                name = entry.name if entry is not None else None
            else:
                name = self.default_name() if name is None else name
                entry = self._entries.get(name) if name is not None else None
            if entry is None or entry.removed:
                raise NotFound(self._no_such(name))
            slot = entry.current
            if slot is None:
                if entry.reason and not entry.loading:  # failed, not loading (issue 22)
                    raise failed_error(entry.reason)
                reason = f": {entry.reason}" if entry.reason else ""
                progress = self._loader.progress(entry.name) if entry.loading else None
                if progress is not None:  # how far its first load has gone (issue 24)
                    reason = f" yet (loading: {progress.text()})"
                raise ModelUnavailable(f"{entry.name} is not loaded{reason}", retry_after=2)
            slot.inflight += 1
            return slot

    def release(self, slot: Slot) -> None:
        with self._lock:
            slot.inflight -= 1

    def acquire_version(self, name: str, version: str) -> Slot:
        """Version ``version`` of ``name`` (the one serving, or one still draining), counted
        in flight until ``release``."""
        entry = self.entry(name)
        with self._lock:
            for slot in [entry.current, *entry.older]:
                if slot is not None and str(slot.version) == version and slot.state != "stopped":
                    slot.inflight += 1
                    return slot
            served = [str(s.version) for s in self.served_versions(entry)]
        raise NotFound(
            f"model {name!r} has no version {version!r} being served; it has "
            + (", ".join(repr(v) for v in served) or "none")
        )

    @staticmethod
    def served_versions(entry: Entry) -> list[Slot]:
        """The versions of ``entry`` that answer: the one serving, then those draining."""
        return entry.served()

    def find_job_slot(self, name: str, job_id: str) -> Slot:
        """The version of ``name`` that holds the CSV job ``job_id`` (it may have drained)."""
        entry = self.entry(name)
        with self._lock:
            slots = entry.slots()
        for slot in slots:
            with contextlib.suppress(NotFound):
                slot.jobs.get(job_id)
                return slot
        raise NotFound("no such scoring job; results are kept for a limited time")

    def _spawn(self, thread: threading.Thread) -> None:
        """Start ``thread``, keeping the live ones only (a server may reload for months)."""
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    # -- starting and watching (when each name loads: startup.py, folder.py) ----------------

    def start(self) -> None:
        """Load every model of the source (a folder's, the one file, a factory or the demo),
        each in a thread of its own, in the background (``startup.start``)."""
        startup.start(self, self._source, self._settings, self._stop)

    def wait_loaded(self, timeout: float) -> None:
        """Until every load begun so far has ended (or ``timeout``)."""
        startup.wait_loaded(self, timeout, self._stop)

    def watch(self) -> None:
        """Follow the source's files from now on (a factory and the demo have none)."""
        thread = startup.watcher(self, self._source, self._settings, self._stop)
        if thread is not None:
            self._spawn(thread)

    def adopt(self, backend: Backend, card: cards.ModelCard | None = None) -> Slot:
        """A backend its caller built and started (tests, ``create_app(settings, backend)``) as
        version 1 of the one model, under its own name once it has loaded."""
        s = self._settings
        name = s.model.stem if s.model is not None else self._source.item
        with contextlib.suppress(ModelUnavailable):  # loaded already (tests): its own name
            name = backend.describe().name
        card = card if card is not None else cards.load(s.model, demo=s.is_demo)
        slot = new_slot(s, name, 1, source=s.model, backend=backend, card=card)
        with self._lock:
            self._entries[name] = Entry(name, s.model, current=slot, versions=1)
        return slot

    def listed(self, found: dict[str, Path | None], refused: dict[str, str]) -> None:
        """The names found at start, listed and awaited until their first load ends."""
        with self._lock:
            self._refused = refused
            self._awaiting = set(found)
            for name, path in found.items():
                self._entries[name] = Entry(name, path)

    def shown(self) -> bool:
        with self._lock:
            return all(e.current is not None or not e.loading for e in self._entries.values())

    def busy(self) -> bool:
        with self._lock:
            return any(e.loading for e in self._entries.values())

    def known(self) -> dict[str, tuple[Stamp | None, bool, bool]]:
        with self._lock:
            return {n: (e.tried, e.loading, e.removed) for n, e in self._entries.items()}

    def found(self, refused: dict[str, str]) -> None:
        with self._lock:
            self._refused = refused

    def load_later(self, name: str, path: Path | None) -> None:
        """Load ``path`` as ``name`` in a thread of its own (a new name is listed at once)."""
        with self._lock:
            entry = self._entries.setdefault(name, Entry(name, path))
            if entry.loading:
                return
            entry.loading = True
        thread = threading.Thread(
            target=self.load, args=(name, path), name=f"winserve-load-{name}", daemon=True
        )
        self._spawn(thread)

    # -- loading ------------------------------------------------------------------------------

    def source_of(self, name: str) -> tuple[bool, Path | None]:
        """Whether the source has a model named ``name`` now, and its file (None: the factory
        or the demo): what a load asked for by name loads, also after an unload of the only
        model (its entry is gone, its file is not)."""
        found = self._source.find()[0]
        return name in found, found.get(name)

    def load(self, name: str, path: Path | None, force: bool = False) -> bool:
        """Load ``path`` (None: the factory or the demo) as a new version of ``name``; it serves
        once its sample prediction passed and the checked swap allows it (``force``: whatever
        the check says, the owner's load; issue 26), and the version it replaces drains. False
        (and the reason kept) on failure."""
        with self._lock:
            entry = self._entries.setdefault(name, Entry(name, path))
            entry.pending += 1
            entry.loading = True
        try:
            # one at a time per name (issue 28 item 8): eight loads at once used to start eight
            # model processes; after the first, the others find its file serving already
            with self._name_lock(name):
                with self._lock:
                    entry.removed, entry.path = False, path
                return self._swap.load(entry, path, force)
        finally:
            with self._lock:
                entry.pending -= 1
                entry.loading = entry.pending > 0
                self._awaiting.discard(name)

    def force_swap(self, name: str) -> str:
        """The new version of ``name`` the checked swap refused serves now (the owner's word,
        issue 26): "" once it does, else why not."""
        entry = self.entry(name)
        with self._name_lock(name):
            return self._swap.force(entry)

    # -- draining (drain.py) and unloading --------------------------------------------------

    def _drain_in_background(self, entry: Entry, old: Slot) -> None:
        thread = threading.Thread(
            target=drain.drain,
            args=(entry, old, self._lock, self._stop, self._loader.drop_copy),
            name=f"winserve-drain-{entry.name}-{old.version}",
            daemon=True,
        )
        self._spawn(thread)

    def unload(self, name: str, gone: bool = False) -> None:
        """``name`` answers 404 from now on; its version stops once its requests are done.
        An unload asked for during a load of that name waits for it (issue 28 item 8: the
        version that load started went on running, listed nowhere). ``gone``: the file left
        the folder, so it is loaded again when it comes back, whatever its time stamp (issue
        28 item 5: a file put back as it was, by a rename or ``cp -p``, was never served
        again); an unload asked for keeps the file unloaded until it changes."""
        with self._name_lock(name), self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.removed:
                raise NotFound(self._no_such(name))
            entry.removed = True
            if gone:
                entry.tried = None
            old, entry.current = entry.current, None
            if old is not None:
                old.state = "draining"
                entry.older.append(old)
        log.warning("%s: unloaded", name)
        self._swap.discard(entry, "unloaded")  # a refused new version kept for a force (#26)
        why = "its file left the folder" if gone else "asked for"
        events.note("unloaded", name, old.version if old else None, detail=why)  # issue 26
        if old is not None:
            self._drain_in_background(entry, old)

    def file_gone(self, name: str) -> None:
        """The one file served left its folder: its version keeps serving what it loaded (a
        folder's file would be unloaded), and what was said of a newer file that did not load
        no longer holds (issue 23, a new user's finding): the reason says the file is gone, and
        a file put back is loaded again, whatever its time stamp."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.removed or entry.path is None:
                return
            entry.tried = None
            entry.reason = f"{entry.path.name} is not on disk any more"
        self._swap.discard(entry, "its file is not on disk any more")  # issue 26

    # -- stopping -----------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        starting = self._loader.close()
        refused = self._swap.close()  # new versions the checked swap kept for a force
        starting += [r.backend for r in refused]
        with self._lock:
            slots = [
                s for e in self._entries.values() for s in [e.current, *e.older] if s is not None
            ]
        drain.close_all(slots, starting, self._loader.drop_copy)
        for loaded in refused:
            self._loader.drop_copy(loaded.folder)
