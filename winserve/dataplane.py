"""The one object the web layer calls (issue 23): predictions, descriptions, health, loading,
CSV jobs, over the registry of models. The views decode, call it, and encode; they never hold
a registry entry, a slot or a backend (MLServer's ``handlers/dataplane.py`` over its
``registry.py``).

::

    view (winserve/web) ── decoded request ──► DataPlane ─────────► Registry (models/)
                                                 │ hold(name[, version]): the slot of that
                                                 │ version, counted in flight until release
                                                 ▼
                                               Held: one model version for one request, from
                                                 its first use to its end (a swap meanwhile
                                                 does not stop it): info, infer → Answer,
                                                 check, explain, whatif, health, jobs
                                                 │ Service (validation) ─► Backend (replicas)
    /health, /v2/health/*, the model list,     health() ─► HealthSummary (frozen): each
    /metrics, the console banner ◄──────────────  model's state and the one overall status

Readiness is strict (issue 23, as Triton's and MLServer's): the server is not ready, status
``loading``, until every model found at start has loaded or failed (``Registry.starting``);
after that it is ready while some model serves. ``degraded`` means one thing: some replicas
of a model that loaded are down. A model that never loaded is ``failed`` in its own entry
(and at ``/v2/models/<name>/ready``), not a degraded server.

The records it hands out live beside it, each module one concept: ``dataplane_records``
(``Answer``, ``Description``, ``JobsOf``) and ``health_summary`` (``ModelHealth``,
``HealthSummary``, ``overall``); the views import them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from winserve import card as cards
from winserve.backends.base import Backend, Health, Prediction, ReplicaHealth
from winserve.dataplane_records import Answer, Description, JobsOf
from winserve.errors import NotFound
from winserve.health_summary import (
    UNLOADED,
    HealthSummary,
    ModelHealth,
    model_health,
    overall,
    with_progress,
)
from winserve.load_progress import LoadProgress
from winserve.metrics import Histogram
from winserve.model_info import ModelInfo
from winserve.models.checked_swap import DisagreeingRows
from winserve.models.registry import Registry, Slot
from winserve.models.status import SwapCheck
from winserve.scoring.jobs import JobManager
from winserve.service import PredictRequest, Prepared, WhatIf
from winserve.settings import Settings

# the records the data plane hands out, named here so that views import them from one place
__all__ = [
    "Answer",
    "Backend",
    "DataPlane",
    "Description",
    "DisagreeingRows",
    "Health",
    "HealthSummary",
    "Held",
    "JobsOf",
    "ModelHealth",
    "Prediction",
    "Registry",
    "ReplicaHealth",
    "SwapCheck",
    "overall",
]


class Held:
    """One version of one model, held by one request from its first use to its end: the
    registry counts it in flight until ``DataPlane.release``, so a new version that starts
    serving meanwhile takes the next requests and this one is not stopped under it."""

    __slots__ = ("_progress", "_service", "_slot", "name", "version")

    def __init__(self, slot: Slot, progress: Callable[[str], LoadProgress | None]) -> None:
        self._slot = slot
        self._service = slot.service
        self._progress = progress  # the registry's: how far a load of this name has gone
        # a version's name and number never change: plain fields, not properties (the
        # prediction log reads them on every request; issue 29)
        self.name: str = slot.name
        self.version: int = slot.version

    @property
    def sha256(self) -> str:
        return self._slot.sha256

    @property
    def loaded_at(self) -> str:
        return self._slot.loaded_at

    @property
    def card(self) -> cards.ModelCard:
        return self._slot.card

    @property
    def jobs(self) -> JobManager:
        return self._slot.jobs

    def info(self) -> ModelInfo:
        """The model's description (``ModelFailed``/``ModelUnavailable`` when there is none);
        a view takes it once and checks every call of its request against it."""
        return self._service.info()

    def health(self) -> Health:
        """Its backend's health; while it loads, with how far the load has gone (issue 24)."""
        return with_progress(self._slot.backend.health(), self._progress(self._slot.name))

    def infer(self, request: PredictRequest, info: ModelInfo | None = None) -> Answer:
        """``request``'s prediction, checked against ``info`` (default: the current one)."""
        info = info or self._service.info()
        return Answer(self._service.predict(request, info), info, self.version)

    def check(self, request: PredictRequest) -> Prepared:
        """Validate without predicting: bad rows are reported, not raised (the page)."""
        return self._service.check(request)

    def predict_prepared(self, prepared: Prepared, proba: bool) -> Prediction:
        return self._service.predict_prepared(prepared, proba)

    def explain(self, request: PredictRequest, info: ModelInfo | None = None) -> list[Any]:
        return self._service.explain(request, info)

    def whatif(
        self, request: PredictRequest, columns: list[str], info: ModelInfo | None = None
    ) -> WhatIf:
        return self._service.whatif(request, columns, info)


