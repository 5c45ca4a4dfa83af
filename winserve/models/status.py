"""Frozen snapshots of the models served, for the pages and health answers to render (issue 23).

::

    Registry (live: Entry, Slot, backends, under a lock)
        │ status() / snapshot(): the entries read under the registry's lock, then
        │ model_status() here, one backend health() each, outside it
        ▼
    ModelStatus (one per name) ─► VersionInfo (one per version: serving, draining, stopped)
        │
        ▼
    the data plane's health summary, /health, /v2/health/*, the model list, /metrics, the banner

Nothing here is live: a snapshot never changes after it is taken, holds no backend and no
lock, and may be kept, compared or rendered by any thread. A name that has no version yet (its
first load runs, or failed) has an empty ``versions`` and says why in ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from winserve.backends.base import Health
from winserve.models.checked_swap import percent, tolerance_words, when_text
from winserve.models.slots import Entry, Slot

# What a model as a whole is, for the pages: its serving version's backend status, else
# "loading" while its first load runs, else "failed" (``reason`` says why).
ModelState = str


@dataclass(frozen=True)
class VersionInfo:
    """One loaded version of a model, as it was when the snapshot was taken."""

    version: int
    state: str  # serving | draining | stopped
    sha256: str  # of the file this version loaded ("" until its sample prediction passed)
    loaded_at: str  # ISO 8601, UTC ("" until loaded)
    file: str  # the operator's file or folder name ("" for a factory or the demo)
    title: str  # the model card's title ("" without one)
    inflight: int  # requests running on it
    health: Health  # its backend's, at snapshot time

    @property
    def loaded(self) -> bool:
        """Its sample prediction passed (with one model, its first version is shown while it
        loads, and stays, failed, when it did not load: issue 22)."""
        return bool(self.loaded_at)

    @property
    def answers(self) -> bool:
        """Requests may still ask this version by number (``/versions/<n>``)."""
        return self.state in ("serving", "draining")


@dataclass(frozen=True)
class SwapCheck:
    """The last checked swap of a model (issue 26): how a new version's answers compared with
    the serving version's on the reference sample and the recent logged inputs, and what was
    done. ``agreement`` is None when it was not checked (``note`` says why)."""

    new_version: int  # the number the new file has (or would have had, refused)
    old_version: int  # the version it was compared with (serving when it was checked)
    rows: int  # rows compared (answered by at least one of the two)
    reference_rows: int  # of the rows asked, from the reference sample
    logged_rows: int  # and from the prediction log
    agreement: float | None  # the share of rows answered alike; None: not checked
    mean_difference: float | None  # of probabilities or values; None: not measured
    max_difference: float | None
    measure: str  # "probabilities", "values" or "" (labels only)
    threshold: float | None  # swap_when's share; None: "always"
    swapped: bool  # the new version serves (or the check was only reported)
    disagreeing: int = 0  # rows answered differently (downloadable while kept)
    forced: bool = False  # swapped on the owner's request despite the threshold
    waiting: bool = False  # refused and kept ready: the owner may still force the swap
    note: str = ""  # why it was not checked, or why differences were not measured
    at: str = ""  # ISO 8601, UTC
    tolerance: float | None = None  # a regressor's values this close agree (checked_swap)

    @property
    def checked(self) -> bool:
        return self.agreement is not None

    @property
    def refused(self) -> bool:
        return not self.swapped

    @property
    def sentence(self) -> str:
        """One line for the console, /health and the page."""
        new, old = self.new_version, self.old_version
        if self.agreement is None:
            return f"version {new} was not checked against version {old}: {self.note}"
        only = "" if self.swapped else "only "
        said = (
            f"version {new} agreed with version {old} on {only}{percent(self.agreement)} "
            f"of {self.rows:,} rows"
        )
        parts = []
        if self.tolerance is not None:  # the rule, said where the figure is (issue 26)
            parts.append(tolerance_words(self.tolerance, old))
        if self.mean_difference is not None and self.max_difference is not None:
            parts.append(
                f"{self.measure} differ by {self.mean_difference:.3g} on average, "
                f"{self.max_difference:.3g} at most"
            )
        if parts:
            said += f" ({'; '.join(parts)})"
        if self.forced:
            return said + f"; swapped on the owner's request (swap_when = {self.when})"
        if not self.swapped:  # the callers say that the old version keeps serving
            return said + f", below swap_when = {self.when}"
        return said

    @property
    def when(self) -> str:
        return when_text(self.threshold)

    def as_dict(self) -> dict[str, Any]:
        """The check in /health's model entry."""
        rounded = {
            k: None if v is None else round(v, 6)
            for k, v in (
                ("agreement", self.agreement),
                ("mean_difference", self.mean_difference),
                ("max_difference", self.max_difference),
                ("tolerance", self.tolerance),
            )
        }
        return {
            "version": self.new_version,
            "against": self.old_version,
            "checked": self.checked,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "logged_rows": self.logged_rows,
            **rounded,
            "measure": self.measure,
            "disagreeing": self.disagreeing,
            "swap_when": self.when,
            "swapped": self.swapped,
            "forced": self.forced,
            "waiting": self.waiting,
            "note": self.note,
            "at": self.at,
            "message": self.sentence,
        }


