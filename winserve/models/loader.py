"""From a model file (or a factory, or the built-in demo) to a started backend (issue 23).

::

    Registry.load(name, path) ─► Loader.copy(path) ─► a private folder (marked as this process's)
                                 model_spec(settings, copy, card) ─► ModelSpec (plain data)
                                 Loader.start(spec, workers) ─► make_backend(...).start()
                                    (listed as starting: close() stops it too, mid-load)
                                 Loader.wait(backend) ─► ModelInfo once its sample prediction
                                    passed, or ModelLoadError (the model's own reason)

While a load runs, its ``Tracker`` (``winserve.load_progress``) says how far it has gone: bytes
of the copy read, then seconds in the model process; ``progress(name)`` is what the registry's
status (and so ``/health`` and the pages) shows, and the tracker prints a console line every
few seconds (issue 24: a model of hundreds of megabytes).

The registry decides what a loaded backend becomes (a new version, the one serving); this
module only makes it. Every model goes through it: a folder's files, the one file, a factory
and the demo (those two have no file, so no copy).

Why a private copy: Windows refuses to replace a file that is open, and joblib memory-maps an
uncompressed file for as long as the model lives; loading from a copy leaves the operator's
file closed (read once, for the copy), so a retrain script can always overwrite it. The copy
is also what was hashed and what every replica of that version loads, even when a crashed
replica restarts after the file on disk changed again; memory-mapping stays on (the replicas
share the copy's pages). The copy goes when its version stops.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from winserve import card as cards
from winserve import scratch
from winserve.backends.base import Backend
from winserve.errors import ModelLoadError
from winserve.host import model_code, onnx_model
from winserve.host import reference as reference_sample
from winserve.load_progress import LoadProgress, Tracker, size_of
from winserve.model_file import Stamp, sha256_of, stamp
from winserve.model_info import ModelInfo, ModelSpec
from winserve.models import start_probe
from winserve.platform import cache_dir
from winserve.scoring.jobs import jobs_parent
from winserve.settings import Settings

log = logging.getLogger("winserve")

MakeBackend = Callable[[ModelSpec, int], Backend]
# Told of a backend as soon as it started (with its card and private folder): True when the
# caller shows it already and keeps it, failed or not (one model's first version, issue 22)
Shown = Callable[[Backend, cards.ModelCard, Path | None], bool]

LOAD_GRACE = 30.0  # seconds beyond load_timeout a first load may take (the pool's own restarts)
# the private copy's reads: big enough that Python's loop costs nothing beside the disk (the
# speed shutil's own Windows loop reaches with 1 MiB), small enough to move the progress
COPY_CHUNK = 4 * 1024 * 1024


def model_spec(settings: Settings, path: Path | None, card: cards.ModelCard) -> ModelSpec:
    """What the model hosts load: ``path`` (a private copy, or the operator's file for
    ``winserve check``), else the setting ``factory``, else the demo; the card's example row
    is the sample prediction's."""
    return ModelSpec(
        path=str(path) if path is not None else "",
        factory=settings.factory if path is None else "",
        strict_versions=settings.strict_versions,
        sha256=settings.model_sha256,
        example=dict(card.example),
        kinds=card.kinds,  # [features.<name>] kind = …: pinned column kinds (issue 22)
        inputs=dict(card.inputs),  # [inputs.<name>]: what a tensor input is (issue 24)
        reference=card.reference,  # reference = "…": the reference sample (issue 25)
        compile=settings.compile,
        trust=settings.trust,
        device=settings.device,  # where a PyTorch or ONNX model runs (issue 24)
        intra_op_threads=settings.intra_op_threads,
    )


@dataclass(frozen=True)
class Loaded:
    """A new version's backend, started, that passed its sample prediction."""

    tried: Stamp | None  # the file's stamp when the load began (None: no file)
    backend: Backend
    card: cards.ModelCard
    folder: Path | None  # its private copy's folder (None: it loads no copy)
    info: ModelInfo
    seconds: float


