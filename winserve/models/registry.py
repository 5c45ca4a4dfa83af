"""The models served, by name: a registry of slots, each slot one loaded version (issue 15).

::

    request thread                    Registry                         watcher thread
    ──────────────                    ────────                         ──────────────
    acquire(name) ─► the entry's current Slot, in-flight +1     every watch_seconds: stat the
      (one snapshot per request:        (under the lock)          files; one unchanged for one
       ModelInfo, backend, card, jobs)                            interval and different from
    release(slot) at the request's end ─► in-flight -1            the version served ─► load()
                                                                           │
    load(name, path): copy the file to a private folder, start a new backend on the copy,
      wait for its sample prediction; then, under the lock, the entry's current slot is the
      new one (new requests go there at once) and the old one drains: once its in-flight
      requests and CSV jobs are done, its replicas stop. A load that fails keeps the old one.

Why a private copy: Windows refuses to replace a file that is open, and joblib memory-maps an
uncompressed file for as long as the model lives; loading from a copy leaves the operator's
file closed (read once, for the copy), so a retrain script can always overwrite it. The copy
is also what was hashed and what every replica of that version loads, even when a crashed
replica restarts after the file on disk changed again; memory-mapping stays on (the replicas
share the copy's pages). The copy goes when its version stops.

A single file served as today (no folder) is one slot whose first version is the backend the
server built (loaded from the file itself, as before); with watching on, later versions are
loaded as above.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from winserve import card as cards
from winserve import scratch
from winserve.backends.base import Backend, Health
from winserve.errors import ModelLoadError, ModelUnavailable, NotFound
from winserve.host import model_code
from winserve.host import reference as reference_sample
from winserve.model_file import Stamp, sha256_of, stamp
from winserve.model_info import ModelInfo, ModelSpec
from winserve.models.status import ModelStatus, RegistrySnapshot, VersionInfo
from winserve.platform import cache_dir
from winserve.scoring.jobs import JobManager, jobs_parent
from winserve.service import Service, failed_error
from winserve.settings import CONFIG_NAME, Settings

log = logging.getLogger("winserve")

MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops", ".onnx")
KEEP_OLD_VERSIONS = 3  # drained versions kept for their CSV results (the jobs page, downloads)
DRAIN_CHECK = 0.05

MakeBackend = Callable[[ModelSpec, int], Backend]


def discover(folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The models in ``folder`` by name (file stem; an MLflow model folder's name), and the
    files that cannot be served under a name of their own, with why."""
    found: dict[str, Path] = {}
    refused: dict[str, str] = {}
    try:
        items = sorted(folder.iterdir(), key=lambda p: p.name.lower())
    except OSError:
        return found, refused
    for item in items:
        if item.name.startswith((".", "~")):
            continue  # editors' and Office's temporary files, hidden folders
        if item.is_dir():
            if not (item / "MLmodel").is_file():
                continue
            name = item.name
        elif item.suffix.lower() in MODEL_SUFFIXES:
            name = item.stem
        else:
            continue
        if name in found:
            refused[item.name] = (
                f"{item.name} is not served: {found[name].name} already has the name {name!r}"
            )
            continue
        found[name] = item
    return found, refused


