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

    a name with a version serving: before the swap, the checked swap (issue 26)
      swap_rows.rows_to_check: the reference sample + the log's recent inputs
      swap_rows.ask: both versions answer them ─► checked_swap.compare ─► SwapCheck
        (entry.check: the console's line, /health, the page; entry.disagreements: the CSV)
      swap_when met (or "always", or nothing to compare with) ─► _swap as above; its
        "loaded" event on the monitor's timeline says how (_how): checked and agreed, forced
        by the owner after a refusal, or not checked and why
      below it ─► the old version keeps serving (entry.reason says why); the new one is kept
        ready (refused.py) for the owner's force (force(), the page's button, or a load
        through the repository API) until a newer file arrives, the serving file comes back,
        KEEP_REFUSED_SECONDS pass, or winserve stops; then its replicas stop
      Left out: a shadow period (the new version answering live requests beside the old).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from winserve import card as cards
from winserve.backends.base import Backend
from winserve.errors import WinserveError
from winserve.load_progress import size_text
from winserve.model_file import stamp
from winserve.models import checked_swap, swap_rows
from winserve.models.checked_swap import DisagreeingRows
from winserve.models.loader import Loaded, Loader, NotLoaded
from winserve.models.refused import RefusedVersions
from winserve.models.slots import Entry, Slot, new_slot
from winserve.models.status import SwapCheck
from winserve.predlog import events
from winserve.predlog.location import log_file
from winserve.service import Service
from winserve.settings import Settings

log = logging.getLogger("winserve")

