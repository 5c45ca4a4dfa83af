"""The models' state, summarised once (issue 23): the registry's snapshot of each model
(``ModelStatus``) and how far a load running now has gone in, a ``ModelHealth`` per model and
one ``HealthSummary`` out, with the server's one status (``overall``). ``/health``,
``/v2/health/*``, the model list, the repository index, ``/metrics`` and the console banner
all render this one summary.

Readiness is strict (as Triton's and MLServer's): the server is ``loading`` until every model
found at start has loaded or failed; after that it is ready while some model serves.
``degraded`` means some replicas of a model that loaded are down, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from winserve.backends.base import Health, Status
from winserve.load_progress import LoadProgress
from winserve.models.status import ModelStatus, SwapCheck

UNLOADED = "unloaded"  # a model's reason in the repository index, Triton's word for it


@dataclass(frozen=True)
class ModelHealth:
    """One model's state at one moment: its own status (the serving version's health, else
    ``loading`` or ``failed``), the version serving, and why the file on disk is not what
    serves (a failed load), if it is not."""

    name: str
    status: Status
    version: int | None = None  # the version serving; None while none does
    health: Health | None = None  # the serving version's replicas, queue and reason
    reason: str = ""  # why the file on disk is not what serves; "" else
    loading: bool = False  # a load of this name is running
    title: str = ""  # the model card's title
    progress: LoadProgress | None = None  # how far that load has gone (issue 24)
    check: SwapCheck | None = None  # the last checked swap of a new file (issue 26)

    @property
    def serving(self) -> bool:
        return self.status in ("ready", "degraded")


@dataclass(frozen=True)
class HealthSummary:
    """Every model's state and the server's, read once: what ``/health``, ``/v2/health/*``,
    the model list, ``/metrics`` and the console banner render."""

    status: Status
    starting: bool  # a model found at start has not loaded or failed yet
    models: tuple[ModelHealth, ...]
    not_served: tuple[tuple[str, str], ...] = ()  # files in the folder served under no name
    # models the owner unloaded whose file is still there: (name, "unloaded"), listed by the
    # repository index as UNAVAILABLE, as Triton lists them (issue 23)
    unloaded: tuple[tuple[str, str], ...] = ()
    folder: str = ""  # the folder of models; "" for one model file
    default: str | None = None  # the model the bare routes answer for

    @property
    def serving(self) -> bool:
        """Some model answers predictions."""
        return any(m.serving for m in self.models)

    @property
    def ready(self) -> bool:
        """Ready (HTTP 200 at /health and /v2/health/ready): start is over and a model serves."""
        return not self.starting and self.serving

    def model(self, name: str | None) -> ModelHealth | None:
        return next((m for m in self.models if m.name == name), None)


def overall(models: tuple[ModelHealth, ...], starting: bool) -> Status:
    """The server's one status: ``loading`` while start is not over; once it is, ``ready``
    or ``degraded`` (a model that loaded has replicas down) while some model serves, else
    ``loading``, ``stopped`` or ``failed``."""
    if starting:
        return "loading"
    if any(m.serving for m in models):
        loaded = [m for m in models if m.version is not None]
        return "degraded" if any(m.status != "ready" for m in loaded) else "ready"
    if any(m.status == "loading" for m in models):
        return "loading"
    if models and all(m.status == "stopped" for m in models):
        return "stopped"
    return "failed"


def model_health(model: ModelStatus, progress: LoadProgress | None) -> ModelHealth:
    """A model's state in the summary, from the registry's snapshot of it and how far its
    load running now has gone, if one runs (issue 24)."""
    current = model.current
    if current is None:
        status: Status = "loading" if model.loading else "failed"
        return ModelHealth(
            model.name, status, reason=model.reason, loading=model.loading, progress=progress
        )
    return ModelHealth(
        model.name,
        current.health.status,
        version=current.version,
        health=with_progress(current.health, progress),
        reason=model.reason,
        loading=model.loading,
        title=current.title,
        progress=progress,
        check=model.check,
    )


def with_progress(health: Health, progress: LoadProgress | None) -> Health:
    """``health`` of a version still loading, with how far its load has gone (one model's
    first version is shown while it loads); any other health as it is."""
    if progress is None or health.status != "loading":
        return health
    return replace(health, loading=progress)