@dataclass(frozen=True)
class ModelStatus:
    """One model name: the version serving it, those still draining, and why not, if not."""

    name: str
    path: str  # the operator's file or folder ("" for a factory or the built-in demo)
    loading: bool  # a load of this name runs (the first, or a new file's)
    reason: str  # why the file on disk is not what serves (a failed load); "" else
    versions: tuple[VersionInfo, ...]  # the serving one first, then the older ones, newest first
    check: SwapCheck | None = None  # the last checked swap (issue 26); None before any

    @property
    def current(self) -> VersionInfo | None:
        """The version new requests go to, if any."""
        found = self.versions[0] if self.versions else None
        return found if found is not None and found.state == "serving" else None

    @property
    def serving(self) -> bool:
        """New requests get an answer from the model (its current version's replicas serve)."""
        return self.current is not None and self.current.health.serving

    @property
    def state(self) -> ModelState:
        """loading | ready | degraded | failed | stopped: the current version's backend status;
        without one, "loading" while a load runs, else "failed"."""
        current = self.current
        if current is not None:
            return current.health.status
        return "loading" if self.loading else "failed"


@dataclass(frozen=True)
class RegistrySnapshot:
    """Every model served, and what the server as a whole is: still starting (a model found at
    start has not loaded or failed yet), the files served under no name, the default model."""

    models: tuple[ModelStatus, ...]  # by name
    starting: bool
    refused: tuple[tuple[str, str], ...]  # (file name, why it is not served)
    default_name: str | None  # the model the bare routes answer for, if any


def model_status(entry: Entry, slots: list[Slot], inflight: dict[int, int]) -> ModelStatus:
    """``entry`` as a snapshot: ``slots`` and ``inflight`` (by ``id`` of the slot) were read
    under the registry's lock; each backend's health is read here, outside it (a backend may
    take its own locks)."""
    versions = tuple(_version_info(s, inflight.get(id(s), 0)) for s in slots)
    reason = entry.reason
    first = versions[0] if versions else None
    if not reason and first is not None and not first.loaded:  # one model's failed first
        reason = entry.failed or _unwrapped(slots[0], first.health.reason)
    return ModelStatus(
        name=entry.name,
        path=str(entry.path) if entry.path is not None else "",
        loading=entry.loading,
        reason=reason,
        versions=versions,
        check=entry.check,
    )


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


def _unwrapped(slot: Slot, reason: str) -> str:
    """``reason`` naming the operator's folder, not the private copy's."""
    if slot.copy is not None and slot.source is not None:
        return reason.replace(str(slot.copy), str(slot.source.parent))
    return reason
