"""A folder's monitor index (issue 26): ``/monitor`` when the folder serves several models and
none is the default, where a new user met a 404 "use /models/<name>/…".

::

    data plane's health (every model: its title, version, state)
    prediction log ─► usage.per_model (one GROUP BY model) ─► requests, errors, last request
    each model serving ─► monitor_drift.drift_of ─► its drift in a line
                                  │
                                  ▼
          Index(rows) ─► monitor_index.html (a table, each model's monitor linked)
                      └► monitor.json ({since, until, models: [...]}, each with its links)

The drift is cheap enough for a list: drift.logged_sample reads one request in k of the whole
period (k over every model's requests), so the models' samples together are about one model's
at most, and each reference sample is read once per version of its file (monitor_drift.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import current_app

from winserve.errors import WinserveError
from winserve.predlog import usage
from winserve.predlog.writer import PredictionLog
from winserve.web import held
from winserve.web.monitor_drift import drift_of
from winserve.web.monitor_view import drifted, period_words
from winserve.web.page import page_state
from winserve.web.prediction_log import KEY


def is_index() -> bool:
    """Whether this request's ``/monitor`` is the folder's index: the bare route, in a folder
    of several models none of which is the default."""
    return held.model_name() is None and not held.plane().names_a_model()


@dataclass(frozen=True)
class ModelLine:
    """One model of the index."""

    name: str
    title: str
    version: int | None
    state: str  # the page's words for its state ("Ready.", "Loading.", …)
    requests: int
    errors: int
    last: float | None  # its latest request in the period (Unix seconds), None without one
    drift: str  # "1 of 4 inputs has drifted: spend ↑", or why there is no drift to show

    @property
    def base(self) -> str:
        return f"/models/{quote(self.name, safe='')}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "title": self.title,
            "version": self.version,
            "state": self.state,
            "requests": self.requests,
            "errors": self.errors,
            "last_request": (
                datetime.fromtimestamp(self.last, UTC).isoformat(timespec="seconds")
                if self.last is not None
                else None
            ),
            "drift": self.drift,
            "monitor": f"{self.base}/monitor",
            "monitor_json": f"{self.base}/monitor.json",
            "log_csv": f"{self.base}/log.csv",
        }


@dataclass(frozen=True)
class Index:
    """Every model of the folder, in one period."""

    since: datetime
    until: datetime
    ongoing: bool
    log_off: bool
    models: tuple[ModelLine, ...]

    @property
    def period(self) -> str:
        return period_words(self.since, self.until, self.ongoing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "log": not self.log_off,
            "models": [m.as_dict() for m in self.models],
            "log_csv": "/log.csv",  # every model's log, the model column telling them apart
        }


def _drift_line(name: str, since: float, until: float, plog: PredictionLog | None) -> str:
    """The model's drift in a line, or why there is none (a model not serving: "")."""
    try:
        model = held.held(name)
        info = model.info()
    except WinserveError:  # loading, failed, gone since the health was read
        return ""
    found = drift_of(model, info, plog, since, until)
    if found.reference is None and not info.tensor_inputs:  # the how-to is the monitor's
        return "No reference sample to compare with: its monitor says how to add one."
    if found.hint:
        return found.hint
    if not found.columns:
        return ""
    if not found.logged_rows:
        return "No inputs were logged (setting: log_inputs)."
    return drifted(found.columns) + "."


def index(since: datetime, until: datetime, ongoing: bool) -> Index:
    """The folder's models from ``since`` to ``until``: each one's use and drift."""
    plog: PredictionLog | None = current_app.extensions.get(KEY)
    start, end = since.timestamp(), until.timestamp()
    used = usage.per_model(plog.path, start, end) if plog is not None else {}
    lines = []
    for model in held.plane().health().models:
        health = model.health
        if model.loading and model.version is None:
            state = "Loading."
        else:
            state = page_state(health).text if health is not None else "Not served."
        use = used.get(model.name)
        lines.append(
            ModelLine(
                model.name,
                model.title,
                model.version,
                state,
                use.requests if use is not None else 0,
                use.errors if use is not None else 0,
                use.last if use is not None else None,
                _drift_line(model.name, start, end, plog) if model.serving else "",
            )
        )
    return Index(since, until, ongoing, plog is None, tuple(lines))