@dataclass(eq=False)
class Slot:
    """One loaded version of one model: what a request uses from start to end."""

    name: str
    version: int
    source: Path | None  # the operator's file (not the private copy)
    backend: Backend
    service: Service
    card: cards.ModelCard
    jobs: JobManager
    sha256: str = ""
    loaded_at: str = ""
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
    def __init__(self, settings: Settings, make_backend: MakeBackend) -> None:
        self._settings = settings
        self._make_backend = make_backend
        self._lock = threading.RLock()  # re-entered: a 404's message lists the names
        self._entries: dict[str, Entry] = {}
        self._refused: dict[str, str] = {}  # files in the folder served under no name
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._starting: set[Backend] = set()  # new versions loading: close() stops them too
        self.copies = cache_dir() / "loaded"
        self._copy_owners: dict[Path, scratch.Scratch] = {}
        # one lock per name: a load, a reload and an unload of one model run one at a time, so
        # that none starts a model process that another makes unlisted (issue 28 item 8)
        self._name_locks: dict[str, threading.Lock] = {}
        self.folder = settings.model if settings.is_folder else None
        # the models found at start whose first load has not ended yet: until it is empty the
        # server is not ready (issue 23: strict readiness, as Triton's and MLServer's)
        self._awaiting: set[str] = set()

    def sweep(self) -> None:
        """At start: delete what a killed winserve left (its CSV jobs' files and its private
        model copies; a running winserve's are kept, see ``scratch``)."""
        parents = [jobs_parent(self._settings.jobs_path), self.copies]
        swept = scratch.sweep(parents[0], "run-", scratch.STALE_SECONDS)
        swept += scratch.sweep(self.copies)  # unmarked: an older winserve's, maybe running
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
        return self.folder is not None

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
        return tuple(
            ModelStatus(
                name=entry.name,
                path=str(entry.path) if entry.path is not None else "",
                loading=entry.loading,
                reason=entry.reason,
                versions=tuple(_version_info(s, counts[id(s)]) for s in slots),
            )
            for entry, slots in held
        )

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

    def private_copy(self, path: Path) -> tuple[Path, Stamp | None] | None:
        """Single-file mode with watching on: a copy of ``path`` for version 1 to load (so
        that, on Windows too, the file can be replaced while it is served), with the file's
        stamp when copied; None when it cannot be copied (the load then says why, as before)."""
        _importable(path.parent)
        before = stamp(path)
        try:
            copy = self._copy(path.stem, path)
        except OSError:
            return None
        if stamp(path) != before:  # being written: load the file itself, the watch follows
            self._drop_copy(copy.parent)
            return None
        return copy, before

    def adopt(
        self,
        backend: Backend,
        card: cards.ModelCard | None = None,
        copy: tuple[Path, Stamp | None] | None = None,
    ) -> Slot:
        """Single-file mode: the server's backend (started already) is version 1, loaded from
        ``copy`` (see ``private_copy``) or from the file itself."""
        s = self._settings
        name = s.model.stem if s.model is not None else (s.factory.rpartition(":")[2] or "demo")
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
            copy=copy[0].parent if copy is not None else None,
        )
        with self._lock:
            self._entries[name] = Entry(name, s.model, current=slot, versions=1)
            if copy is not None:
                self._entries[name].tried = copy[1]
        return slot

    def first_loaded(self, info: ModelInfo) -> None:
        """Single-file mode: the first version is ready (its file's stamp and SHA-256)."""
        entry = next(iter(self._entries.values()))
        if entry.current is not None:
            entry.current.sha256 = info.sha256
            entry.current.loaded_at = info.loaded_at or _now()
            _warn_about_card(entry.name, entry.current.card, info)
        if entry.path is not None and entry.current is not None and entry.current.copy is None:
            entry.tried = stamp(entry.path)  # loaded from the file itself (--no-watch)

    def start_folder(self) -> None:
        """Load every model of the folder, each in a thread of its own, in the background."""
        assert self.folder is not None
        _importable(self.folder)
        found, refused = discover(self.folder)
        with self._lock:
            self._refused = refused
            self._awaiting = set(found)
            for name, path in found.items():
                self._entries[name] = Entry(name, path)
        for reason in refused.values():
            log.warning("%s", reason)
        for ignored in _ignored_settings_files(self.folder, self._settings.config, Path.cwd()):
            log.warning("%s", ignored)
        for name, path in found.items():
            self._load_in_background(name, path)

    def wait_loaded(self, timeout: float) -> None:
        """Until every load begun so far has ended (or ``timeout``)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self._stop.is_set():
            with self._lock:
                if not any(e.loading for e in self._entries.values()):
                    return
            time.sleep(0.05)

    def _load_in_background(self, name: str, path: Path) -> None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.loading:
                return
            entry.loading = True
        thread = threading.Thread(
            target=self.load, args=(name, path), name=f"winserve-load-{name}", daemon=True
        )
        self._spawn(thread)

    def load(self, name: str, path: Path) -> bool:
        """Load ``path`` as a new version of ``name``; it serves once its sample prediction
        passed, and the version it replaces drains. False (and the reason kept) on failure."""
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

    def _load(self, entry: Entry, path: Path) -> bool:
        before = stamp(path)
        entry.tried = before
        started = time.monotonic()
        try:
            copy = self._copy(entry.name, path)
        except OSError as exc:
            return self._failed(entry, f"{path.name} could not be read: {exc.strerror or exc}")
        if stamp(path) != before:  # written to while copied: the next round tries again
            self._drop_copy(copy.parent)
            entry.tried = None
            return False
        digest = sha256_of(copy)
        current = entry.current
        if current is not None and current.sha256 == digest:
            self._drop_copy(copy.parent)
            entry.reason = ""  # the file is the one serving (again)
            return True
        card = cards.load(path)
        s = self._settings
        spec = ModelSpec(
            path=str(copy),
            factory="",
            strict_versions=s.strict_versions,
            sha256=s.model_sha256,
            example=dict(card.example),
            kinds=card.kinds,
            inputs=dict(card.inputs),  # what a tensor input is (issue 24)
            compile=s.compile,
            trust=s.trust,
            reference=card.reference,  # reference = "…" in the card (issue 25)
        )
        backend = self._make_backend(spec, card.workers or s.workers)
        with self._lock:
            if self._stop.is_set():
                self._drop_copy(copy.parent)
                return False
            self._starting.add(backend)
        backend.start()
        try:
            info = backend.wait_ready(s.load_timeout + 30)
        except ModelLoadError as exc:
            with self._lock:
                self._starting.discard(backend)
            backend.close()
            self._drop_copy(copy.parent)
            reason = str(exc).replace(str(copy.parent), str(path.parent))
            return self._failed(entry, reason)
        service = self._service(backend)
        with self._lock:
            self._starting.discard(backend)
            if self._stop.is_set():
                slot = None
            else:
                entry.versions += 1
                slot = Slot(
                    name=entry.name,
                    version=entry.versions,
                    source=path,
                    backend=backend,
                    service=service,
                    card=card,
                    jobs=self._jobs(service),
                    sha256=info.sha256,
                    loaded_at=info.loaded_at or _now(),
                    copy=copy.parent,
                )
                old, entry.current, entry.reason = entry.current, slot, ""
                if old is not None:
                    old.state = "draining"
                    entry.older.append(old)
        if slot is None:
            backend.close()
            self._drop_copy(copy.parent)
            return False
        seconds = time.monotonic() - started
        _warn_about_card(entry.name, card, info)
        if old is None:
            log.info(
                "%s: version %d serving (%s, %.1f s)", entry.name, slot.version, path.name, seconds
            )
        else:
            log.warning(
                "%s: version %d serving (%s changed; loaded in %.1f s); version %d drains",
                entry.name,
                slot.version,
                path.name,
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

    def _copy(self, name: str, path: Path) -> Path:
        """A private copy of ``path`` (and of its ``<name>_code.py``), to load from, in a
        folder marked as this process's (``scratch``: a killed winserve's are swept at the
        next start). The folder's name is short and random, not the model's: the copy's path
        is the cache's plus 11 characters plus the file's name, so a long file name does not
        push it past Windows' 260 characters (issue 28; it was the cache's, the name's first
        40 characters, 9 more, and the name again). The file keeps its name: it is the name
        the model is served under."""
        owned = scratch.Scratch(self.copies, "")
        folder = owned.path
        with self._lock:
            self._copy_owners[folder] = owned
        target = folder / path.name
        try:
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copyfile(path, target)
            code = model_code.code_file(path)
            if code.is_file():
                shutil.copyfile(code, model_code.code_file(target))
            # the reference sample too: explanations read it beside the file loaded (issue 25)
            for sample in reference_sample.beside(path):  # .reference.csv / .parquet
                shutil.copyfile(sample, folder / sample.name)  # the copy has the file's name
        except OSError:
            self._drop_copy(folder)
            raise
        return target

    def _drop_copy(self, folder: Path | None) -> None:
        """Delete a private copy's folder (and let go of its marker)."""
        if folder is None:
            return
        with self._lock:
            owned = self._copy_owners.pop(folder, None)
        if owned is not None:
            owned.close()
        else:
            shutil.rmtree(folder, ignore_errors=True)

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
        self._drop_copy(old.copy)
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

    # -- watching -----------------------------------------------------------------------------

    def watch(self) -> None:
        thread = threading.Thread(target=self._watch, name="winserve-watch", daemon=True)
        self._spawn(thread)

    def _candidates(self) -> dict[str, Path]:
        if self.folder is None:
            with self._lock:
                return {n: e.path for n, e in self._entries.items() if e.path is not None}
        found, refused = discover(self.folder)
        with self._lock:
            self._refused = refused
        return found

    def _watch(self) -> None:
        """Every ``watch_seconds``: a file whose stamp stayed the same for one interval and is
        not the one last tried is loaded; a file gone for one interval is unloaded."""
        seen: dict[str, Stamp | None] = {}
        interval = self._settings.watch_seconds
        while not self._stop.wait(interval):
            found = self._candidates()
            with self._lock:
                known = {n: e for n, e in self._entries.items()}
            for name, entry in known.items():
                if name not in found and not entry.removed and self.folder is not None:
                    if seen.get(name, ()) is None:  # gone for one interval: not a replace
                        with contextlib.suppress(NotFound):
                            self.unload(name, gone=True)
                    seen[name] = None
            for name, path in found.items():
                now = stamp(path)
                previous, seen[name] = seen.get(name, ()), now
                if now is None or now != previous:
                    continue  # changing (or just appeared): look again next round
                held = known.get(name)
                if held is not None and (held.tried == now or held.loading):
                    continue  # this very file was loaded, tried and failed, or unloaded
                if held is None:
                    with self._lock:
                        self._entries[name] = Entry(name, path)
                self._load_in_background(name, path)

    # -- stopping -----------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            slots = [
                s for e in self._entries.values() for s in [e.current, *e.older] if s is not None
            ]
            starting = list(self._starting)
        closers = [
            threading.Thread(target=b.close, name="winserve-close", daemon=True)
            for b in [*(s.backend for s in slots), *starting]
        ]
        for thread in closers:
            thread.start()
        for thread in closers:
            thread.join(timeout=10)
        for slot in slots:
            slot.jobs.close()
            self._drop_copy(slot.copy)


