"""The registry's live records: an ``Entry`` per model name, a ``Slot`` per loaded version.

::

    Entry(name) ── current: Slot (new requests) ── older: [Slot draining, Slot stopped, …]
                     │ backend (its replicas), service (validation), card, CSV jobs
                     │ inflight: requests running on it (the registry counts, under its lock)

Both are mutable and belong to the registry (``registry.py``): their fields change under its
lock only. A request holds one ``Slot`` from its start to its end; pages and health answers
read frozen snapshots instead (``status.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from winserve import card as cards
from winserve.backends.base import Backend, Health
from winserve.model_file import Stamp
from winserve.model_info import ModelInfo
from winserve.models.checked_swap import DisagreeingRows
from winserve.scoring.jobs import JobManager
from winserve.service import Service
from winserve.settings import Settings

if TYPE_CHECKING:
    from winserve.models.status import SwapCheck


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
    failed: str = ""  # why one model's first version, shown as its current slot, did not load
    versions: int = 0
    tried: Stamp | None = None  # the file's stamp when its last load began
    loading: bool = False
    pending: int = 0  # loads asked for and not ended (running, or waiting for the name's lock)
    removed: bool = False
    check: SwapCheck | None = None  # the last checked swap (issue 26, swap.py)
    disagreements: DisagreeingRows | None = None  # its disagreeing rows, for the owner's CSV

    def slots(self) -> list[Slot]:
        """Every version still held: the one serving, then the older ones, newest first."""
        return [s for s in [self.current, *reversed(self.older)] if s is not None]

    def served(self) -> list[Slot]:
        """The versions that answer: the one serving, then those draining."""
        found = [self.current] if self.current is not None else []
        return found + [s for s in reversed(self.older) if s.state == "draining"]


def new_slot(
    settings: Settings,
    name: str,
    version: int,
    *,
    source: Path | None,
    backend: Backend,
    card: cards.ModelCard,
    copy: Path | None = None,
) -> Slot:
    """Version ``version`` of ``name`` on ``backend``, with its validation and its CSV jobs."""
    service = Service(backend, max_rows=settings.max_rows, max_text=settings.max_text_length)
    jobs = JobManager(
        service,
        max_rows=settings.max_csv_rows,
        keep_seconds=settings.keep_results_minutes * 60,
        max_bytes=settings.max_jobs_bytes,
        parent=settings.jobs_path,
    )
    return Slot(name, version, source, backend, service, card, jobs, copy=copy)
