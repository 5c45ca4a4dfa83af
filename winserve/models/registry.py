"""The models served, by name: a registry of slots, each slot one loaded version (issues 15, 23).

::

    request thread                    Registry                         watcher thread (folder.py)
    ──────────────                    ────────                         ──────────────
    acquire(name) ─► the entry's current Slot, in-flight +1     every watch_seconds: a file
      (one snapshot per request:        (under the lock)          unchanged for one interval and
       ModelInfo, backend, card, jobs)                            different from the version
    release(slot) at the request's end ─► in-flight -1            served ─► load_later()
                                                                           │
    load(name, path): the Loader (loader.py) copies the file to a private folder and starts a
      new backend on the copy; once its sample prediction passed, under the lock, the entry's
      current slot is the new one (new requests go there at once) and the old one drains:
      once its in-flight requests and CSV jobs are done, its replicas stop. A load that fails
      keeps the old one.

One mode (issue 23): whatever the operator gave (a folder of models, one file, a factory, the
built-in demo) is a ``Source`` (folder.py) of names, and every name is loaded by ``load``. A
single file is the folder it lives in, watched with a name filter; a factory and the demo are
one item without a file (not watched). What differs is shown, not loaded: with one model,
its first version is its current slot from the moment its backend starts, so the bare routes
and the page show that backend's own state while it loads, and why it failed when its sample
prediction failed (issue 22); in a folder, a name without a version answers 503 and the list
says why.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from winserve import card as cards
from winserve.backends.base import Backend, Health
from winserve.errors import ModelLoadError, ModelUnavailable, NotFound
from winserve.model_file import Stamp, sha256_of, stamp
from winserve.model_info import ModelInfo
from winserve.models.folder import Source, discover, follow, ignored_settings_files, importable
from winserve.models.loader import LOAD_GRACE, Loader, MakeBackend, model_spec
from winserve.models.status import ModelStatus, RegistrySnapshot, VersionInfo
from winserve.scoring.jobs import JobManager
from winserve.service import Service, failed_error
from winserve.settings import Settings

__all__ = ["KEEP_OLD_VERSIONS", "Entry", "MakeBackend", "Registry", "Slot", "discover"]

log = logging.getLogger("winserve")

KEEP_OLD_VERSIONS = 3  # drained versions kept for their CSV results (the jobs page, downloads)
DRAIN_CHECK = 0.05


@dataclass(eq=False)
class Slot:
    """One loaded version of one model: what a request uses from start to end."""

    name: str
    version: int
    source: Path | None  # the operator's file (not the private copy); None: a factory, the demo
    backend: Backend
    service: Service
    card: cards.ModelCard
    jobs: JobManager
    sha256: str = ""
    loaded_at: str = ""  # "" until its sample prediction passed
    copy: Path | None = None  # the private folder this version loaded from
    state: str = "serving"  # serving | draining | stopped
    inflight: int = 0

    def info(self) -> ModelInfo:
        return self.service.info()

    def health(self) -> Health:
        return self.backend.health()


@dataclass(eq=False)
class Entry:
    """A name, with the version serving it and the older ones still draining."""

    name: str
    path: Path | None
    current: Slot | None = None
    older: list[Slot] = field(default_factory=list)
    reason: str = ""  # why the file on disk is not what serves (a failed load); "" else
    versions: int = 0
    tried: Stamp | None = None  # the file's stamp when its last load began
    loading: bool = False
    pending: int = 0  # loads asked for and not ended (running, or waiting for the name's lock)
    removed: bool = False


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
        self.folder = self._source.folder if self._source.many else None
        # Each version loads from a private copy (loader.py), but for one file with --no-watch:
        # its hosts load the operator's file itself, so a host restarted after the file
        # changed refuses the new one and says so (tests/test_chaos.py), as it always did
        self._private = settings.watch or self._source.many
        # the models found at start whose first load has not ended yet: until it is empty the
        # server is not ready (issue 23: strict readiness, as Triton's and MLServer's)
        self._awaiting: set[str] = set()

    def sweep(self) -> None:
        """At start: delete what a killed winserve left (its CSV jobs' files and its private
        model copies; a running winserve's are kept, see ``scratch``)."""
        swept, parents = self._loader.sweep()
        if swept:
            log.info(
                "deleted %d folder(s) a stopped winserve left in %s",
                len(swept),
                " and ".join(str(p) for p in parents),
            )

    def _name_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    # -- what the web side asks ---------------------------------------------------------------

    @property
    def is_folder(self) -> bool:
        """A folder of models (each at /models/<name>/…), not one model."""
        return self._source.many

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
            held = [
                (e, [s for s in [e.current, *reversed(e.older)] if s is not None])
                for e in self.entries()
            ]
            counts = {id(s): s.inflight for _, slots in held for s in slots}
        # health() outside the lock: a backend may take its own locks (the pool's condition)
        found = []
        for entry, slots in held:
            versions = tuple(_version_info(s, counts[id(s)]) for s in slots)
            reason = entry.reason
            first = versions[0] if versions else None
            if not reason and first is not None and not first.loaded:
                reason = _unwrapped(slots[0], first.health.reason)  # one model's failed first
            found.append(
                ModelStatus(
                    name=entry.name,
                    path=str(entry.path) if entry.path is not None else "",
                    loading=entry.loading,
                    reason=reason,
                    versions=versions,
                )
            )
        return tuple(found)

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
        name = self.default_name() if name is None else name
        with self._lock:
            entry = self._entries.get(name) if name is not None else None
            if entry is None or entry.removed:
                raise NotFound(self._no_such(name if name is not None else None))
            slot = entry.current
            if slot is None:
                if entry.reason and not entry.loading:  # failed, not loading (issue 22)
                    raise failed_error(entry.reason)
                reason = f": {entry.reason}" if entry.reason else ""
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
        found = [entry.current] if entry.current is not None else []
        return found + [s for s in reversed(entry.older) if s.state == "draining"]

    def find_job_slot(self, name: str, job_id: str) -> Slot:
        """The version of ``name`` that holds the CSV job ``job_id`` (it may have drained)."""
        entry = self.entry(name)
        with self._lock:
            slots = [s for s in [entry.current, *reversed(entry.older)] if s is not None]
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

    # -- starting -----------------------------------------------------------------------------

    def start(self) -> None:
        """Load every model of the source (a folder's, the one file, a factory or the demo),
        each in a thread of its own, in the background."""
        source = self._source
        if source.folder is not None:
            importable(source.folder)
        found, refused = source.find()
        with self._lock:
            self._refused = refused
            self._awaiting = set(found)
            for name, path in found.items():
                self._entries[name] = Entry(name, path)
        for reason in refused.values():
            log.warning("%s", reason)
        if source.many and source.folder is not None:
            for ignored in ignored_settings_files(source.folder, self._settings.config, Path.cwd()):
                log.warning("%s", ignored)
        for name, path in found.items():
            self._load_in_background(name, path)
        if not source.many:
            # one model: back once its first version is shown (copied, its backend started),
            # so that the page and /health say "loading" from the first request, as when
            # the server built that backend itself (issue 23)
            end = time.monotonic() + self._settings.load_timeout + LOAD_GRACE
            while time.monotonic() < end and not self._stop.is_set():
                with self._lock:
                    if all(e.current is not None or not e.loading for e in self._entries.values()):
                        return
                time.sleep(0.01)

    def adopt(self, backend: Backend, card: cards.ModelCard | None = None) -> Slot:
        """A backend its caller built and started (tests, ``create_app(settings, backend)``) as
        version 1 of the one model, under its own name once it has loaded."""
        s = self._settings
        name = s.model.stem if s.model is not None else self._source.item
        with contextlib.suppress(ModelUnavailable):  # loaded already (tests): its own name
            name = backend.describe().name
        service = self._service(backend)
        slot = Slot(
            name=name,
            version=1,
            source=s.model,
            backend=backend,
            service=service,
            card=card if card is not None else cards.load(s.model, demo=s.is_demo),
            jobs=self._jobs(service),
        )
        with self._lock:
            self._entries[name] = Entry(name, s.model, current=slot, versions=1)
        return slot

    def wait_loaded(self, timeout: float) -> None:
        """Until every load begun so far has ended (or ``timeout``)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self._stop.is_set():
            with self._lock:
                if not any(e.loading for e in self._entries.values()):
                    return
            time.sleep(0.05)

    # -- watching (what folder.follow asks) -----------------------------------------------------

    def watch(self) -> None:
        """Follow the source's files from now on (a factory and the demo have none)."""
        if not self._source.watched:
            return
        thread = threading.Thread(
            target=follow,
            args=(self._source, self, self._settings.watch_seconds, self._stop),
            name="winserve-watch",
            daemon=True,
        )
        self._spawn(thread)

    def known(self) -> dict[str, tuple[Stamp | None, bool, bool]]:
        with self._lock:
            return {n: (e.tried, e.loading, e.removed) for n, e in self._entries.items()}

    def found(self, refused: dict[str, str]) -> None:
        with self._lock:
            self._refused = refused

    def load_later(self, name: str, path: Path) -> None:
        """Load ``path`` as ``name`` in a thread of its own (a new name is listed at once)."""
        with self._lock:
            self._entries.setdefault(name, Entry(name, path))
        self._load_in_background(name, path)

    # -- loading ------------------------------------------------------------------------------

    def _jobs(self, service: Service) -> JobManager:
        s = self._settings
        return JobManager(
            service,
            max_rows=s.max_csv_rows,
            keep_seconds=s.keep_results_minutes * 60,
            max_bytes=s.max_jobs_bytes,
            parent=s.jobs_path,
        )

    def _service(self, backend: Backend) -> Service:
        return Service(
            backend, max_rows=self._settings.max_rows, max_text=self._settings.max_text_length
        )

    def _load_in_background(self, name: str, path: Path | None) -> None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.loading:
                return
            entry.loading = True
        thread = threading.Thread(
            target=self.load, args=(name, path), name=f"winserve-load-{name}", daemon=True
        )
        self._spawn(thread)

    def load(self, name: str, path: Path | None) -> bool:
        """Load ``path`` (None: the factory or the demo) as a new version of ``name``; it serves
        once its sample prediction passed, and the version it replaces drains. False (and the
        reason kept) on failure."""
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
                return self._load(entry, path)
        finally:
            with self._lock:
                entry.pending -= 1
                entry.loading = entry.pending > 0
                self._awaiting.discard(name)

    def _load(self, entry: Entry, path: Path | None) -> bool:
        started = time.monotonic()
        copy: Path | None = None  # the file the hosts load
        if path is None:  # a factory, the demo: nothing to copy, hash or compare
            card = cards.load(None, demo=self._settings.is_demo)
        elif not self._private:
            entry.tried = stamp(path)
            copy, card = path, cards.load(path)
        else:
            before = stamp(path)
            entry.tried = before
            try:
                copy = self._loader.copy(path)
            except OSError as exc:
                return self._failed(entry, f"{path.name} could not be read: {exc.strerror or exc}")
            if stamp(path) != before:  # written to while copied: the next round tries again
                self._loader.drop_copy(copy.parent)
                entry.tried = None
                return False
            current = entry.current
            if current is not None and current.sha256 == sha256_of(copy):
                self._loader.drop_copy(copy.parent)
                entry.reason = ""  # the file is the one serving (again)
                return True
            card = cards.load(path)
        folder = copy.parent if copy is not None and copy != path else None
        spec = model_spec(self._settings, copy, card)
        backend = self._loader.start(spec, card.workers or self._settings.workers)
        if backend is None or self._stop.is_set():
            if backend is not None:
                backend.close()
            self._loader.drop_copy(folder)
            return False
        first = self._first_shown(entry, path, backend, card, folder)
        try:
            info = self._loader.wait(backend)
        except ModelLoadError as exc:
            if first is not None:  # one model: its slot stays and says why (issue 22)
                return False
            backend.close()
            self._loader.drop_copy(folder)
            reason = str(exc)
            if folder is not None and path is not None:
                reason = reason.replace(str(folder), str(path.parent))
            return self._failed(entry, reason)
        if first is not None:
            with self._lock:
                first.sha256, first.loaded_at = info.sha256, info.loaded_at or _now()
            _warn_about_card(entry.name, card, info)
            return True
        return self._swap(entry, path, backend, card, folder, info, started)

    def _first_shown(
        self,
        entry: Entry,
        path: Path | None,
        backend: Backend,
        card: cards.ModelCard,
        folder: Path | None,
    ) -> Slot | None:
        """One model (not a folder): its first version is its current slot at once, so that
        the bare routes and the page show its backend's own state while it loads, and why it
        failed, as they always have; None otherwise (see the module docstring)."""
        if self._source.many:
            return None
        with self._lock:
            if entry.current is not None:
                return None
            entry.current = self._new_slot(entry, path, backend, card, folder)
            return entry.current

    def _new_slot(
        self,
        entry: Entry,
        path: Path | None,
        backend: Backend,
        card: cards.ModelCard,
        folder: Path | None,
        info: ModelInfo | None = None,
    ) -> Slot:
        """The next version of ``entry`` (under the lock)."""
        entry.versions += 1
        service = self._service(backend)
        return Slot(
            name=entry.name,
            version=entry.versions,
            source=path,
            backend=backend,
            service=service,
            card=card,
            jobs=self._jobs(service),
            sha256=info.sha256 if info is not None else "",
            loaded_at=(info.loaded_at or _now()) if info is not None else "",
            copy=folder,
        )

    def _swap(
        self,
        entry: Entry,
        path: Path | None,
        backend: Backend,
        card: cards.ModelCard,
        folder: Path | None,
        info: ModelInfo,
        started: float,
    ) -> bool:
        """The new version serves from now on; the one it replaces drains."""
        with self._lock:
            if self._stop.is_set():
                slot = None
            else:
                slot = self._new_slot(entry, path, backend, card, folder, info)
                old, entry.current, entry.reason = entry.current, slot, ""
                if old is not None:
                    old.state = "draining"
                    entry.older.append(old)
        if slot is None:
            backend.close()
            self._loader.drop_copy(folder)
            return False
        seconds = time.monotonic() - started
        _warn_about_card(entry.name, card, info)
        shown = path.name if path is not None else self._source.item
        if old is None:
            log.info(
                "%s: version %d serving (%s, %.1f s)", entry.name, slot.version, shown, seconds
            )
        else:
            log.warning(
                "%s: version %d serving (%s changed; loaded in %.1f s); version %d drains",
                entry.name,
                slot.version,
                shown,
                seconds,
                old.version,
            )
            self._drain_in_background(entry, old)
        return True

    def _failed(self, entry: Entry, reason: str) -> bool:
        keeps = (
            f"; version {entry.current.version} keeps serving" if entry.current is not None else ""
        )
        entry.reason = reason
        log.error("%s: not loaded: %s%s", entry.name, reason, keeps)
        return False

    # -- draining and unloading ---------------------------------------------------------------

    def _drain_in_background(self, entry: Entry, old: Slot) -> None:
        thread = threading.Thread(
            target=self._drain,
            args=(entry, old),
            name=f"winserve-drain-{entry.name}-{old.version}",
            daemon=True,
        )
        self._spawn(thread)

    def _drain(self, entry: Entry, old: Slot) -> None:
        """Once nothing runs on ``old`` (requests, CSV jobs), its replicas stop."""
        while not self._stop.is_set():
            with self._lock:
                idle = old.inflight <= 0 and not old.jobs.busy()
                if idle:
                    old.state = "stopped"
                    break
            time.sleep(DRAIN_CHECK)
        old.backend.close()
        self._loader.drop_copy(old.copy)
        with self._lock:
            stopped = [s for s in entry.older if s.state == "stopped"]
            for extra in stopped[:-KEEP_OLD_VERSIONS]:
                entry.older.remove(extra)
                extra.jobs.close()
        log.info("%s: version %d stopped", entry.name, old.version)

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
        if old is not None:
            self._drain_in_background(entry, old)

    # -- stopping -----------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        starting = self._loader.close()
        with self._lock:
            slots = [
                s for e in self._entries.values() for s in [e.current, *e.older] if s is not None
            ]
        backends = {id(b): b for b in [*(s.backend for s in slots), *starting]}
        closers = [
            threading.Thread(target=b.close, name="winserve-close", daemon=True)
            for b in backends.values()
        ]
        for thread in closers:
            thread.start()
        for thread in closers:
            thread.join(timeout=10)
        for slot in slots:
            slot.jobs.close()
            self._loader.drop_copy(slot.copy)


def _warn_about_card(name: str, card: cards.ModelCard, info: ModelInfo) -> None:
    """What the card says that the model does not have, on the console when a version loads
    (the page shows the same warnings)."""
    for note in cards.check_against(card, info):
        log.warning("%s: %s", name, note)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _unwrapped(slot: Slot, reason: str) -> str:
    """``reason`` naming the operator's folder, not the private copy's."""
    if slot.copy is not None and slot.source is not None:
        return reason.replace(str(slot.copy), str(slot.source.parent))
    return reason


def _version_info(slot: Slot, inflight: int) -> VersionInfo:
    return VersionInfo(
        version=slot.version,
        state=slot.state,
        sha256=slot.sha256,
        loaded_at=slot.loaded_at,
        file=slot.source.name if slot.source is not None else "",
        title=slot.card.title,
        inflight=inflight,
        health=slot.health(),
    )