def _importable(folder: Path) -> None:
    """The folder's own modules (``features.py`` beside the model files) must be importable in
    the model hosts, which load private copies elsewhere: spawned processes inherit this
    process's ``sys.path`` (at the end, as model_code does: it never shadows a package)."""
    resolved = str(folder.resolve())
    if resolved not in sys.path:
        sys.path.append(resolved)


def _ignored_settings_files(folder: Path, config: Path | None, cwd: Path) -> list[str]:
    """Why a settings file that might be expected to apply is not read (winserve reads one,
    settings.load): the folder's own, when another file (``--config``, or the file that names
    the folder as ``model``) was read; or, when the folder's own was read, the one beside the
    folder and the current folder's (run.bat's), whose settings then do not apply."""
    if config is None:
        return []
    inside = folder / CONFIG_NAME
    if not _same_file(config, inside):
        if not inside.is_file():
            return []
        return [
            f"{inside} is not read: winserve reads one settings file, and this run's is "
            f"{config} (given with --config, or the file that names this folder as model); put "
            "the settings there, or start winserve with the folder itself (python -m winserve "
            "FOLDER, or the folder dropped on run.bat) and without --config to use the folder's "
            "own file"
        ]
    others: list[Path] = []
    for other in (folder.parent / CONFIG_NAME, cwd / CONFIG_NAME):
        if other.is_file() and not any(_same_file(other, o) for o in [inside, *others]):
            others.append(other)
    return [
        f"{other} is not read: winserve reads one settings file, and this run's is the models "
        f"folder's own {inside}; put the settings there (or give the other with --config)"
        for other in others
    ]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _warn_about_card(name: str, card: cards.ModelCard, info: ModelInfo) -> None:
    """What the card says that the model does not have, on the console when a version loads
    (the page shows the same warnings)."""
    for note in cards.check_against(card, info):
        log.warning("%s: %s", name, note)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def describe(slot: Slot) -> dict[str, Any]:
    """What ``/models/<name>`` adds to the model's description: the version being served."""
    return {
        "version": slot.version,
        "sha256": slot.sha256,
        "loaded_at": slot.loaded_at,
        "state": slot.state,
    }