@dataclass(frozen=True)
class NotLoaded:
    """A load that made no new version, and why ("": nothing to say, as when the file was
    being written while it was copied, or the server stops)."""

    tried: Stamp | None
    reason: str = ""
    same: bool = False  # the file is the one serving already
    kept: bool = False  # its backend was shown (``Shown``) and stays, saying why itself
    changing: bool = False  # the file was written to while it was copied


class Loader:
    """Makes new backends for the registry: private copies of the files, the spec, the start,
    the wait for the sample prediction. Thread-safe; ``close`` stops the backends still
    loading."""

    def __init__(self, settings: Settings, make_backend: MakeBackend) -> None:
        self._settings = settings
        self._make_backend = make_backend
        self._lock = threading.Lock()
        self._starting: set[Backend] = set()  # loading now: close() stops them too
        self._closed = False
        self.copies = cache_dir() / "loaded"
        self._copy_owners: dict[Path, scratch.Scratch] = {}
        self._progress: dict[str, Tracker] = {}  # by model name: the loads running now

    def progress(self, name: str) -> LoadProgress | None:
        """How far the load of ``name`` running now has gone; None when none runs."""
        tracker = self._progress.get(name)  # one dict read: no lock on the health path
        return tracker.snapshot() if tracker is not None else None

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

    def load(
        self, name: str, path: Path | None, *, private: bool, serving: str | None, shown: Shown
    ) -> Loaded | NotLoaded:
        """Model ``name`` from ``path`` (None: the factory or the demo) as a new backend,
        started and waited for: from a private copy when ``private`` (else from ``path``
        itself); not at all when the copy is the file ``serving`` (that version's SHA-256)."""
        tracker = Tracker(name, size_of(path), copying=private and path is not None)
        with self._lock:
            self._progress[name] = tracker
        try:
            return self._load(name, path, tracker, private=private, serving=serving, shown=shown)
        finally:
            tracker.end()
            with self._lock:
                if self._progress.get(name) is tracker:
                    del self._progress[name]

    def _load(
        self,
        name: str,
        path: Path | None,
        tracker: Tracker,
        *,
        private: bool,
        serving: str | None,
        shown: Shown,
    ) -> Loaded | NotLoaded:
        started = time.monotonic()
        target = folder = tried = None
        if path is None:  # a factory, the demo: nothing to copy, hash or compare
            card = cards.load(None, demo=self._settings.is_demo)
        elif not private:
            tried, target, card = stamp(path), path, cards.load(path)
        else:
            tried = stamp(path)
            try:
                target = self.copy(path, tracker.read)
            except OSError as exc:
                return NotLoaded(tried, f"{path.name} could not be read: {exc.strerror or exc}")
            folder = target.parent
            if stamp(path) != tried:  # written to while copied: the next round tries again
                self.drop_copy(folder)
                return NotLoaded(None, changing=True)
            if serving is not None and serving == sha256_of(target):
                self.drop_copy(folder)
                return NotLoaded(tried, same=True)
            card = cards.load(path)
        tracker.loading()
        backend = self.start(model_spec(self._settings, target, card), card.workers)
        if backend is None:  # closed meanwhile
            self.drop_copy(folder)
            return NotLoaded(tried)
        kept = shown(backend, card, folder)
        try:
            info = self.wait(backend)
        except ModelLoadError as exc:
            if not kept:
                backend.close()
                self.drop_copy(folder)
            # a host that died while Python started it said why on the console only: the
            # start done again, its stderr read (issue 24: "… (EOFError)" said nothing)
            reason = start_probe.explained(str(exc))
            if folder is not None and path is not None:
                reason = reason.replace(str(folder), str(path.parent))
            return NotLoaded(tried, reason, kept=kept)
        for note in cards.check_against(card, info):  # as the page shows them
            log.warning("%s: %s", name, note)
        return Loaded(tried, backend, card, folder, info, time.monotonic() - started)

    # -- private copies -------------------------------------------------------------------------

    def copy(self, path: Path, read: Callable[[int], None] | None = None) -> Path:
        """A private copy of ``path`` (and of its ``<name>_code.py`` and reference sample), to
        load from, in a folder marked as this process's (``scratch``: a killed winserve's are
        swept at the next start). The folder's name is short and random, not the model's: the
        copy's path is the cache's plus 11 characters plus the file's name, so a long file name
        does not push it past Windows' 260 characters (issue 28). The file keeps its name: it
        is the name the model is served under. ``read`` is told the bytes of the model's file
        (or folder) as they are copied (issue 24). ``OSError`` when it cannot be read."""
        owned = scratch.Scratch(self.copies, "")
        folder = owned.path
        with self._lock:
            self._copy_owners[folder] = owned
        target = folder / path.name
        try:
            if path.is_dir():
                shutil.copytree(
                    path,
                    target,
                    ignore=shutil.ignore_patterns("__pycache__"),
                    copy_function=lambda src, dst: copy_file(Path(src), Path(dst), read),
                )
            else:
                copy_file(path, target, read)
            code = model_code.code_file(path)
            if code.is_file():
                shutil.copyfile(code, model_code.code_file(target))
            # the reference sample too: explanations read it beside the file loaded (issue 25)
            for sample in reference_sample.beside(path):  # .reference.csv / .parquet
                shutil.copyfile(sample, folder / sample.name)  # the copy has the file's name
            # an ONNX graph's external weights, where it names them (issue 24)
            for weights in onnx_model.external_files(path):
                relative = weights.relative_to(path.parent.resolve())
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(weights, folder / relative)
        except OSError:
            self.drop_copy(folder)
            raise
        return target

    def drop_copy(self, folder: Path | None) -> None:
        """Delete a private copy's folder (and let go of its marker)."""
        if folder is None:
            return
        with self._lock:
            owned = self._copy_owners.pop(folder, None)
        if owned is not None:
            owned.close()
        else:
            shutil.rmtree(folder, ignore_errors=True)

    # -- backends -------------------------------------------------------------------------------

    def start(self, spec: ModelSpec, workers: int = 0) -> Backend | None:
        """A new backend on ``spec`` with ``workers`` replicas (0: the setting), started (its
        hosts load meanwhile); None once closed."""
        backend = self._make_backend(spec, workers or self._settings.workers)
        with self._lock:
            if self._closed:
                return None
            self._starting.add(backend)
        backend.start()
        return backend

    def wait(self, backend: Backend) -> ModelInfo:
        """Until ``backend`` passed its sample prediction: its description, or
        ``ModelLoadError`` with why not (the backend is left as it is: the caller keeps or
        closes it)."""
        try:
            return backend.wait_ready(self._settings.load_timeout + LOAD_GRACE)
        finally:
            with self._lock:
                self._starting.discard(backend)

    def close(self) -> list[Backend]:
        """No new backend from now on; the ones still loading, for the caller to close."""
        with self._lock:
            self._closed = True
            return list(self._starting)


def copy_file(source: Path, target: Path, read: Callable[[int], None] | None = None) -> None:
    """``shutil.copyfile``, in chunks, telling ``read`` each chunk's bytes (issue 24: the copy
    of a big model is the part of its load whose progress can be measured)."""
    if read is None:
        shutil.copyfile(source, target)
        return
    buffer = bytearray(COPY_CHUNK)  # one buffer, read into: no new bytes object per chunk
    view = memoryview(buffer)
    # the writer is buffered: its write() writes every byte (a raw one may write fewer)
    with source.open("rb", buffering=0) as src, target.open("wb") as dst:
        while count := src.readinto(buffer):
            dst.write(view[:count])
            read(count)
