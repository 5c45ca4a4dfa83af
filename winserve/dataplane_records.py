"""The records the data plane hands the views for one request (issue 23): an ``Answer`` (a
prediction, the description it was checked against, its version), a ``Description`` of one
version of a model, and ``JobsOf``, the version that holds a CSV job. Plain, frozen values:
a view never holds a registry entry, a slot or a backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from winserve import card as cards
from winserve.backends.base import Prediction
from winserve.model_info import ModelInfo
from winserve.scoring.jobs import JobManager


class Answer(NamedTuple):
    """A prediction, with the model description it was checked against and its version.
    (A named tuple: one per request, made in half the time of a frozen dataclass; issue 14
    counts the web layer's microseconds.)"""

    prediction: Prediction
    info: ModelInfo
    version: int


@dataclass(frozen=True)
class Description:
    """What one version of a model is: its description, version, file and the versions of
    the model that answer now (the one serving, then those draining)."""

    info: ModelInfo
    name: str
    version: int
    sha256: str
    loaded_at: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class JobsOf:
    """The version of a model that holds a CSV job (it may have been replaced since)."""

    name: str
    version: int
    card: cards.ModelCard
    jobs: JobManager