class DataPlane:
    """The models served, as the web layer sees them (see the module docstring)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        # the names the owner unloaded, with their files ("": a factory's or the demo's),
        # until they load again (issue 23: an unloaded model left the repository index)
        self._unloaded: dict[str, str] = {}

    @classmethod
    def of_backend(cls, settings: Settings, backend: Backend) -> DataPlane:
        """One model, already started in ``backend``, as the only one served (tests, and
        ``create_app(settings, backend)``)."""
        registry = Registry(settings, lambda spec, workers: backend)
        registry.adopt(backend)
        return cls(registry)

    @property
    def registry(self) -> Registry:
        """The registry underneath (the server's and the tests'; never a view's)."""
        return self._registry

    # -- which models -------------------------------------------------------------------------

    @property
    def is_folder(self) -> bool:
        """A folder of models (each at /models/<name>/…), not one model file."""
        return self._registry.is_folder

    @property
    def private_folder(self) -> str:
        """Where the models' private copies load from (a path a view must never show)."""
        return str(self._registry.copies)

    def names(self) -> list[str]:
        return self._registry.names()

    def default_name(self) -> str | None:
        return self._registry.default_name()

    def lists_models(self) -> bool:
        """Whether ``/`` lists the models: a folder of several, none of them the default."""
        registry = self._registry
        return registry.is_folder and len(registry.names()) > 1 and registry.default_name() is None

    def names_a_model(self) -> bool:
        """Whether the bare routes answer for a model (one file, or a folder's default)."""
        return not self._registry.is_folder or self._registry.default_name() is not None

    # -- one request's model ------------------------------------------------------------------

    def hold(self, name: str | None = None) -> Held:
        """The version serving ``name`` (None: the default model), held until ``release``;
        404 for a name not served, 503 while it loads or after its load failed."""
        return Held(self._registry.acquire(name), self._registry.progress)

    def hold_version(self, name: str, version: str) -> Held:
        """Version ``version`` of ``name`` (the one serving, or one still draining)."""
        return Held(self._registry.acquire_version(name, version), self._registry.progress)

    def release(self, held: Held) -> None:
        self._registry.release(held._slot)

    def _hold(self, name: str | None, version: str | None) -> Held:
        return self.hold(name) if version is None else self.hold_version(str(name), version)

    def infer(self, name: str | None, version: str | None, request: PredictRequest) -> Answer:
        """One prediction, on the version asked for (None: the one serving)."""
        held = self._hold(name, version)
        try:
            return held.infer(request)
        finally:
            self.release(held)

    def explain(self, name: str | None, version: str | None, request: PredictRequest) -> list[Any]:
        """Each row's explanation (issue 25), on the version asked for (None: the serving one)."""
        held = self._hold(name, version)
        try:
            return held.explain(request)
        finally:
            self.release(held)

    def whatif(
        self, name: str | None, version: str | None, request: PredictRequest, columns: list[str]
    ) -> WhatIf:
        """One row's prediction as each of ``columns`` sweeps its reference range (issue 25)."""
        held = self._hold(name, version)
        try:
            return held.whatif(request, columns)
        finally:
            self.release(held)

    def describe(self, name: str | None, version: str | None = None) -> Description:
        held = self._hold(name, version)
        try:
            return self.description(held)
        finally:
            self.release(held)

    def description(self, held: Held) -> Description:
        """What ``held`` is, and the versions of its model that answer now."""
        return Description(
            held.info(),
            held.name,
            held.version,
            held.sha256,
            held.loaded_at,
            tuple(self.versions(held.name)) or (str(held.version),),
        )

    def versions(self, name: str) -> list[str]:
        """The versions of ``name`` that answer: the one serving, then those draining."""
        registry = self._registry
        return [str(s.version) for s in registry.served_versions(registry.entry(name))]

    def reason(self, name: str) -> str:
        """Why the file of ``name`` on disk is not what serves (a failed load); "" else."""
        try:
            return self._registry.entry(name).reason
        except NotFound:
            return ""

    def jobs_of(self, name: str, job_id: str) -> JobsOf:
        """The version of ``name`` that holds the CSV job ``job_id`` (it finishes there, even
        after a newer version serves)."""
        slot = self._registry.find_job_slot(name, job_id)
        return JobsOf(slot.name, slot.version, slot.card, slot.jobs)

    def current_jobs(self) -> JobManager | None:
        """One model file: the CSV jobs of its version serving now (None: none serves)."""
        entries = self._registry.entries()
        if len(entries) != 1 or entries[0].current is None:
            return None
        return entries[0].current.jobs

    # -- health ---------------------------------------------------------------------------------

    def health(self) -> HealthSummary:
        """Every model's state and the server's one status, read now."""
        registry = self._registry
        snapshot = registry.snapshot()
        models = tuple(model_health(m, registry.progress(m.name)) for m in snapshot.models)
        return HealthSummary(
            status=overall(models, snapshot.starting),
            starting=snapshot.starting,
            models=models,
            not_served=snapshot.refused if registry.is_folder else (),
            unloaded=self._still_unloaded({m.name for m in models}),
            folder=str(registry.folder) if registry.folder is not None else "",
            default=snapshot.default_name,
        )

    def _still_unloaded(self, served: set[str]) -> tuple[tuple[str, str], ...]:
        """The names unloaded by the owner that nothing loaded since and whose file is still
        there (a file that left is no model any more)."""
        return tuple(
            (name, UNLOADED)
            for name, path in sorted(self._unloaded.copy().items())
            if name not in served and (not path or Path(path).exists())
        )

    def batch_rows(self) -> list[tuple[str, Histogram]]:
        """Each serving model's histogram of rows per model call (for /metrics)."""
        return [
            (entry.name, entry.current.backend.batch_rows)
            for entry in self._registry.entries()
            if entry.current is not None
        ]

    # -- loading and unloading -------------------------------------------------------------------

    def load(self, name: str) -> str:
        """Load (or reload) ``name`` from its file now; "" once it serves, else why not.
        ``NotFound`` when there is no such file."""
        registry = self._registry
        known, path = registry.source_of(name)
        if not known:
            raise NotFound(f"no model file named {name!r} in the models folder")
        self._unloaded.pop(name, None)
        # a load asked for through the repository API is the owner's decision: it swaps
        # whatever the checked swap says (issue 26)
        if registry.load(name, path, force=True):
            return ""
        return registry.entry(name).reason or "the file changed while it was read; try again"

    def force_swap(self, name: str) -> str:
        """The new version of ``name`` the checked swap refused serves now (the owner's
        button, issue 26): "" once it does, else why not."""
        return self._registry.force_swap(name)

    def swap_check(self, name: str) -> SwapCheck | None:
        """The last checked swap of ``name`` (None before any; issue 26)."""
        try:
            return self._registry.entry(name).check
        except NotFound:
            return None

    def disagreements(self, name: str) -> DisagreeingRows | None:
        """The rows the last checked swap of ``name`` found answered differently."""
        return self._registry.entry(name).disagreements

    def unload(self, name: str) -> None:
        """``name`` answers 404 from now on; its version stops once its requests end. It
        stays listed, ``unloaded``, while its file is there (``HealthSummary.unloaded``)."""
        path = next((m.path for m in self._registry.status() if m.name == name), "")
        self._registry.unload(name)
        self._unloaded[name] = path