FIRST_TRIES = 5  # copies of a file that keeps changing, before a name's first version gives up
NOTHING_TO_COMPARE = "no reference sample or logged inputs"
TENSORS = "its inputs are tensors or images, which the check does not compare"


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
        self._threshold = checked_swap.parse_when(settings.swap_when)
        self._log_file = log_file(settings)
        # refused new versions kept for the owner's force (issue 26)
        self._refused = RefusedVersions(lock, stop, loader.drop_copy)

    def load(self, entry: Entry, path: Path | None, force: bool = False) -> bool:
        """Load ``path`` as the next version of ``entry`` (the caller holds its name's lock):
        swapped in once its sample prediction passed and the checked swap allows it (always
        with ``force``: the owner's load), else the reason kept; False then."""
        if force and path is not None:
            waiting = self._refused.waiting(entry.name)
            if waiting is not None and waiting.loaded.tried == stamp(path):
                return self.force(entry) == ""  # the refused file itself: no second load
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
            self.discard(entry, "a newer file loaded")
            return self._checked(entry, path, outcome, force)
        if outcome.same:
            self.discard(entry, "the file serving is back")
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
        _loaded(entry.name, slot.version, new, shown, _how(entry.check, slot.version))
        size = f", {size_text(new.info.file_size)}" if new.info.file_size else ""  # issue 24
        if old is None:
            log.info(
                "%s: version %d serving (%s%s, %.1f s)",
                entry.name,
                slot.version,
                shown,
                size,
                new.seconds,
            )
            return True
        log.warning(
            "%s: version %d serving (%s changed%s, loaded in %.1f s); version %d drains",
            entry.name,
            slot.version,
            shown,
            size,
            new.seconds,
            old.version,
        )
        self._drain(entry, old)
        return True

    # -- the checked swap (issue 26) ----------------------------------------------------------

    def _checked(self, entry: Entry, path: Path | None, new: Loaded, force: bool) -> bool:
        """``new`` serves once it answered the check rows close enough to the serving version
        (or there is none to compare with: a first version is never checked)."""
        old = entry.current
        if old is None or not old.loaded_at or old.backend is new.backend:
            return self._swap(entry, path, new)
        check, rows = self._check(entry, old, new, force)
        with self._lock:
            entry.check, entry.disagreements = check, rows
        if check.swapped:
            log.info("%s: %s", entry.name, check.sentence)
            return self._swap(entry, path, new)
        if not self._refused.keep(entry, new, path, check.sentence):
            return False  # winserve is stopping: closed
        where = f"/models/{entry.name}" if self._many else ""
        log.error(
            "%s: not swapped: %s; version %d keeps serving (the disagreeing rows: "
            "%s/swap/disagreements.csv; the page's button or POST "
            "/v2/repository/models/%s/load swaps it)",
            entry.name,
            check.sentence,
            old.version,
            where,
            entry.name,
        )
        # the monitor's timeline (issue 26): the version refused, the file's, and why
        events.note(
            "swap_refused",
            entry.name,
            check.new_version,
            sha256=new.info.sha256,
            detail=f"{check.sentence}; version {old.version} keeps serving",
        )
        return False

    def _check(
        self, entry: Entry, old: Slot, new: Loaded, force: bool
    ) -> tuple[SwapCheck, DisagreeingRows | None]:
        """``new`` and ``old`` asked the reference sample and the log's recent inputs."""
        version = entry.versions + 1  # the number it gets if it serves
        threshold = self._threshold

        def unchecked(note: str) -> SwapCheck:
            return SwapCheck(
                version, old.version, 0, 0, 0, None, None, None, "", threshold, True,
                note=note, at=_now(),
            )  # fmt: skip

        try:
            old_info = old.info()
            if old_info.tensor_inputs:  # an image or a tensor is not kept as a row (issue 24)
                return unchecked(TENSORS), None
            rows = swap_rows.rows_to_check(
                entry.name,
                old_info,
                [
                    swap_rows.reference_path(new.info, new.card),
                    swap_rows.reference_path(old_info, old.card),
                ],
                self._log_file,
            )
            if not rows.count:
                return unchecked(NOTHING_TO_COMPARE), None
            before, old_error = swap_rows.ask(old.service, old_info, rows)
            if len(before.refused) == rows.count:
                why = f"version {old.version} answered none of the rows: {old_error}"
                return unchecked(why), None
            s = self._settings
            service = Service(new.backend, max_rows=s.max_rows, max_text=s.max_text_length)
            after, new_error = swap_rows.ask(service, new.info, rows)
        except WinserveError as exc:  # the serving version went away meanwhile
            return unchecked(f"the check could not run: {exc}"), None
        comparison = checked_swap.compare(before, after, regression=old_info.task == "regression")
        passed = checked_swap.decide(comparison, threshold)
        note = comparison.note
        if new_error and after.refused - before.refused:  # rows only the new one refused
            note = f"version {version} refused rows: {new_error}" + (f"; {note}" if note else "")
        check = SwapCheck(
            version,
            old.version,
            comparison.rows,
            rows.counted("reference"),
            rows.counted("log"),
            comparison.agreement,
            comparison.mean_difference,
            comparison.max_difference,
            comparison.measure,
            threshold,
            swapped=passed or force,
            disagreeing=len(comparison.disagreeing),
            forced=force and not passed,
            waiting=not (passed or force),
            note=note,
            at=_now(),
            tolerance=comparison.tolerance,
        )
        disagreeing = checked_swap.disagreeing_rows(
            rows.columns,
            rows.origins,
            before,
            after,
            comparison,
            new_version=version,
            old_version=old.version,
        )
        return check, disagreeing

    def force(self, entry: Entry) -> str:
        """The refused version of ``entry`` serves now, on the owner's word (the caller holds
        the name's lock); "" once it does, else why not."""
        kept = self._refused.take(entry)
        if kept is None:
            return (
                "no refused version is waiting to be swapped in (it stopped, or a newer file "
                "was loaded); load the file again to check it again"
            )
        check = entry.check
        log.warning("%s: %s", entry.name, check.sentence if check is not None else "forced")
        if self._swap(entry, kept.path, kept.loaded):
            return ""
        return "winserve is stopping"

    def discard(self, entry: Entry, why: str) -> None:
        """The refused version of ``entry`` kept for a force, if any, stops (refused.py)."""
        self._refused.discard(entry, why)

    def close(self) -> list[Loaded]:
        """At winserve's stop: the refused versions kept, for the caller to close (with the
        other backends, at once) and drop their copies."""
        return self._refused.close()

    def _failed(self, entry: Entry, reason: str) -> bool:
        keeps = (
            f"; version {entry.current.version} keeps serving" if entry.current is not None else ""
        )
        entry.reason = reason
        log.error("%s: not loaded: %s%s", entry.name, reason, keeps)
        events.note("load_failed", entry.name, detail=reason + keeps)  # the timeline (issue 26)
        return False


def _loaded(name: str, version: int, new: Loaded, shown: str = "", how: str = "") -> None:
    """The monitor page's timeline: version N of ``name`` serves (issue 26), and ``how``:
    what its checked swap found."""
    said = f"{shown}, " if shown else ""
    events.note(
        "loaded",
        name,
        version,
        sha256=new.info.sha256,
        detail=f"{said}loaded in {new.seconds:.1f} s",
        how=how,
    )


def _how(check: SwapCheck | None, version: int) -> str:
    """How ``version`` came to serve, for the timeline (issue 26: a forced swap read as a
    plain load after its refusal): "forced by the owner after the check refused it (agreed
    64.6 %)", "checked, agreed 99.8 % with version 3", "not checked against version 3: …";
    "" for a first version (never checked) or one the check is not about."""
    if check is None or check.new_version != version:
        return ""
    if check.agreement is None:
        return f"not checked against version {check.old_version}: {check.note}"
    agreed = checked_swap.percent(check.agreement)
    if check.forced:
        return f"forced by the owner after the check refused it (agreed {agreed})"
    when = " (swap_when = always)" if check.threshold is None else ""
    return f"checked, agreed {agreed} with version {check.old_version}{when}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
